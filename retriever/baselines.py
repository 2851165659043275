"""Baselines behind the same interface: dense (FAISS), BM25 (bm25s), hybrid (dense + char n-grams)."""

from __future__ import annotations

import faiss
import numpy as np

from retriever.base import Ranked, Retriever, top_k
from retriever.corpus import Corpus

_THREADS = faiss.omp_get_max_threads()


def dense_candidates(corpus: Corpus, qvecs: np.ndarray, k: int,
                     allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FAISS top-k chunk ids and inner products for each query: (B, k) each; missing slots are -1.

    allowed: sorted chunk ids a filtered search may return (None: every chunk).
    """
    # FAISS's OpenMP threads cost more than they save on a few queries (20x slower on a busy
    # 2-core machine), so small batches search single-threaded.
    faiss.omp_set_num_threads(1 if len(qvecs) < 16 else _THREADS)
    scores, ids = corpus.snapshot.search(qvecs, k, allowed)
    return ids.astype(np.int64), scores


def masked(scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """scores with the rows a filter excludes set to -inf (mask: allowed snapshot rows; None keeps all)."""
    if mask is None:
        return scores
    return np.where(mask, scores, -np.inf).astype(scores.dtype, copy=False)


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
    """Okapi BM25 over word tokens (bm25s, English stopwords)."""

    name = "bm25"
    uses_dense = False

    def _rank(self, corpus, queries, qvecs, k, allowed=None):
        mask = corpus.mask(allowed)
        out = []
        for q in queries:
            ids, scores = top_k(masked(corpus.bm25_scores(q), mask), corpus.ids, k)
            keep = np.isfinite(scores)
            out.append(Ranked(ids[keep], scores[keep]))
        return out


class HybridRetriever(Retriever):
    """Dense cosine plus character 3-5-gram TF-IDF cosine, z-scored over the candidate pool and summed.

    Candidates: the dense top-K united with the char top-K. char_weight scales the
    char signal (1.0 = equal say).
    """

    name = "hybrid"

    def __init__(self, *args, char_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.char_weight = char_weight

    def _rank(self, corpus, queries, qvecs, k, allowed=None):
        dense_ids, _ = dense_candidates(corpus, qvecs, self.candidates, allowed)
        mask = corpus.mask(allowed)
        char = corpus.char_scores(queries)
        out = []
        for b in range(len(queries)):
            pos = candidate_positions(corpus, dense_ids[b], masked(char[b], mask), self.candidates)
            dense = np.asarray(corpus.snapshot.vectors[pos]) @ qvecs[b]
            fused = zscore(dense) + self.char_weight * zscore(char[b][pos])
            ids, scores = top_k(fused, corpus.ids[pos], k)
            out.append(Ranked(ids, scores))
        return out


def candidate_positions(corpus: Corpus, dense_ids: np.ndarray, char_row: np.ndarray, k: int) -> np.ndarray:
    """Snapshot row numbers of the union of dense top-k ids and the char top-k rows, sorted.

    Rows a filter excluded carry -inf in char_row and are never candidates.
    """
    dense_pos = corpus.snapshot.positions(dense_ids[dense_ids >= 0])
    char_pos = np.argpartition(-char_row, min(k, len(char_row)) - 1)[:k] if len(char_row) > k else np.arange(len(char_row))
    char_pos = char_pos[np.isfinite(char_row[char_pos])]
    return np.union1d(dense_pos[dense_pos >= 0], char_pos)
