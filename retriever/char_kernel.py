"""Chunks' character n-gram vectors weighted and normalised, compiled (numba): one pass where numpy made ten.

Corpus._char_vectors turns a chunk's n-gram counts into unit-length sublinear TF-IDF weights,
w = (1 + ln tf) * idf[bucket], divided by the chunk's norm. At 1M chunks most of a question's ~250 candidates miss
the per-snapshot cache, and numpy's way (a log, a gather, a bincount of squares, a mask, a division and a split of
~260k entries, each a pass over fresh arrays) was ~8 ms of the question. Here each chunk is two passes over its own
entries. The floats are numpy's, bit for bit: ln tf is read from a table numpy computed (counts are whole numbers
clipped at 65,535), each norm is summed in float64 in the same order as numpy's bincount, and each weight is divided
in float64 and rounded to float32 as numpy does (tests/test_char_kernel.py holds them equal).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from retriever.postings_kernel import compiled

TF_CLIP = 65535  # counts above it weigh as it does (lexicon versions 7 and 8 stored them as uint16)


@lru_cache(maxsize=1)
def log_tf() -> np.ndarray:
    """1 + ln(max(tf, 1)) for every tf from 0 to TF_CLIP, float32, computed by numpy."""
    return (1 + np.log(np.maximum(np.arange(TF_CLIP + 1, dtype=np.float32), 1))).astype(np.float32)


def unit_weights(
    indptr: np.ndarray, buckets: np.ndarray, counts: np.ndarray, idf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, buckets uint32, unit float32) of N chunks' n-grams with a positive weight, in CSR form.

    indptr, buckets, counts: the chunks' n-gram counts (kb.lexicon.GramCounts); idf ((GRAM_BUCKETS,) float32): each
    bucket's idf, 0 where it is not counted. Each chunk's weights (1 + ln tf) * idf are divided by their norm (by 1
    where it is 0); entries of weight 0 are left out."""
    out_indptr = np.zeros(len(indptr), dtype=np.int64)
    out_buckets = np.empty(len(buckets), dtype=np.uint32)
    out_unit = np.empty(len(buckets), dtype=np.float32)
    k = _unit_weights(indptr, buckets, counts, idf, log_tf(), out_indptr, out_buckets, out_unit)
    return out_indptr, out_buckets[:k], out_unit[:k]


@compiled
def _unit_weights(
    indptr: np.ndarray,
    buckets: np.ndarray,
    counts: np.ndarray,
    idf: np.ndarray,
    table: np.ndarray,
    out_indptr: np.ndarray,
    out_buckets: np.ndarray,
    out_unit: np.ndarray,
) -> int:
    k = 0
    for t in range(len(indptr) - 1):
        norm = 0.0
        for p in range(indptr[t], indptr[t + 1]):
            w = np.float64(table[min(counts[p], TF_CLIP)] * idf[buckets[p]])
            norm += w * w
        norm = np.sqrt(norm) if norm > 0 else 1.0
        for p in range(indptr[t], indptr[t + 1]):
            w32 = table[min(counts[p], TF_CLIP)] * idf[buckets[p]]
            if w32 > 0:
                out_buckets[k] = buckets[p]
                out_unit[k] = np.float32(np.float64(w32) / norm)
                k += 1
        out_indptr[t + 1] = k
    return k
