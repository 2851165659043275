"""Hits, citations, search results and answers as plain JSON values: the one shape every interface sends.

The API replies with these dicts (its pydantic response models in api/schemas.py are checked
against the TypedDicts below when they are imported), `kb search --json` and `kb ask --json`
print them, and the app's saved turns are built from them (ui/app/turns.py).

scoped: the reader may not see every visibility label (an API key scoped to some labels). Then no
score and no evidence figure are sent, since BM25's word statistics, the IDF of the evidence and the
character gate are computed over every chunk, so those figures would move with documents the reader
cannot see; of the reader's diagnostics only SCOPED_DIAGNOSTICS are kept.

details: what only the KB's owner reads (the command line): the answer's mode, the abstention
signals, the retriever's name and diagnostics, each citation's sentence score, and the search time.
Never combined with scoped.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypedDict

from kb import web_url
from retriever.answers.types import Answer, Citation
from retriever.results import Diagnostics, HistoryUsed, Hit, SearchResult

# What a scoped reader gets of the Hopfield diagnostics: only what is computed from documents it may see.
# Repairs, garble and the character gate come from the vocabulary of the whole KB (a made-up word and a word
# found only in internal documents differ there), the energy trace and entropy follow the gate, and the
# memory's suggestions come from earlier questions of other readers: all are left out.
SCOPED_DIAGNOSTICS = ("beta", "candidates")


class HitDict(TypedDict):
    """A retrieved passage: rank (1 = best), score (None when scoped), the chunk and its document."""

    rank: int
    score: float | None
    chunk_id: int
    document: str  # the document's key (its source)
    name: str
    title: str
    version: int
    visibility: str
    page: int | None
    section: str | None
    char_start: int
    char_end: int
    text: str
    ocr_confidence: float | None  # 0-1 when the page was read by OCR (under 0.8: check the scan)
    url: str  # an exported help-centre or wiki article's address ("" when none)


class CitationDict(TypedDict):
    """Source [n] of an answer: the quote and its character span [start, end) in the document's text."""

    n: int
    chunk_id: int
    document: str
    name: str
    title: str
    version: int
    page: int | None
    section: str | None
    start: int
    end: int
    quote: str
    ocr_confidence: float | None
    url: str


class HistoryDict(TypedDict):
    """What a follow-up read of its conversation (see retriever.HistoryUsed)."""

    turns: list[dict]
    gate: float
    views: list[dict]
    visited: int
    visited_weight: float
    new_topic: bool


class SearchDict(TypedDict):
    query: str
    retriever: str
    snapshot: str
    hits: list[HitDict]
    diagnostics: dict | None
    history_used: HistoryDict | None


class AnswerDict(TypedDict):
    question: str
    answer: str
    abstained: bool
    evidence: float | None  # None when scoped
    threshold: float
    snapshot: str
    citations: list[CitationDict]
    closest: list[HitDict]
    notes: list[str]
    seconds: float
    history_used: HistoryDict | None


def hit_dict(hit: Hit, scoped: bool = False) -> dict[str, Any]:
    """A hit as HitDict."""
    c = hit.chunk
    return {
        "rank": hit.rank,
        "score": None if scoped else round(float(hit.score), 6),
        "chunk_id": c.id,
        "document": c.doc_source,
        "name": c.doc_name,
        "title": c.doc_title,
        "version": c.doc_version,
        "visibility": c.doc_visibility,
        "page": c.page,
        "section": c.section,
        "char_start": c.char_start,
        "char_end": c.char_end,
        "text": c.text,
        "ocr_confidence": c.ocr_confidence,
        "url": web_url(c.doc_url),
    }


def citation_dict(c: Citation, details: bool = False) -> dict[str, Any]:
    """A citation as CitationDict; details adds its sentence "score" (see retriever.AnswerConfig)."""
    out = {
        "n": c.n,
        "chunk_id": c.chunk_id,
        "document": c.doc_source,
        "name": c.doc_name,
        "title": c.doc_title,
        "version": c.doc_version,
        "page": c.page,
        "section": c.section,
        "start": c.start,
        "end": c.end,
        "quote": c.quote,
        "ocr_confidence": c.chunk.ocr_confidence,
        "url": web_url(c.chunk.doc_url),
    }
    if details:
        out["score"] = round(float(c.score), 6)
    return out


def diagnostics_dict(d: Diagnostics | None, scoped: bool = False) -> dict[str, Any] | None:
    """The reader's diagnostics as plain values (None for a retriever without them); scoped: SCOPED_DIAGNOSTICS only."""
    if d is None:
        return None
    out = asdict(d)
    return {k: v for k, v in out.items() if k in SCOPED_DIAGNOSTICS} if scoped else out


def history_dict(used: HistoryUsed | None) -> dict[str, Any] | None:
    """What a follow-up read of its conversation as HistoryDict: the caller's own messages and weights, nothing of the
    KB that a scoped reader could not see (earlier turns were ranked under the same filter); None for a lone turn."""
    if used is None:
        return None
    return {
        "turns": [{"role": r, "content": c} for r, c in used.turns],
        "gate": used.gate,
        "views": [{"text": t, "weight": w} for t, w in used.views],
        "visited": used.visited,
        "visited_weight": used.visited_weight,
        "new_topic": used.new_topic,
    }


def search_dict(result: SearchResult, scoped: bool = False, details: bool = False) -> dict[str, Any]:
    """A search result as SearchDict; details adds "seconds"."""
    out: dict[str, Any] = {
        "query": result.query,
        "retriever": result.retriever,
        "snapshot": result.snapshot,
        "hits": [hit_dict(h, scoped) for h in result.hits],
        "diagnostics": diagnostics_dict(result.diagnostics, scoped),
        "history_used": history_dict(result.history),
    }
    if details:
        _not_scoped(scoped)
        out["seconds"] = round(result.seconds, 4)
    return out


def answer_dict(ans: Answer, scoped: bool = False, details: bool = False) -> dict[str, Any]:
    """An answer as AnswerDict; details adds "mode", "retriever", "signals" and "diagnostics", and each citation's
    "score"."""
    out = {
        "question": ans.question,
        "answer": ans.text,
        "abstained": ans.abstained,
        "evidence": None if scoped else round(float(ans.evidence), 4),
        "threshold": ans.threshold,
        "snapshot": ans.search.snapshot,
        "citations": [citation_dict(c, details) for c in ans.citations],
        "closest": [hit_dict(h, scoped) for h in ans.closest],
        "notes": list(ans.notes),
        "seconds": round(ans.seconds, 4),
        "history_used": history_dict(ans.search.history),
    }
    if details:
        _not_scoped(scoped)
        out.update(
            {
                "mode": ans.mode,
                "retriever": ans.search.retriever,
                "signals": {k: round(v, 4) for k, v in ans.signals.items()},
                "diagnostics": diagnostics_dict(ans.search.diagnostics),
            }
        )
    return out


def _not_scoped(scoped: bool) -> None:
    if scoped:
        raise ValueError("details are for a reader who sees every label: they carry figures computed over every chunk")
