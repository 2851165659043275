"""The exact BM25 top-k of a large KB, compiled (numba): accumulate the postings, then select, in reused buffers.

A question's BM25 score of a chunk is the sum of its terms' contributions; each term's contributions come as
(snapshot rows ascending, score > 0), decoded from its postings by `term_contributions` in one pass with numpy's
arithmetic, operation by operation (retriever.corpus.term_contributions), so the same floats. The kernel borrows
a zeroed float64 accumulator over every snapshot row and a list of the rows touched (kept in a pool):

1. `_add_term`, once per term in the question's term order: acc[row] += score, recording the row the first time
   (acc[row] == 0: contributions are positive, so zero means untouched). Each row's sum is built in the same
   order, from the same 0.0, as numpy's bincount over the concatenated terms builds it, so the scores are the
   same floats, bit for bit, not merely close.
2. `_select_top`: one pass over the touched rows keeps the k best in a heap, best meaning higher score, then
   lower row (the order Corpus.bm25_top has always returned, ties at the cut included), and zeroes each row's
   accumulator as it goes, so the buffers are ready for the next question.

Every chunk a question word reaches is scored in full and compared, so the top-k is exact: nothing is pruned.

Why compiled: at 1M chunks a long question's common words reach most chunks, and numpy's way (concatenate the
postings, a bincount into a fresh 8 MB array, flatnonzero over all rows, partition) spent its time allocating and
scanning every row, 10-180 ms a question; here the work is one read-modify-write per posting and one heap test
per touched row, in buffers allocated once. Nothing here runs for a small KB (numba's import and compilation cost
~1 s): corpus.KERNEL_MIN_CHUNKS decides.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from numba import njit


def compiled(function):
    """function compiled, caching the machine code beside this file or, for a read-only install, in numba's
    user cache (~/.cache/numba); where neither can be written, compiled in memory on first call (~1 s)."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(nogil=True)(function)


@compiled
def _contributions(ids, tf, dl, row_of, idf, k1, b, avg_length, out_rows, out_score):
    """One term's postings (chunk ids, tf, dl) as (snapshot row, BM25 contribution) into out_*[:m]; returns m.
    Ids the snapshot lacks (row_of -1, or beyond it) are skipped."""
    m = 0
    for i in range(ids.shape[0]):
        chunk = ids[i]
        if chunk >= row_of.shape[0]:
            continue
        r = row_of[chunk]
        if r < 0:
            continue
        t = np.float64(tf[i])
        # numpy's order of operations in retriever.corpus.term_contributions: the same floats
        norm = k1 * ((1 - b) + b * np.float64(dl[i]) / avg_length)
        out_rows[m] = r
        out_score[m] = idf * t / (t + norm)
        m += 1
    return m


@compiled
def _add_term(rows, score, acc, touched, n):
    """acc[rows] += score, appending each row reached for the first time to touched[n:]; returns the new n."""
    for i in range(rows.shape[0]):
        r = rows[i]
        if acc[r] == 0.0 and score[i] > 0.0:  # a zero score leaves a row untouched, as numpy's total > 0 does
            touched[n] = r
            n += 1
        acc[r] += score[i]
    return n


@compiled
def _ranks_below(value_a, row_a, value_b, row_b):
    """Whether (value_a, row_a) ranks below (value_b, row_b): a lower score, or the same score and a higher row."""
    return value_a < value_b or (value_a == value_b and row_a > row_b)


