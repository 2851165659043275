"""Vectors the extractive reader scores sentences with: passages from the KB's snapshot, sentences embedded on
demand and kept in a bounded per-process cache (the same passages come back for related questions)."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from kb import retrieval_text
from retriever.base import Retriever
from retriever.results import Hit


def passage_cosines(retriever: Retriever, qvec: np.ndarray, hits: tuple[Hit, ...]) -> np.ndarray:
    """cos(question, passage) from the KB's stored vectors; embeds a passage only if it is not in the snapshot."""
    ids = np.array([h.chunk.id for h in hits], dtype=np.int64)
    snap = retriever.kb.snapshot()
    pos = snap.positions(ids)
    vecs = np.zeros((len(hits), qvec.shape[0]), dtype=np.float32)
    found = pos >= 0
    if found.any():
        vecs[found] = np.asarray(snap.vectors)[pos[found]]
    if (~found).any():  # a sync committed between retrieval and now
        missing = [retrieval_text(h.chunk.doc_title, h.chunk.section, h.chunk.text) for h, f in zip(hits, found) if not f]
        vecs[~found] = retriever.embedder.encode(missing)
    return vecs @ qvec


_SENTENCE_VECTORS: "OrderedDict[tuple[int, str], np.ndarray]" = OrderedDict()
_SENTENCE_CACHE_SIZE = 8192
_SENTENCE_LOCK = threading.Lock()


def clear_sentence_cache() -> None:
    """Forget every cached sentence vector (benchmarks measuring the cold path call it)."""
    with _SENTENCE_LOCK:
        _SENTENCE_VECTORS.clear()


def embed_sentences(embedder, texts: list[str]) -> np.ndarray:
    """Sentence vectors, from a bounded per-process cache: the same passages come back for related questions."""
    keys = [(id(embedder), t) for t in texts]
    with _SENTENCE_LOCK:
        missing = list(dict.fromkeys(k[1] for k in keys if k not in _SENTENCE_VECTORS))
    fresh = dict(zip(missing, embedder.encode(missing))) if missing else {}
    with _SENTENCE_LOCK:
        for text, vec in fresh.items():
            _SENTENCE_VECTORS[(id(embedder), text)] = vec
        while len(_SENTENCE_VECTORS) > _SENTENCE_CACHE_SIZE:
            _SENTENCE_VECTORS.popitem(last=False)
        out = []
        for k in keys:
            vec = fresh.get(k[1])
            if vec is None:
                vec = _SENTENCE_VECTORS.get(k)
            if vec is None:  # evicted by a concurrent caller between the two steps
                vec = embedder.encode([k[1]])[0]
            out.append(vec)
    return np.stack(out)


def sentence_text(section: str | None, sentence: str) -> str:
    """What a sentence is embedded as: under its section, since "It takes 3 days." needs its context.
    (The document title as well, as passages have it, scored no better and costs ~30% more time.)"""
    flat = " ".join(sentence.split())
    return f"{section} | {flat}" if section else flat
