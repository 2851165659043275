"""The insights report of a period: counts, gap topics and document health, as a dict (JSON) or text.

build_insights(kb, since, until) reads the KB's question log and feedback for since <= at < until (Unix
seconds; None: unbounded); asked_by / collections narrow it to one asker's or some collections' questions
(what a scoped key may see).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

from insights.gaps import (
    GapQuestion,
    GapTopic,
    InsightsConfig,
    embed_questions,
    gap_questions,
    gap_topics,
    previous_sizes,
    weak_answers,
)
from insights.health import DocumentHealth, DocumentUse, PassageUse, document_health
from insights.replay import Replay
from kb import DocumentFilter, Feedback, KnowledgeBase, LogEntry, QuestionLog, TextEmbedder


@dataclass(frozen=True)
class Insights:
    """since / until: the period (Unix seconds, None: unbounded); asked / answered / abstained: logged
    questions; thumbs_down: gap questions from thumbs down; topics: every gap topic, largest first; gaps: the
    gap questions (what --replay re-asks); seconds: where the time went ("reading", "embedding", "grouping",
    "nearest", "trend", "health")."""

    since: float | None
    until: float | None
    asked: int
    answered: int
    abstained: int
    thumbs_down: int
    weak: int
    topics: tuple[GapTopic, ...]
    gaps: tuple[GapQuestion, ...]
    health: DocumentHealth
    seconds: dict[str, float] = field(default_factory=dict)


def _period(
    kb: KnowledgeBase,
    log: QuestionLog,
    since: float | None,
    until: float | None,
    config: InsightsConfig,
    asked_by: str | None,
    collections: list[str] | None,
    visible: set[str] | None,
) -> tuple[list[LogEntry], list[Feedback], list[GapQuestion]]:
    """A period's log entries, feedback and gap questions as the reader may see them: asked_by's alone when
    given; visible: the documents a scoped reader may see (None: all): citations and thumbs on others are
    dropped."""
    entries = log.entries(since=since, until=until, asked_by=asked_by, collections=collections)
    feedback = kb.feedback() if config.thumbs_down else []
    if asked_by is not None:
        feedback = [f for f in feedback if f.by == asked_by]
    if visible is not None:
        entries = [replace(e, citations=tuple(c for c in e.citations if c.doc_source in visible)) for e in entries]
        feedback = [f for f in feedback if f.doc_source is None or f.doc_source in visible]
    return entries, feedback, gap_questions(entries, feedback, since, until)


def build_insights(
    kb: KnowledgeBase,
    since: float | None = None,
    until: float | None = None,
    config: InsightsConfig | None = None,
    embedder: TextEmbedder | None = None,
    asked_by: str | None = None,
    collections: list[str] | None = None,
    where: DocumentFilter | None = None,
) -> Insights:
    """The period's insights of kb (see the module's docstring); where: the documents the reader may see (a
    scoped key's visibility): nothing about another document (citations, thumbs, nearest passages, health)."""
    config = config or InsightsConfig()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    log = QuestionLog(kb)
    scoped = where is not None and not where.empty
    documents = kb.documents(where) if scoped else kb.documents()
    visible = {d.source for d in documents} if scoped else None
    entries, feedback, gaps = _period(kb, log, since, until, config, asked_by, collections, visible)
    earlier_entries: list[LogEntry] = []
    earlier: list[GapQuestion] = []
    if since is not None:  # the equally long period before, for each topic's trend
        span = (time.time() if until is None else until) - since
        earlier_entries, _, earlier = _period(kb, log, since - span, since, config, asked_by, collections, visible)
    seconds["reading"] = time.perf_counter() - clock
    if config.weak_cosine is not None:
        gaps += weak_answers(kb, entries, config.weak_cosine, embedder)
    clock = time.perf_counter()
    logged = {e.question for e in entries}
    x = embed_questions(kb, [g.question for g in gaps], embedder, log, logged)
    seconds["embedding"] = time.perf_counter() - clock
    allowed = kb.chunk_ids(where) if scoped and where is not None else None
    topics = gap_topics(kb, gaps, config, embedder, vectors=x, allowed=allowed, seconds=seconds)
    clock = time.perf_counter()
    if since is not None and topics:
        topic_of = {q: t.id for t in topics for q in t.questions}
        first = {g.question: i for i, g in reversed(list(enumerate(gaps)))}
        current = sorted(topic_of)
        before = {e.question for e in earlier_entries}
        earlier_x = embed_questions(kb, [g.question for g in earlier], embedder, log, before)
        sizes = previous_sizes(
            len(topics), x[[first[q] for q in current]], [topic_of[q] for q in current], earlier_x, config.trend_cosine
        )
        topics = [replace(t, previous=n) for t, n in zip(topics, sizes)]
    seconds["trend"] = time.perf_counter() - clock
    clock = time.perf_counter()
    health = document_health(documents, entries, feedback, since, until)
    seconds["health"] = time.perf_counter() - clock
    return Insights(
        since=since,
        until=until,
        asked=len(entries),
        answered=sum(not e.abstained for e in entries),
        abstained=sum(e.abstained for e in entries),
        thumbs_down=sum(g.reason == "thumbs_down" for g in gaps),
        weak=sum(g.reason == "weak" for g in gaps),
        topics=tuple(topics),
        gaps=tuple(gaps),
        health=health,
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )


def trend(topic: GapTopic) -> str:
    """A topic's size against the period before: "+3", "-2", "0", "new" (none before) or "" (no period before)."""
    if topic.previous is None:
        return ""
    if topic.previous == 0:
        return "new"
    return f"{topic.size - topic.previous:+d}" if topic.size != topic.previous else "0"


# What insights_dict and replay_dict add to each dataclass's fields, and leave out of them (api.schemas checks its
# response models against the fields and these).
JSON_ADDED: dict[type, frozenset[str]] = {
    Insights: frozenset({"topics_total"}),
    GapTopic: frozenset({"trend"}),
    DocumentUse: frozenset({"down_rate"}),
    PassageUse: frozenset({"down_rate"}),
    Replay: frozenset({"share"}),
}
JSON_DROPPED: dict[type, frozenset[str]] = {Insights: frozenset({"gaps"})}


def insights_dict(report: Insights, top_topics: int = 10) -> dict:
    """The report as JSON values: the first top_topics topics (each with its trend), every health list (each
    with its thumbs-down rate); no gap list (the topics hold their questions)."""
    out = asdict(report)
    out.pop("gaps")
    out["topics"] = out["topics"][:top_topics]
    out["topics_total"] = len(report.topics)
    for d, topic in zip(out["topics"], report.topics):
        d["trend"] = trend(topic)
    for use_list in ("most_cited", "least_cited", "most_thumbs_down", "passages_thumbs_down"):
        for d, use in zip(out["health"][use_list], getattr(report.health, use_list)):
            d["down_rate"] = round(use.down_rate, 3)
    return out


def insights_csv(report: Insights, top_topics: int = 10) -> str:
    """The gap topics as CSV: topic, size, trend, action, close_document, example_1..3, nearest passage's document."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        ["topic", "size", "trend", "action", "close_document", "example_1", "example_2", "example_3", "nearest_document"]
    )
    for t in report.topics[:top_topics]:
        examples = list(t.examples[:3]) + [""] * (3 - len(t.examples[:3]))
        nearest = t.passages[0].doc_source if t.passages else ""
        w.writerow([t.id + 1, t.size, trend(t), t.action, t.close_document or "", *examples, nearest])
    return buf.getvalue()


def _when(t: float | None) -> str:
    return "the beginning" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def insights_text(report: Insights, top_topics: int = 10) -> str:
    """The report for people: the period, the counts, the top gap topics with their action, document health."""
    lines = [
        f"Insights from {_when(report.since)} to {_when(report.until) if report.until else 'now'} (UTC)",
        f"questions: {report.asked} logged, {report.answered} answered, {report.abstained} not answered; "
        f"{report.thumbs_down} thumbs down" + (f", {report.weak} answered weakly" if report.weak else ""),
        "",
        f"Gap topics ({len(report.topics)}; the {min(top_topics, len(report.topics))} largest):",
    ]
    for t in report.topics[:top_topics]:
        change = f" ({trend(t)} against the period before)" if t.previous is not None else ""
        lines.append(f"  #{t.id + 1} {t.size} question(s){change}: {t.action}")
        lines.extend(f'      "{q}"' for q in t.examples)
        for p in t.passages[:1]:
            lines.append(f"      nearest: {p.doc_title} ({p.doc_source} v{p.doc_version}, cosine {p.cosine:.2f})")
    h = report.health
    lines += ["", "Documents:"]
    lines.append("  most cited:  " + (", ".join(f"{d.source} ({d.citations})" for d in h.most_cited) or "none"))
    lines.append("  least cited: " + (", ".join(f"{d.source} ({d.citations})" for d in h.least_cited) or "none"))
    lines.append(f"  never cited: {len(h.never_cited)}" + (": " + ", ".join(h.never_cited[:10]) if h.never_cited else ""))
    if h.most_thumbs_down:
        lines.append(
            "  thumbs down: " + ", ".join(f"{d.source} ({d.thumbs_down}, {d.down_rate:.0%})" for d in h.most_thumbs_down)
        )
    if h.passages_thumbs_down:
        passages = [f"#{p.chunk_id} of {p.doc_source} ({p.thumbs_down}, {p.down_rate:.0%})" for p in h.passages_thumbs_down]
        lines.append("  passages thumbed down: " + ", ".join(passages))
    if h.outdated:
        lines.append(f"  not updated for a year or more: {len(h.outdated)}: " + ", ".join(s for s, _ in h.outdated[:10]))
    lines.append(f"  answers from replaced versions: {len(h.stale)}")
    for s in h.stale[:5]:
        now = f"v{s.current_version}" if s.current_version else "removed"
        lines.append(f'      "{s.question}" cited {s.doc_source} v{s.cited_version} (now {now})')
    return "\n".join(lines)