@compiled
def _select_top(acc, touched, n, k, heap_rows, heap_values):
    """The k best of touched[:n] by acc (_ranks_below) into heap_rows/heap_values[:m], unordered, m = min(k, n);
    zeroes acc at touched[:n]. heap_*[0] is the worst kept: a binary min-heap under _ranks_below."""
    m = 0
    for i in range(n):
        r = touched[i]
        v = acc[r]
        acc[r] = 0.0
        if m < k:  # room left: sift the new entry up
            j = m
            m += 1
            while j > 0:
                parent = (j - 1) // 2
                if not _ranks_below(v, r, heap_values[parent], heap_rows[parent]):
                    break
                heap_values[j] = heap_values[parent]
                heap_rows[j] = heap_rows[parent]
                j = parent
            heap_values[j] = v
            heap_rows[j] = r
        elif _ranks_below(heap_values[0], heap_rows[0], v, r):  # better than the worst kept: replace it, sift down
            j = 0
            while True:
                child = 2 * j + 1
                if child >= m:
                    break
                if child + 1 < m and _ranks_below(
                    heap_values[child + 1], heap_rows[child + 1], heap_values[child], heap_rows[child]
                ):
                    child += 1
                if not _ranks_below(heap_values[child], heap_rows[child], v, r):
                    break
                heap_values[j] = heap_values[child]
                heap_rows[j] = heap_rows[child]
                j = child
            heap_values[j] = v
            heap_rows[j] = r
    return m


def term_contributions(
    records: np.ndarray, row_of: np.ndarray, idf: float, k1: float, b: float, avg_length: float
) -> tuple[np.ndarray, np.ndarray]:
    """retriever.corpus.term_contributions compiled, the same floats: (snapshot rows int64, BM25 contributions
    float64) of one term's POSTING records (kb.postings), live ones only."""
    rows = np.empty(len(records), dtype=np.int64)
    score = np.empty(len(records), dtype=np.float64)
    m = _contributions(records["id"], records["tf"], records["dl"], row_of, idf, k1, b, avg_length, rows, score)
    return (rows, score) if m == len(records) else (rows[:m].copy(), score[:m].copy())


class Accumulator:
    """One thread's buffers for a snapshot of `size` rows: acc (float64, zeroed between questions) and touched."""

    def __init__(self, size: int) -> None:
        self.acc = np.zeros(size, dtype=np.float64)
        self.touched = np.empty(size, dtype=np.int64)

    def top(self, terms: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores float64) of the k best rows over terms [(rows int64, scores float64 >= 0)], best first,
        ties by lower row; only rows with a positive sum. Each term's rows must be distinct and below size (they
        index the buffers unchecked)."""
        k = max(0, min(k, len(self.acc)))
        heap_rows = np.empty(k, dtype=np.int64)
        heap_values = np.empty(k, dtype=np.float64)
        n = 0
        try:
            for rows, score in terms:
                n = _add_term(rows, score, self.acc, self.touched, n)
            m = _select_top(self.acc, self.touched, n, k, heap_rows, heap_values)
        except BaseException:  # interrupted half-way (KeyboardInterrupt): no stale sums for the next question
            self.acc[:] = 0.0
            raise
        order = np.lexsort((heap_rows[:m], -heap_values[:m]))
        return heap_rows[order], heap_values[order]


# Free accumulators by snapshot size, the sizes most recently asked for last: as many of a size exist as questions
# ran at once (16 MB each at 1M chunks), not one per thread a server ever ran a question on.
_POOL: OrderedDict[int, list[Accumulator]] = OrderedDict()
_POOL_LOCK = threading.Lock()
POOLED_SIZES = 4  # snapshots (KBs, or one KB across syncs) whose accumulators are kept


@contextmanager
def borrowed(size: int) -> Iterator[Accumulator]:
    """A zeroed Accumulator for snapshots of `size` rows, from the pool or new, given back to it afterwards."""
    with _POOL_LOCK:
        free = _POOL.get(size)
        found = free.pop() if free else None
    found = found if found is not None else Accumulator(size)
    try:
        yield found
    finally:
        with _POOL_LOCK:
            _POOL.setdefault(size, []).append(found)
            _POOL.move_to_end(size)
            while len(_POOL) > POOLED_SIZES:
                _POOL.popitem(last=False)


def top_k(terms: list[tuple[np.ndarray, np.ndarray]], k: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Accumulator.top over a snapshot of `size` rows, in a borrowed accumulator."""
    with borrowed(size) as buffers:
        return buffers.top(terms, k)
