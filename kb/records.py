"""Plain records that cross package boundaries: documents and chunks."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field


def retrieval_text(title: str, section: str | None, text: str) -> str:
    """What is embedded and indexed for a chunk: its text under its document title and section.

    The heading line gives a passage the context a bare paragraph lacks; citations
    still quote the chunk text alone.
    """
    head = f"{title} | {section}" if section and section != title else title
    return f"{head}\n{text}" if head else text


def text_hash(text: str) -> str:
    """Key of a chunk's embedding (of its retrieval text): identical text is embedded once per KB."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewChunk:
    """A chunk about to be stored. Spans are character offsets into the document text."""

    text: str
    char_start: int
    char_end: int
    n_tokens: int
    page: int | None = None
    section: str | None = None
    ocr_confidence: float | None = None  # 0-1, mean Tesseract word confidence of its page; None: a text layer


@dataclass(frozen=True)
class NewDocument:
    """A parsed document with its chunks, ready to be written with its vectors.

    source is the document's stable key in the KB: its path relative to the folder it was
    synced from, or the name an upload gives it, so the same document arriving by either route
    becomes a new version of one document. path: where its file was read (for downloads);
    root: the folder source is relative to ("" for single files, uploads and in-memory texts);
    visibility: who may see it ("internal", "public", ...); tags: labels set at ingest, for
    filters. encoding: how a text file was decoded ("utf-8", "cp1252", ...; "" for PDFs and texts).
    url, updated_at: where an exported article lives and when it last changed there (ISO 8601), for
    help-centre and wiki exports ("" otherwise). text is the full extracted text that chunk spans point into.
    """

    source: str
    name: str
    title: str
    kind: str
    content_hash: str
    size_bytes: int
    text: str
    chunks: tuple[NewChunk, ...] = field(default_factory=tuple)
    path: str = ""
    root: str = ""
    visibility: str = "internal"
    tags: tuple[str, ...] = ()
    encoding: str = ""
    url: str = ""
    updated_at: str = ""


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document. version counts content changes, starting at 1; see NewDocument for the rest."""

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
    path: str = ""
    root: str = ""
    visibility: str = "internal"
    tags: tuple[str, ...] = ()
    encoding: str = ""
    url: str = ""
    updated_at: str = ""


VISIBILITY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
TAG = re.compile(r"^[\w][\w .:/-]{0,63}$", re.UNICODE)


def web_url(url: str) -> str:
    """url when it is an absolute http(s) address, else "": addresses come from exports (anyone who can edit a
    help-centre article writes them), and a javascript: or data: link must never reach a client or a page."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit((url or "").strip())
    except ValueError:
        return ""
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else ""


def check_labels(visibility: str, tags: tuple[str, ...] | list[str]) -> tuple[str, tuple[str, ...]]:
    """(visibility, tags) checked: a visibility is a lower-case word (internal, public, ...); a tag is up to
    64 word characters, spaces or .:/-. Raises KBError naming the bad value and the rule."""
    from kb.errors import KBError

    if not isinstance(visibility, str) or not VISIBILITY.match(visibility):
        raise KBError(f"visibility {visibility!r} is not a label: use a lower-case word such as internal or public")
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not TAG.match(tag):
            raise KBError(f"tag {tag!r} is not allowed: up to 64 letters, digits, spaces or . : / - _")
        out.append(tag)
    return visibility, tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class DocumentFilter:
    """Which documents a search may use; None means no restriction on that field.

    visibility: allowed labels (a key scoped to ("public",) never sees "internal" documents);
    key_prefix: source keys starting with this (a folder "policies/" or a name); kinds: document
    types ("pdf", "markdown", "html", "text"); tags: documents carrying at least one of these;
    ingested_after: Unix time in seconds.
    """

    visibility: tuple[str, ...] | None = None
    key_prefix: str | None = None
    kinds: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    ingested_after: float | None = None

    @property
    def empty(self) -> bool:
        return self == DocumentFilter()


OCR_LOW_CONFIDENCE = 0.80  # mean word confidence (0-1) under which an OCR page is flagged; clean prints read ~0.95


def ocr_note(confidence: float | None) -> str:
    """How a citation flags a page read by OCR: "" for a text layer, "OCR 96%", or, under
    OCR_LOW_CONFIDENCE, "OCR 62%, low confidence: check the scan"."""
    if confidence is None:
        return ""
    note = f"OCR {confidence:.0%}"
    return note + ", low confidence: check the scan" if confidence < OCR_LOW_CONFIDENCE else note


def location_label(page: int | None, section: str | None, ocr_confidence: float | None = None) -> str:
    """The one format every interface shows a place in a document in: "p. 2", "§ Section" or "", with the
    OCR note of a scanned page: "p. 2 (OCR 62%, low confidence: check the scan)"."""
    place = f"p. {page}" if page is not None else (f"§ {section}" if section else "")
    note = ocr_note(ocr_confidence)
    return f"{place} ({note})" if note else place


@dataclass(frozen=True)
class ChunkRecord:
    """A stored chunk with what a citation needs: document, version, page/section, span; doc_url for an
    exported article; ocr_confidence (0-1) when its page was read by OCR."""

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
    doc_visibility: str = "internal"
    ocr_confidence: float | None = None
    doc_url: str = ""

    @property
    def where(self) -> str:
        """Where the chunk sits in its document (see location_label)."""
        return location_label(self.page, self.section, self.ocr_confidence)


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
    by: str | None = None
