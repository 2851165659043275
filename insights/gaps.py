"""Gap topics: the questions the KB could not answer (abstained) or answered badly (thumbs down), in topics.

gap_questions reads a period of the question log and of the feedback table; gap_topics embeds the questions
with the KB's own model, groups them (insights/topics.py) and, for each topic, finds the KB's nearest
passages to the topic's centre (cosine, the KB's FAISS snapshot) and suggests what to do: when the nearest
passage is at least `close_cosine` from the centre, "document X comes close: update it"; else "no document
covers this: add one".
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Collection, Iterable, Sequence

import numpy as np

from insights.topics import TopicConfig, topic_labels, unit
from kb import (
    DEFAULT_MODEL,
    Feedback,
    KBError,
    KnowledgeBase,
    LogEntry,
    QuestionLog,
    TextEmbedder,
    embedder_for,
    kb_model,
    question_key,
    redact,
)

log = logging.getLogger(__name__)

REASONS = ("abstained", "thumbs_down", "weak")


@dataclass(frozen=True)
class InsightsConfig:
    """topics: how questions are grouped; top_topics: topics reported (largest first); examples: questions
    shown per topic; passages: nearest passages shown per topic; close_cosine: a nearest passage at least this
    close (cosine to the topic's centre, 0..1) means a document comes close; thumbs_down: count questions
    answered with a thumbs down as gaps too; weak_cosine: also count answered questions whose nearest passage
    in the current KB is below this cosine ("weak": answered from something that is not about them; None: off).
    The answer layer answers many questions about a missing document from a neighbouring one (covidfaq, 10
    entries removed: 134 of their 356 questions abstained), which the nearest passage's cosine tells apart
    a little better (AUC 0.69 against 0.62 for the evidence): `python -m insights.measure`. trend_cosine: a gap
    question of the period before counts towards a topic's previous size when its nearest gap question of the
    period (cosine, 0..1) is at least this close and in that topic."""

    topics: TopicConfig = field(default_factory=TopicConfig)
    top_topics: int = 10
    examples: int = 3
    passages: int = 3
    close_cosine: float = 0.6
    thumbs_down: bool = True
    weak_cosine: float | None = None
    trend_cosine: float = 0.8

    def __post_init__(self) -> None:
        if self.top_topics < 1 or self.examples < 1 or self.passages < 1:
            raise KBError("top_topics, examples and passages must each be at least 1")
        if not 0.0 <= self.close_cosine <= 1.0:
            raise KBError(f"close_cosine must be between 0 and 1, not {self.close_cosine}")
        if not 0.0 <= self.trend_cosine <= 1.0:
            raise KBError(f"trend_cosine must be between 0 and 1, not {self.trend_cosine}")


@dataclass(frozen=True)
class GapQuestion:
    """A question the KB did not answer well: reason "abstained" or "thumbs_down" (doc_source: the passage's
    document that got it). at: Unix seconds; context: a follow-up's previous user question (None: asked alone)."""

    question: str
    at: float
    reason: str
    doc_source: str | None = None
    asked_by: str | None = None
    collection: str | None = None
    context: str | None = None


@dataclass(frozen=True)
class NearPassage:
    """A passage close to a topic: cosine to the topic's centre (0..1), its document and opening words."""

    chunk_id: int
    doc_source: str
    doc_title: str
    doc_version: int
    cosine: float
    text: str


@dataclass(frozen=True)
class GapTopic:
    """One topic: its questions (size counts repeats), the examples nearest its centre, the nearest passages
    and the suggested action; close_document: the document that comes close (None: nothing does); by_day:
    (UTC date, questions) per day; previous: its size in the equally long period before (None: the period has
    no start, so no period before it); contexts: each question's previous user question if it was a follow-up."""

    id: int
    size: int
    questions: tuple[str, ...]
    examples: tuple[str, ...]
    passages: tuple[NearPassage, ...]
    action: str
    close_document: str | None
    reasons: dict[str, int]
    by_day: tuple[tuple[str, int], ...] = ()
    previous: int | None = None
    contexts: tuple[str | None, ...] = ()


def gap_questions(
    entries: list[LogEntry], feedback: list[Feedback], since: float | None = None, until: float | None = None
) -> list[GapQuestion]:
    """The abstained entries of the log, and the thumbs-down questions in since <= at < until (redacted: the
    feedback table keeps what was typed), one per (question, time)."""
    out = [
        GapQuestion(e.question, e.at, "abstained", None, e.asked_by, e.collection, e.context) for e in entries if e.abstained
    ]
    seen: set[tuple[str, int]] = set()
    for f in feedback:
        if f.helpful or (since is not None and f.at < since) or (until is not None and f.at >= until):
            continue
        key = (question_key(f.question), int(f.at))
        if key in seen:
            continue  # one row per cited passage: one gap
        seen.add(key)
        out.append(GapQuestion(redact(f.question), f.at, "thumbs_down", f.doc_source, f.by))
    return out


def weak_answers(
    kb: KnowledgeBase, entries: list[LogEntry], weak_cosine: float, embedder: TextEmbedder | None = None
) -> list[GapQuestion]:
    """The answered entries whose nearest passage in the current KB is below weak_cosine (reason "weak")."""
    answered = [e for e in entries if not e.abstained]
    snap = kb.snapshot()
    if not answered or snap.size == 0:
        return []
    x = embed_questions(kb, [e.question for e in answered], embedder)
    best, _ = snap.search(x, 1)
    return [
        GapQuestion(e.question, e.at, "weak", None, e.asked_by, e.collection, e.context)
        for e, b in zip(answered, best[:, 0])
        if b < weak_cosine
    ]


def embed_questions(
    kb: KnowledgeBase,
    questions: list[str],
    embedder: TextEmbedder | None = None,
    cache: QuestionLog | None = None,
    logged: Collection[str] = (),
) -> np.ndarray:
    """Unit vectors of questions by the KB's own model, each distinct text embedded once: (N, d). cache: the
    question log whose stored vectors are reused; the new vectors of questions in `logged` (texts the log holds)
    are stored there for the next report (a KB that cannot be written is read only)."""
    if not questions:
        return np.zeros((0, kb.manifest.dim if kb.manifest else 0), np.float32)
    distinct = sorted(set(questions))
    model = embedder.name if embedder is not None else kb_model(kb) or DEFAULT_MODEL
    stored = cache.vectors(distinct, model) if cache is not None else {}
    missing = [q for q in distinct if q not in stored]
    found = {q: np.frombuffer(v, np.float32) for q, v in stored.items()}
    if missing:
        new = unit((embedder or embedder_for(kb)).encode_queries(missing))
        found.update(zip(missing, new))
        keep = {q: found[q].tobytes() for q in missing if q in logged}
        if cache is not None and keep:
            try:
                cache.save_vectors(keep, model)
            except KBError as exc:
                log.warning("question vectors not kept for the KB at %s: %s", kb.dir, exc)
    vectors = unit(np.stack([found[q] for q in distinct]))
    row = {q: i for i, q in enumerate(distinct)}
    return vectors[[row[q] for q in questions]]


def _nearest_many(
    kb: KnowledgeBase, centres: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> list[tuple[NearPassage, ...]]:
    """The k passages nearest each centre (one FAISS search for all; allowed: the chunk ids a scoped reader
    may see, None for all)."""
    snap = kb.snapshot()
    if snap.size == 0 or len(centres) == 0 or (allowed is not None and len(allowed) == 0):
        return [() for _ in centres]
    scores, ids = snap.search(centres, min(k, snap.size), allowed)
    wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
    records = dict(zip(wanted, kb.chunks(wanted)))
    out = []
    for row_scores, row_ids in zip(scores, ids):
        near = []
        for score, cid in zip(row_scores, row_ids):
            rec = records.get(int(cid)) if cid >= 0 else None
            if rec is not None:
                words = " ".join(rec.text.split())
                near.append(NearPassage(int(cid), rec.doc_source, rec.doc_title, rec.doc_version, float(score), words[:200]))
        out.append(tuple(near))
    return out


def _days(times: Iterable[float]) -> tuple[tuple[str, int], ...]:
    """(UTC date, questions) per day with any, oldest first."""
    counts = Counter(time.strftime("%Y-%m-%d", time.gmtime(t)) for t in times)
    return tuple(sorted(counts.items()))


def gap_topics(
    kb: KnowledgeBase,
    gaps: list[GapQuestion],
    config: InsightsConfig | None = None,
    embedder: TextEmbedder | None = None,
    vectors: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    seconds: dict[str, float] | None = None,
) -> list[GapTopic]:
    """The gaps grouped into topics, largest first (all of them; report the first config.top_topics).
    vectors: the gaps' unit embeddings when already computed (else embedded with the KB's model); allowed: the
    chunk ids the nearest passages may come from (a scoped reader's; None: all); seconds: where to add the
    time spent "grouping" and finding the "nearest" passages."""
    config = config or InsightsConfig()
    if not gaps:
        return []
    texts = [g.question for g in gaps]
    x = embed_questions(kb, texts, embedder) if vectors is None else unit(vectors)
    clock = time.perf_counter()
    labels = topic_labels(x, config.topics)
    groups = _groups(labels)
    centres = unit(np.stack([x[rows].mean(axis=0) for rows in groups]))
    grouped = time.perf_counter()
    nearest = _nearest_many(kb, centres, config.passages, allowed)
    if seconds is not None:
        seconds["grouping"] = seconds.get("grouping", 0.0) + grouped - clock
        seconds["nearest"] = seconds.get("nearest", 0.0) + time.perf_counter() - grouped
    topics = []
    for t, (rows, centre, passages) in enumerate(zip(groups, centres, nearest)):
        order = rows[np.argsort(-(x[rows] @ centre), kind="stable")]
        examples: list[str] = []
        seen: set[str] = set()
        for i in order:
            key = question_key(texts[i])
            if key not in seen:
                seen.add(key)
                examples.append(texts[i])
            if len(examples) == config.examples:
                break
        close = passages[0] if passages and passages[0].cosine >= config.close_cosine else None
        action = (
            f"document {close.doc_source} comes close ({close.cosine:.2f}): update it"
            if close
            else "no document covers this: add one"
        )
        topics.append(
            GapTopic(
                id=t,
                size=len(rows),
                questions=tuple(texts[i] for i in rows),
                contexts=tuple(gaps[i].context for i in rows),
                examples=tuple(examples),
                passages=passages,
                action=action,
                close_document=close.doc_source if close else None,
                reasons=dict(Counter(gaps[i].reason for i in rows)),
                by_day=_days(gaps[i].at for i in rows),
            )
        )
    return topics


def _groups(labels: np.ndarray) -> list[np.ndarray]:
    """The row numbers of each label 0..T-1, ascending (one sort, not one scan per label)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return np.split(order, bounds)


def previous_sizes(
    n_topics: int, current: np.ndarray, labels: Sequence[int], earlier: np.ndarray, min_cosine: float
) -> list[int]:
    """How many of the earlier period's gap questions (unit vectors `earlier`) fall in each of n_topics topics:
    each joins the topic of its nearest current gap question (unit vectors `current`, topic ids `labels`) when
    at least min_cosine close; blocks of 2,048 keep the product's memory bounded."""
    sizes = [0] * n_topics
    if len(earlier) == 0 or len(current) == 0:
        return sizes
    for start in range(0, len(earlier), 2048):
        sims = earlier[start : start + 2048] @ current.T
        best = sims.argmax(axis=1)
        for b, ok in zip(best, sims[np.arange(len(best)), best] >= min_cosine):
            if ok:
                sizes[int(labels[b])] += 1
    return sizes
