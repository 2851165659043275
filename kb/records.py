"""Plain records that cross package boundaries: documents and chunks."""

from __future__ import annotations

from dataclasses import dataclass, field


def retrieval_text(title: str, section: str | None, text: str) -> str:
    """What is embedded and indexed for a chunk: its text under its document title and section.

    The heading line gives a passage the context a bare paragraph lacks; citations
    still quote the chunk text alone.
    """
    head = f"{title} | {section}" if section and section != title else title
    return f"{head}\n{text}" if head else text


@dataclass(frozen=True)
class NewChunk:
    """A chunk about to be stored. Spans are character offsets into the document text."""

    text: str
    char_start: int
    char_end: int
    n_tokens: int
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class NewDocument:
    """A parsed document with its chunks, ready to be written with its vectors.

    source is the document's key in the KB (its resolved path); text is the
    full extracted text that chunk spans point into.
    """

    source: str
    name: str
    title: str
    kind: str
    content_hash: str
    size_bytes: int
    text: str
    chunks: tuple[NewChunk, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document. version counts content changes, starting at 1."""

    id: int
    source: str
    name: str
    title: str
    kind: str
    content_hash: str
    version: int
    ingested_at: float
    n_chunks: int
    size_bytes: int


@dataclass(frozen=True)
class ChunkRecord:
    """A stored chunk with what a citation needs: document, version, page/section, span."""

    id: int
    doc_id: int
    doc_source: str
    doc_name: str
    doc_title: str
    doc_version: int
    ordinal: int
    text: str
    char_start: int
    char_end: int
    n_tokens: int
    page: int | None
    section: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One event in a document's life: added, updated or removed."""

    source: str
    version: int
    event: str
    content_hash: str
    n_chunks: int
    at: float


@dataclass(frozen=True)
class Feedback:
    """A support agent's verdict on an answer: which chunk it cited and whether it helped."""

    id: int
    question: str
    chunk_id: int | None
    doc_source: str | None
    helpful: bool
    at: float
