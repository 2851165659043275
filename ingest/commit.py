"""The KB side of a run: the KB it writes to, opened once, and the staging of its documents (embedded
first, ingest.embed) and removals in the writer, whose one commit makes them visible together."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

from ingest.config import IngestConfig
from ingest.embed import ChunkEmbedder, embed_documents
from kb import KBWriteError, KnowledgeBase, NewDocument, Writer

KBLike = Union[KnowledgeBase, str, Path]
"""An open KnowledgeBase (its own snapshot serves a commit at once), or the directory of one."""


def open_for_writing(kb: KBLike) -> KnowledgeBase:
    """kb itself, or the KB in directory kb opened once (created if there is none). The directory must be
    writable: KBWriteError before any work is done."""
    path = _dir(kb)
    if (path / "kb.sqlite").exists() and not os.access(path, os.W_OK):
        # Say so now, not after parsing every file: nothing can be committed here.
        raise KBWriteError(
            f"cannot write the knowledge base at {path}: the directory is read-only (or not "
            "yours). Nothing was committed: the KB still holds its previous version. Fix the "
            "directory's permissions, then run the command again."
        )
    return kb if isinstance(kb, KnowledgeBase) else KnowledgeBase(path, create=True)


def open_for_reading(kb: KBLike) -> KnowledgeBase | None:
    """kb itself, or the KB in directory kb opened once; None where there is no KB yet (nothing is created)."""
    if isinstance(kb, KnowledgeBase):
        return kb
    return KnowledgeBase(kb) if (Path(kb) / "kb.sqlite").exists() else None


def _dir(kb: KBLike) -> Path:
    return kb.dir if isinstance(kb, KnowledgeBase) else Path(kb)


@dataclass(frozen=True)
class Staged:
    """The chunks of a run's documents: embedded now, reused from the KB's cache, and written."""

    embedded: int
    reused: int
    written: int


def stage_documents(
    writer: Writer,
    docs: Sequence[NewDocument],
    removed: Sequence[str],
    embedder: ChunkEmbedder,
    config: IngestConfig,
    on_progress: Callable[[str, float], None] | None,
    stages: dict[str, float],
) -> Staged:
    """Embed docs (ingest.embed), stage them and the removals in writer (committed when its context exits).
    Adds the embed and stage seconds to stages; returns the chunk counts for the report."""
    t = time.perf_counter()
    vectors, n_embedded, n_reused = embed_documents(docs, embedder, writer, config.progress, on_progress)
    stages["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    for doc, vecs in zip(docs, vectors):
        writer.put_document(doc, vecs)
    for source in removed:
        writer.remove_document(source)
    stages["stage"] = time.perf_counter() - t
    return Staged(n_embedded, n_reused, sum(len(d.chunks) for d in docs))
