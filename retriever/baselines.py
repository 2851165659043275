"""Baselines behind the same interface: dense (FAISS), BM25 (postings in kb.sqlite), hybrid (dense + char n-grams)."""

from __future__ import annotations

import faiss
import numpy as np

from retriever.base import Ranked, Retriever, top_k
from retriever.corpus import Corpus

_THREADS = faiss.omp_get_max_threads()


def dense_candidates(
    corpus: Corpus, qvecs: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS top-k chunk ids and inner products for each query: (B, k) each; missing slots are -1.

    allowed: sorted chunk ids a filtered search may return (None: every chunk).
    """
    # FAISS's OpenMP threads cost more than they save on a few queries (20x slower on a busy
    # 2-core machine), so small batches search single-threaded.
    faiss.omp_set_num_threads(1 if len(qvecs) < 16 else _THREADS)
    scores, ids = corpus.snapshot.search(qvecs, k, allowed)
    return ids.astype(np.int64), scores


def zscore(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std along the last axis; a constant row becomes zeros."""
    sd = x.std(axis=-1, keepdims=True)
    return (x - x.mean(axis=-1, keepdims=True)) / np.where(sd > 1e-9, sd, 1.0)


class DenseRetriever(Retriever):
    """Cosine similarity of the query embedding to chunk embeddings (FAISS)."""

    name = "dense"

    def _rank(self, corpus, queries, qvecs, k, allowed=None):
        ids, scores = dense_candidates(corpus, qvecs, k, allowed)
        return [Ranked(i[i >= 0], s[i >= 0]) for i, s in zip(ids, scores)]


class BM25Retriever(Retriever):
    """Okapi BM25 over words (the KB's postings, every chunk scored; English stopwords dropped from the question)."""

    name = "bm25"
    uses_dense = False

    def _rank(self, corpus, queries, qvecs, k, allowed=None):
        out = []
        for q in queries:
            pos, scores = corpus.bm25_top(q, k, allowed)
            out.append(Ranked(corpus.ids[pos], scores))
        return out


class HybridRetriever(Retriever):
    """Dense cosine plus character 3-5-gram TF-IDF cosine, z-scored over the candidate pool and summed.

    Candidates: the dense top-K united with the BM25 top-K. char_weight scales the char signal
    (1.0 = equal say).
    """

    name = "hybrid"

    def __init__(self, *args, char_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.char_weight = char_weight

    def _rank(self, corpus, queries, qvecs, k, allowed=None):
        dense_ids, _ = dense_candidates(corpus, qvecs, self.candidates, allowed)
        out = []
        for b, q in enumerate(queries):
            pos = candidate_positions(corpus, dense_ids[b], corpus.bm25_top(q, self.candidates, allowed)[0])
            dense = np.asarray(corpus.snapshot.vectors[pos]) @ qvecs[b]
            fused = zscore(dense) + self.char_weight * zscore(corpus.char_at(q, pos))
            ids, scores = top_k(fused, corpus.ids[pos], k)
            out.append(Ranked(ids, scores))
        return out


def candidate_positions(corpus: Corpus, dense_ids: np.ndarray, lexical_pos: np.ndarray) -> np.ndarray:
    """Snapshot rows of the union of the dense top-K ids and the lexical top-K rows, sorted."""
    dense_pos = corpus.snapshot.positions(dense_ids[dense_ids >= 0])
    return np.union1d(dense_pos[dense_pos >= 0], lexical_pos).astype(np.int64)
