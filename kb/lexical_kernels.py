"""The lexical index's inner loops compiled with numba, for rebuilds and large commits: the character n-gram hashing
of kb.lexicon.gram_counts, the count of chunks per n-gram bucket, and the grouping of postings by term.

Each gives what its numpy counterpart gives (tests/test_lexical_kernels.py holds them equal) in one pass where numpy
makes several. Importing numba and loading the compiled functions costs ~0.5 s (a first compile, cached beside
this file, ~2 s), so only big jobs call them: a question's n-grams and small commits stay in numpy.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

_kernels: dict[str, Callable[..., Any]] = {}


def hashed_buckets(
    codes: np.ndarray, left: np.ndarray, m: int, multiplier: np.uint64, buckets: int
) -> tuple[np.ndarray, np.ndarray]:
    """(bucket of each in-word 3-5-gram, uint32, by start position then n; before (m + 1,) int64: the n-grams
    starting before each position). codes: the padded text's code points plus one (uint64); left: characters left
    in each position's padded word (int64); m: the positions a 3-gram can start at; buckets: a power of two."""
    return _compiled()["hash"](codes, left, m, multiplier, np.uint64(buckets - 1))


def count_buckets(counts: np.ndarray, buckets: np.ndarray) -> None:
    """Add one to counts (int64) at each of buckets (uint32): np.add.at without its conversions, ~10x faster."""
    _compiled()["count"](counts, buckets)


def group_by_code(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, bounds): order (int64) lists the positions of codes (int64 in [0, n)) code by code, each code's in
    their original order (np.argsort(codes, kind="stable")); code c's run is order[bounds[c]:bounds[c + 1]]."""
    return _compiled()["group"](codes, n)


def loaded() -> bool:
    """Whether this process has compiled the kernels already (so using them costs nothing more)."""
    return bool(_kernels)


def _compiled() -> dict[str, Callable[..., Any]]:
    """The compiled functions (imported and compiled on first call; a process forked after it inherits them)."""
    if not _kernels:
        from numba import njit

        compiled = njit(cache=True, nogil=True)
        _kernels.update(hash=compiled(_hash), count=compiled(_count), group=compiled(_group))
    return _kernels


def _count(counts: np.ndarray, buckets: np.ndarray) -> None:
    for b in buckets:
        counts[b] += 1


def _group(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    bounds = np.zeros(n + 1, dtype=np.int64)
    for c in codes:
        bounds[c + 1] += 1
    for c in range(n):
        bounds[c + 1] += bounds[c]
    at = bounds[:-1].copy()
    order = np.empty(len(codes), dtype=np.int64)
    for i in range(len(codes)):
        order[at[codes[i]]] = i
        at[codes[i]] += 1
    return order, bounds


def _hash(
    codes: np.ndarray, left: np.ndarray, m: int, multiplier: np.uint64, mask: np.uint64
) -> tuple[np.ndarray, np.ndarray]:
    # Every constant a uint64: numba widens uint64 mixed with int64 to float64.
    c1, c2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
    s33, k31 = np.uint64(33), np.uint64(31)
    total = 0
    for i in range(m):
        if left[i] >= 3:
            total += min(left[i], 5) - 2
    out = np.empty(total, dtype=np.uint32)
    before = np.empty(m + 1, dtype=np.int64)
    k = 0
    for i in range(m):
        before[i] = k
        last = min(left[i], 5)
        if last < 3:
            continue
        h = codes[i] * multiplier + codes[i + 1]
        for n in range(3, last + 1):
            h = h * multiplier + codes[i + n - 1]
            x = h * k31 + np.uint64(n)
            x ^= x >> s33
            x *= c1
            x ^= x >> s33
            x *= c2
            x ^= x >> s33
            out[k] = np.uint32(x & mask)
            k += 1
    before[m] = k
    return out, before
