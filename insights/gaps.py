"""Gap topics: the questions the KB could not answer (abstained) or answered badly (thumbs down), in topics.

gap_questions reads a period of the question log and of the feedback table; gap_topics embeds the questions
with the KB's own model, groups them (insights/topics.py) and, for each topic, finds the KB's nearest
passages to the topic's centre (cosine, the KB's FAISS snapshot) and suggests what to do: when the nearest
passage is at least `close_cosine` from the centre, "document X comes close: update it"; else "no document
covers this: add one".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from insights.topics import TopicConfig, topic_labels, unit
from kb import Feedback, KBError, KnowledgeBase, LogEntry, TextEmbedder, embedder_for, question_key, redact

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
    a little better (AUC 0.69 against 0.62 for the evidence): `python -m insights.measure`."""

    topics: TopicConfig = field(default_factory=TopicConfig)
    top_topics: int = 10
    examples: int = 3
    passages: int = 3
    close_cosine: float = 0.6
    thumbs_down: bool = True
    weak_cosine: float | None = None

    def __post_init__(self) -> None:
        if self.top_topics < 1 or self.examples < 1 or self.passages < 1:
            raise KBError("top_topics, examples and passages must each be at least 1")
        if not 0.0 <= self.close_cosine <= 1.0:
            raise KBError(f"close_cosine must be between 0 and 1, not {self.close_cosine}")


@dataclass(frozen=True)
class GapQuestion:
    """A question the KB did not answer well: reason "abstained" or "thumbs_down" (doc_source: the passage's
    document that got it). at: Unix seconds."""

    question: str
    at: float
    reason: str
    doc_source: str | None = None
    asked_by: str | None = None
    collection: str | None = None


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
    and the suggested action; close_document: the document that comes close (None: nothing does)."""

    id: int
    size: int
    questions: tuple[str, ...]
    examples: tuple[str, ...]
    passages: tuple[NearPassage, ...]
    action: str
    close_document: str | None
    reasons: dict[str, int]


def gap_questions(
    entries: list[LogEntry], feedback: list[Feedback], since: float | None = None, until: float | None = None
) -> list[GapQuestion]:
    """The abstained entries of the log, and the thumbs-down questions in since <= at < until (redacted: the
    feedback table keeps what was typed), one per (question, time)."""
    out = [GapQuestion(e.question, e.at, "abstained", None, e.asked_by, e.collection) for e in entries if e.abstained]
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
        GapQuestion(e.question, e.at, "weak", None, e.asked_by, e.collection)
        for e, b in zip(answered, best[:, 0])
        if b < weak_cosine
    ]


def embed_questions(kb: KnowledgeBase, questions: list[str], embedder: TextEmbedder | None = None) -> np.ndarray:
    """Unit vectors of questions by the KB's own model, each distinct text embedded once: (N, d)."""
    if not questions:
        return np.zeros((0, kb.manifest.dim if kb.manifest else 0), np.float32)
    embedder = embedder or embedder_for(kb)
    distinct = sorted(set(questions))
    vectors = unit(embedder.encode_queries(distinct))
    row = {q: i for i, q in enumerate(distinct)}
    return vectors[[row[q] for q in questions]]


def _nearest(kb: KnowledgeBase, centre: np.ndarray, k: int) -> tuple[NearPassage, ...]:
    snap = kb.snapshot()
    if snap.size == 0:
        return ()
    scores, ids = snap.search(centre[None, :], min(k, snap.size))
    found = [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]
    records = kb.chunks([i for _, i in found])
    out = []
    for (score, cid), rec in zip(found, records):
        if rec is None:
            continue
        words = " ".join(rec.text.split())
        out.append(NearPassage(cid, rec.doc_source, rec.doc_title, rec.doc_version, score, words[:200]))
    return tuple(out)


def gap_topics(
    kb: KnowledgeBase,
    gaps: list[GapQuestion],
    config: InsightsConfig | None = None,
    embedder: TextEmbedder | None = None,
    vectors: np.ndarray | None = None,
) -> list[GapTopic]:
    """The gaps grouped into topics, largest first (all of them; report the first config.top_topics).
    vectors: the gaps' unit embeddings when already computed (else embedded with the KB's model)."""
    config = config or InsightsConfig()
    if not gaps:
        return []
    texts = [g.question for g in gaps]
    x = embed_questions(kb, texts, embedder) if vectors is None else unit(vectors)
    labels = topic_labels(x, config.topics)
    topics = []
    for t in range(int(labels.max()) + 1):
        rows = np.flatnonzero(labels == t)
        centre = unit(x[rows].mean(axis=0, keepdims=True))[0]
        order = rows[np.argsort(-(x[rows] @ centre), kind="stable")]
        examples: list[str] = []
        for i in order:
            if question_key(texts[i]) not in {question_key(e) for e in examples}:
                examples.append(texts[i])
            if len(examples) == config.examples:
                break
        passages = _nearest(kb, centre, config.passages)
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
                examples=tuple(examples),
                passages=passages,
                action=action,
                close_document=close.doc_source if close else None,
                reasons=dict(Counter(gaps[i].reason for i in rows)),
            )
        )
    return topics
