"""The exact BM25 top-k of a large KB, compiled (numba): accumulate the postings, then select, in reused buffers.

A question's BM25 score of a chunk is the sum of its terms' contributions, and each term's contributions come as
(snapshot rows ascending, score > 0) (retriever.corpus._TermScores). The kernel keeps, per thread, a zeroed float64
accumulator over every snapshot row and a list of the rows touched:

1. `add_term`, once per term in the question's term order: acc[row] += score, recording the row the first time
   (acc[row] == 0: every contribution is positive, so zero means untouched). Each row's sum is built in the same
   order, from the same 0.0, as numpy's bincount over the concatenated terms builds it, so the scores are the
   same floats, bit for bit, not merely close.
2. `select_top`: one pass over the touched rows keeps the k best in a heap, best meaning higher score, then lower
   row (the order corpus.Corpus.bm25_top has always returned, ties at the cut included), and zeroes each row's
   accumulator as it goes, so the buffers are ready for the next question.

Why compiled: at 1M chunks a long question's common words reach most chunks, and numpy's way (concatenate the
postings, a bincount into a fresh 8 MB array, flatnonzero over all rows, partition) spent its time allocating and
scanning every row, 10-180 ms a question; here the work is one read-modify-write per posting and one heap test
per touched row, in buffers allocated once. Nothing here runs for a small KB (numba's import and compilation cost
a second or more): corpus.KERNEL_MIN_CHUNKS decides.
"""

from __future__ import annotations

import threading

import numpy as np

try:  # numba caches the compiled code beside this file, or in ~/.cache/numba for a read-only install
    from numba import njit

    def _compile(function):
        try:
            return njit(cache=True, nogil=True)(function)
        except RuntimeError:  # no writable cache directory at all: compile in memory on first call
            return njit(nogil=True)(function)

except ImportError as missing:  # pragma: no cover - numba is a core dependency
    raise ImportError("the BM25 kernel of a large KB needs numba: pip install numba") from missing


def _add_term(rows, score, acc, touched, n):
    """acc[rows] += score, appending each row seen for the first time to touched[n:]; returns the new n."""
    for i in range(rows.shape[0]):
        r = rows[i]
        if acc[r] == 0.0:
            touched[n] = r
            n += 1
        acc[r] += score[i]
    return n


def _worse(value_a, row_a, value_b, row_b):
    """Whether (value_a, row_a) ranks below (value_b, row_b): a lower score, or the same score and a higher row."""
    return value_a < value_b or (value_a == value_b and row_a > row_b)


def _select_top(acc, touched, n, k, heap_rows, heap_values):
    """The k best of touched[:n] by acc (see _worse) into heap_rows/heap_values[:m], unordered; zeroes acc there.

    heap_*[0] is the worst kept (a binary min-heap under _worse). Returns m = min(k, n)."""
    m = 0
    for i in range(n):
        r = touched[i]
        v = acc[r]
        acc[r] = 0.0
        if m < k:  # sift the new entry up
            j = m
            m += 1
            while j > 0:
                parent = (j - 1) // 2
                if not _worse_compiled(v, r, heap_values[parent], heap_rows[parent]):
                    break
                heap_values[j] = heap_values[parent]
                heap_rows[j] = heap_rows[parent]
                j = parent
            heap_values[j] = v
            heap_rows[j] = r
        elif _worse_compiled(heap_values[0], heap_rows[0], v, r):  # replace the worst, sift it down
            j = 0
            while True:
                child = 2 * j + 1
                if child >= m:
                    break
                if child + 1 < m and _worse_compiled(
                    heap_values[child + 1], heap_rows[child + 1], heap_values[child], heap_rows[child]
                ):
                    child += 1
                if not _worse_compiled(heap_values[child], heap_rows[child], v, r):
                    break
                heap_values[j] = heap_values[child]
                heap_rows[j] = heap_rows[child]
                j = child
            heap_values[j] = v
            heap_rows[j] = r
    return m


def _contributions(ids, tf, dl, row_of, idf, k1, b, avg_length, out_rows, out_score):
    """One term's postings (chunk ids, tf, dl) as (snapshot row, BM25 contribution) into out_*[:m]; returns m.

    Ids the snapshot lacks (row_of -1, or beyond it) are skipped. The arithmetic is retriever.corpus's numpy,
    operation by operation, so the floats are the same: idf * tf / (tf + k1 * ((1 - b) + b * dl / avg_length))."""
    m = 0
    for i in range(ids.shape[0]):
        chunk = ids[i]
        if chunk >= row_of.shape[0]:
            continue
        r = row_of[chunk]
        if r < 0:
            continue
        t = np.float64(tf[i])
        norm = k1 * ((1 - b) + b * np.float64(dl[i]) / avg_length)
        out_rows[m] = r
        out_score[m] = idf * t / (t + norm)
        m += 1
    return m


_worse_compiled = _compile(_worse)
contributions = _compile(_contributions)
add_term = _compile(_add_term)
select_top = _compile(_select_top)


def term_contributions(
    records: np.ndarray, row_of: np.ndarray, idf: float, k1: float, b: float, avg_length: float
) -> tuple[np.ndarray, np.ndarray]:
    """retriever.corpus.term_contributions compiled, the same floats: (snapshot rows int64, BM25 contributions
    float64) of one term's POSTING records (kb.postings), live ones only."""
    rows = np.empty(len(records), dtype=np.int64)
    score = np.empty(len(records), dtype=np.float64)
    m = contributions(records["id"], records["tf"], records["dl"], row_of, idf, k1, b, avg_length, rows, score)
    return (rows, score) if m == len(records) else (rows[:m].copy(), score[:m].copy())


class Accumulator:
    """One thread's buffers for a snapshot of `size` rows: acc (float64, zeroed between questions) and touched."""

    def __init__(self, size: int) -> None:
        self.acc = np.zeros(size, dtype=np.float64)
        self.touched = np.empty(size, dtype=np.int64)

    def top(self, terms: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores float64) of the k best rows over terms [(rows int64 ascending, scores float64 > 0)], best
        first, ties by lower row; rows of a term must be < size and distinct within the term."""
        heap_rows = np.empty(k, dtype=np.int64)
        heap_values = np.empty(k, dtype=np.float64)
        n = 0
        try:
            for rows, score in terms:
                n = add_term(rows, score, self.acc, self.touched, n)
            m = select_top(self.acc, self.touched, n, k, heap_rows, heap_values)
        except BaseException:  # interrupted half-way (KeyboardInterrupt): no stale sums for the next question
            self.acc[:] = 0.0
            raise
        order = np.lexsort((heap_rows[:m], -heap_values[:m]))
        return heap_rows[order], heap_values[order]


_LOCAL = threading.local()


def accumulator(size: int) -> Accumulator:
    """This thread's Accumulator for `size` rows (made again when the snapshot's size changes)."""
    found = getattr(_LOCAL, "accumulator", None)
    if found is None or len(found.acc) != size:
        found = _LOCAL.accumulator = Accumulator(size)
    return found
