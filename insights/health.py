"""Document health over a period: which documents answers cite most and least, which no answer cited, the
thumbs-down rate per document, and the answers served from a document version that has since been replaced."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from kb import DocumentInfo, Feedback, LogEntry


def down_share(up: int, down: int) -> float:
    """Share of thumbs that were down (0 when there were none)."""
    return down / (up + down) if up + down else 0.0


@dataclass(frozen=True)
class DocumentUse:
    """How a document fared in the period: answers that cited it, thumbs up and down on its passages."""

    source: str
    title: str
    citations: int
    thumbs_up: int
    thumbs_down: int

    @property
    def down_rate(self) -> float:
        return down_share(self.thumbs_up, self.thumbs_down)


@dataclass(frozen=True)
class PassageUse:
    """Thumbs on one passage in the period: its chunk id, its document, thumbs up and down."""

    chunk_id: int
    doc_source: str
    thumbs_up: int
    thumbs_down: int

    @property
    def down_rate(self) -> float:
        return down_share(self.thumbs_up, self.thumbs_down)


@dataclass(frozen=True)
class StaleAnswer:
    """An answer that cited a document version since replaced (current_version None: the document is gone);
    question: as logged (redacted), so the team can tell who asked (asked_by)."""

    question: str
    at: float
    asked_by: str | None
    doc_source: str
    cited_version: int
    current_version: int | None


@dataclass(frozen=True)
class DocumentHealth:
    """most_cited / least_cited: documents cited in the period, by answers citing them; never_cited: current
    documents no answer cited; most_thumbs_down: documents by thumbs-down count (rate in each); stale: answers
    served from versions since replaced; outdated: (source, updated_at) of exported documents whose updated_at
    (ISO 8601, from the export) is older than old_days; passages_thumbs_down: passages by thumbs-down count."""

    most_cited: tuple[DocumentUse, ...]
    least_cited: tuple[DocumentUse, ...]
    never_cited: tuple[str, ...]
    most_thumbs_down: tuple[DocumentUse, ...]
    stale: tuple[StaleAnswer, ...]
    outdated: tuple[tuple[str, str], ...] = ()
    passages_thumbs_down: tuple[PassageUse, ...] = ()


def updated_seconds(updated_at: str) -> float | None:
    """An exported updated_at (ISO 8601, "Z" allowed; UTC when it names no zone) as Unix seconds; None if unreadable."""
    try:
        when = datetime.fromisoformat(updated_at.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def document_health(
    documents: list[DocumentInfo],
    entries: list[LogEntry],
    feedback: list[Feedback],
    since: float | None = None,
    until: float | None = None,
    top: int = 5,
    old_days: float = 365.0,
    now: float | None = None,
) -> DocumentHealth:
    """Document health from the current documents, the period's log entries and the feedback table; old_days:
    an exported document not updated for this many days is outdated."""
    now = time.time() if now is None else now
    current = {d.source: d for d in documents}
    cited: Counter[str] = Counter()
    stale = []
    for e in entries:
        for source in {c.doc_source for c in e.citations}:
            cited[source] += 1
        for c in e.citations:
            doc = current.get(c.doc_source)
            if doc is None or doc.version != c.doc_version:
                stale.append(
                    StaleAnswer(e.question, e.at, e.asked_by, c.doc_source, c.doc_version, doc.version if doc else None)
                )
    up: Counter[str] = Counter()
    down: Counter[str] = Counter()
    passage_up: Counter[tuple[int, str]] = Counter()
    passage_down: Counter[tuple[int, str]] = Counter()
    for f in feedback:
        if f.doc_source is None or (since is not None and f.at < since) or (until is not None and f.at >= until):
            continue
        (up if f.helpful else down)[f.doc_source] += 1
        if f.chunk_id is not None:
            (passage_up if f.helpful else passage_down)[(f.chunk_id, f.doc_source)] += 1

    def use(source: str) -> DocumentUse:
        doc = current.get(source)
        return DocumentUse(source, doc.title if doc else "(removed)", cited[source], up[source], down[source])

    ranked = sorted(cited, key=lambda s: (-cited[s], s))
    return DocumentHealth(
        most_cited=tuple(use(s) for s in ranked[:top]),
        least_cited=tuple(use(s) for s in reversed(ranked[-top:])) if ranked else (),
        never_cited=tuple(sorted(s for s in current if s not in cited)),
        most_thumbs_down=tuple(use(s) for s in sorted(down, key=lambda s: (-down[s], s))[:top]),
        stale=tuple(stale),
        passages_thumbs_down=tuple(
            PassageUse(c, source, passage_up[(c, source)], n)
            for (c, source), n in sorted(passage_down.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ),
        outdated=tuple(
            (d.source, d.updated_at)
            for d in sorted(documents, key=lambda d: d.source)
            if d.updated_at and (u := updated_seconds(d.updated_at)) is not None and u < now - old_days * 86400.0
        ),
    )
