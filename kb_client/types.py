"""What the HTTP API replies, as frozen dataclasses: each has exactly the fields of the server's JSON shape
(retriever/serialize.py's HitDict, CitationDict, HistoryDict, SearchDict, AnswerDict; api/schemas.py's DocumentOut),
so a reply maps field for field (tests/test_kb_client.py keeps them in sync). Fields the server adds later are
ignored, so an older client keeps working against a newer server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of data that are fields of the dataclass cls."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class Hit:
    """A retrieved passage: rank (1 = best), score (None for a key scoped to some labels), the chunk (chunk_id: its
    id in the KB) and its document (document: its key), page or section, and the span [char_start, char_end)."""

    rank: int
    score: float | None
    chunk_id: int
    document: str
    name: str
    title: str
    version: int
    visibility: str
    page: int | None
    section: str | None
    char_start: int
    char_end: int
    text: str
    ocr_confidence: float | None = None
    url: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Hit":
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Citation:
    """Source [n] of an answer: the verbatim quote and its character span [start, end) in the document's text."""

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
    ocr_confidence: float | None = None
    url: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Citation":
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class HistoryUsed:
    """What a follow-up read of its conversation: the turns, the gate (>= 1), each reading's weight, and how many
    passages earlier turns were answered from (with the weight of their recall)."""

    turns: tuple[dict, ...]
    gate: float
    views: tuple[dict, ...]
    visited: int
    visited_weight: float
    new_topic: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "HistoryUsed | None":
        if data is None:
            return None
        known = _known(cls, data)
        return cls(**{**known, "turns": tuple(known["turns"]), "views": tuple(known["views"])})


@dataclass(frozen=True)
class SearchResult:
    """Passages for a query, best first; snapshot names the KB version that answered."""

    query: str
    retriever: str
    snapshot: str
    hits: tuple[Hit, ...]
    diagnostics: dict | None = None
    history_used: HistoryUsed | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SearchResult":
        known = _known(cls, data)
        known["hits"] = tuple(Hit.from_json(h) for h in known["hits"])
        known["history_used"] = HistoryUsed.from_json(known.get("history_used"))
        return cls(**known)


@dataclass(frozen=True)
class Answer:
    """A cited answer (answer: its text, with [n] markers), or an abstention (abstained: True) with the closest
    passages; evidence is None for a key scoped to some labels; seconds: the server's time."""

    question: str
    answer: str
    abstained: bool
    evidence: float | None
    threshold: float
    snapshot: str
    citations: tuple[Citation, ...]
    closest: tuple[Hit, ...]
    notes: tuple[str, ...]
    seconds: float
    history_used: HistoryUsed | None = None

    @property
    def text(self) -> str:
        return self.answer

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Answer":
        known = _known(cls, data)
        known["citations"] = tuple(Citation.from_json(c) for c in known["citations"])
        known["closest"] = tuple(Hit.from_json(h) for h in known["closest"])
        known["notes"] = tuple(known["notes"])
        known["history_used"] = HistoryUsed.from_json(known.get("history_used"))
        return cls(**known)


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer as it streams (ending in its [n] marker); the stream ends with the Answer."""

    text: str


@dataclass(frozen=True)
class Document:
    """A document of a collection: key (its stable name in the KB), version, kind, size, labels; text only when
    asked for (Client.document(..., text=True))."""

    key: str
    name: str
    title: str
    kind: str
    version: int
    ingested_at: float
    chunks: int
    size_bytes: int
    visibility: str
    tags: tuple[str, ...]
    url: str = ""
    updated_at: str = ""
    text: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Document":
        known = _known(cls, data)
        return cls(**{**known, "tags": tuple(known["tags"])})


@dataclass(frozen=True)
class Collection:
    """A collection the key may use: its name, and how many documents and passages the key may see in it."""

    name: str
    documents: int
    chunks: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Collection":
        return cls(**_known(cls, data))
