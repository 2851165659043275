"""Embedding a run's chunks: only texts the KB's cache does not hold are embedded, and each part is
cached as it arrives, so a crashed run's embedding work is reused by the next run."""

from __future__ import annotations

from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from kb import NewDocument, Writer, retrieval_text, text_hash

# Vectors are saved to the KB's embedding cache every this many chunks.
CACHE_EVERY = 256


class ChunkEmbedder(Protocol):
    """What embedding a run's chunks needs: the model's name and dimension (the KB records them) and
    encode(texts) -> float32 (len(texts), dim) unit vectors. Every kb.TextEmbedder is one, and so is
    ingest.ray_engine.RayEmbedder, which also streams parts (encode_stream)."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


def embed_documents(
    docs: Sequence[NewDocument],
    embedder: ChunkEmbedder,
    writer: Writer,
    progress: bool = False,
    on_progress: Callable[[str, float], None] | None = None,
) -> tuple[list[np.ndarray], int, int]:
    """(one float32 (n_chunks, dim) array per doc, chunks embedded, chunks reused from the cache).
    progress: let the embedder draw a progress bar; on_progress("embed", fraction) after each part."""
    texts = [retrieval_text(d.title, c.section, c.text) for d in docs for c in d.chunks]
    cached = writer.cached_vectors(texts)
    hashes = [text_hash(t) for t in texts]
    # Longest first, so each part of CACHE_EVERY holds texts of like lengths and the embedder's batches
    # pad little (in hash order, every part spanned all lengths); the hash keeps the order fixed.
    todo = sorted({h: t for h, t in zip(hashes, texts) if h not in cached}.items(), key=lambda ht: (-len(ht[1]), ht[0]))
    done = 0
    for idx, vecs in _encoded(embedder, [t for _, t in todo], progress and len(todo) > CACHE_EVERY):
        part = [todo[i] for i in idx]
        writer.cache_vectors([t for _, t in part], vecs)
        cached.update({h: v for (h, _), v in zip(part, vecs)})
        done += len(part)
        if on_progress:
            on_progress("embed", done / len(todo))
    out, pos = [], 0
    for d in docs:
        n = len(d.chunks)
        out.append(np.stack([cached[h] for h in hashes[pos : pos + n]]) if n else np.zeros((0, embedder.dim), np.float32))
        pos += n
    return out, len(todo), len(texts) - len(todo)


def _encoded(embedder: ChunkEmbedder, texts: list[str], progress: bool) -> Iterator[tuple[Sequence[int], np.ndarray]]:
    """(indices into texts, vectors) in parts of about CACHE_EVERY texts, each cached as it comes. An
    embedder with encode_stream (ingest.ray_engine.RayEmbedder) streams parts from its actors, in any order."""
    stream = getattr(embedder, "encode_stream", None)
    if stream is not None:
        yield from stream(texts, CACHE_EVERY)
        return
    for start in range(0, len(texts), CACHE_EVERY):
        yield (
            range(start, min(start + CACHE_EVERY, len(texts))),
            embedder.encode(texts[start : start + CACHE_EVERY], progress=progress),
        )
