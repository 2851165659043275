"""One file's bytes -> a NewDocument with its chunks: loaded, chunked and checked for plausibility.

Runs inside the parse worker (ingest.worker), under its time and memory budget. Names are made
printable and storable here: a file name that is not UTF-8 keeps its bytes as \\xNN escapes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable

from ingest.chunker import ChunkConfig, chunk
from ingest.loaders import LoadError, load
from ingest.ocr import OcrConfig
from kb import NewDocument


def shown(path: Path | str) -> str:
    """A path as text that any store and terminal take: bytes that are not UTF-8 (a name written by
    another system) become \\xNN escapes; the file itself is still opened by its real name."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def parse_file(
    path: Path,
    data: bytes,
    chunking: ChunkConfig,
    key: str | None = None,
    root: str = "",
    visibility: str = "internal",
    tags: tuple[str, ...] = (),
    ocr: OcrConfig | None = None,
    on_ocr_page: Callable[[float], None] | None = None,
    kind: str = "",
) -> tuple[NewDocument, tuple[str, ...]]:
    """Parse and chunk one file's bytes into a document keyed key (default: the file name); raises LoadError.
    ocr, on_ocr_page and kind: see ingest.loaders.load."""
    try:
        parsed = load(path, data, ocr, on_ocr_page, kind)
        _check_text(path, data, parsed.text)  # before chunking: tokenising 10 MB of base64 is the slow part
        chunks = chunk(parsed, chunking)
    except LoadError:
        raise
    except Exception as exc:  # a parser bug on odd input must not stop the run
        raise LoadError(path, f"could not parse ({type(exc).__name__}: {exc})") from exc
    if not chunks:
        raise LoadError(path, "no text content to index")
    _check_chunks(path, chunks)
    doc = NewDocument(
        source=key or shown(path.name),
        name=shown(path.name),
        title=parsed.title,
        kind=parsed.kind,
        content_hash=parsed.content_hash or hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        text=parsed.text,
        chunks=tuple(chunks),
        path=shown(path),
        root=root,
        visibility=visibility,
        tags=tuple(tags),
        encoding=parsed.encoding,
        url=parsed.url,
        updated_at=parsed.updated_at,
    )
    return doc, parsed.warnings


# A text is not prose when most of it sits in runs this long without a space (base64, hex, minified code).
NO_SPACE_RUN = 200
MAX_EXPANSION = 60  # extracted characters per file byte: compressed PDF text rarely passes ~10
MAX_DUPLICATE_SHARE = 0.9


def _check_text(path: Path, data: bytes, text: str) -> None:
    """LoadError for text no reader wants indexed: absurd expansion, encoded data."""
    if len(text) > MAX_EXPANSION * max(len(data), 1) and len(text) > 1_000_000:
        raise LoadError(
            path,
            f"{len(data):,} bytes expand to {len(text):,} characters of text "
            f"(over {MAX_EXPANSION}x): refused as a decompression bomb",
        )
    if len(text) > 20_000:
        runs = sum(len(m) for m in re.findall(r"\S{%d,}" % NO_SPACE_RUN, text))
        if runs > 0.5 * len(text):
            raise LoadError(
                path,
                f"{100 * runs / len(text):.0f}% of the text is in runs of {NO_SPACE_RUN}+ characters "
                "without a space (encoded or binary data, not prose): refused",
            )


def _check_chunks(path: Path, chunks) -> None:
    """LoadError for a file whose chunks are nearly all copies of each other."""
    if len(chunks) >= 20:
        distinct = len({c.text for c in chunks})
        if distinct < (1 - MAX_DUPLICATE_SHARE) * len(chunks):
            raise LoadError(
                path,
                f"{len(chunks) - distinct} of its {len(chunks)} chunks repeat others: refused "
                "as repetitive (over 90% duplicates)",
            )
