"""In-memory documents (one BEIR corpus entry each): ingested like files, without a folder to read."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ingest.chunker import chunk
from ingest.commit import KBLike, open_for_writing, stage_documents
from ingest.config import FileFailure, IngestConfig, IngestReport
from ingest.embed import ChunkEmbedder
from ingest.loaders import Block, ParsedText
from kb import NewDocument, load_embedder


@dataclass(frozen=True)
class TextRecord:
    """An in-memory document (e.g. one BEIR corpus entry): source is its unique key in the KB."""

    source: str
    title: str
    text: str
    name: str | None = None


def ingest_texts(
    kb: KBLike,
    records: Sequence[TextRecord],
    config: IngestConfig = IngestConfig(),
    *,
    embedder: ChunkEmbedder | None = None,
    on_progress: Callable[[str, float], None] | None = None,
) -> IngestReport:
    """Like ingest.ingest, for in-memory documents (one TextRecord each, chunked like a .txt file): kb is an
    open KnowledgeBase or the directory of one. With config.mirror, stored documents whose source is not
    among records are removed."""
    started = time.perf_counter()
    opened = open_for_writing(kb)
    embedder = embedder or load_embedder(config.embedder)
    stages: dict[str, float] = {"parse": 0.0}
    added: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    failures: list[FileFailure] = []
    docs: list[NewDocument] = []
    seen: set[str] = set()
    with opened.writer(model=embedder.name, dim=embedder.dim, wait=config.wait) as writer:
        stored = opened.hashes()
        t = time.perf_counter()
        for rec in records:
            if rec.source in seen:
                failures.append(FileFailure(rec.source, "duplicate source id; only the first record was kept"))
                continue
            seen.add(rec.source)
            data = (rec.title + "\n\n" + rec.text).encode("utf-8")
            if stored.get(rec.source) == hashlib.sha256(data).hexdigest():
                unchanged.append(rec.source)
                continue
            if not rec.text.strip():
                failures.append(FileFailure(rec.source, "empty text"))
                continue
            docs.append(_document(rec, data, config))
            (updated if rec.source in stored else added).append(rec.source)
        stages["parse"] = time.perf_counter() - t
        removed = sorted(s for s in stored if config.mirror and s not in seen)
        written = stage_documents(writer, docs, removed, embedder, config, on_progress, stages)
    return IngestReport(
        added=tuple(added),
        updated=tuple(updated),
        unchanged=tuple(unchanged),
        removed=tuple(removed),
        failed=tuple(failures),
        chunks_embedded=written.embedded,
        chunks_reused=written.reused,
        chunks_written=written.written,
        seconds=time.perf_counter() - started,
        stage_seconds=tuple(stages.items()),
    )


def _document(rec: TextRecord, data: bytes, config: IngestConfig) -> NewDocument:
    """rec as a text document with its chunks and the run's labels; data: the bytes its hash is taken of."""
    body = rec.text.strip()
    parsed = ParsedText(title=rec.title or rec.source, kind="text", text=body, blocks=(Block(0, len(body)),))
    return NewDocument(
        source=rec.source,
        name=rec.name or rec.source,
        title=parsed.title,
        kind="text",
        content_hash=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        text=body,
        chunks=tuple(chunk(parsed, config.chunking)),
        visibility=config.visibility,
        tags=config.tags,
    )
