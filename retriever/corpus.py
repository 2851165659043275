"""What every retriever reads from one KB snapshot: the dense vectors and the lexical index.

Nothing here is built from the chunk texts when a process starts or after a sync: the lexical
index (BM25 postings over words, character n-grams, word document frequencies) lives in kb.sqlite and is
kept up to date by each commit (kb.lexicon). A Corpus only reads it: Okapi BM25 as bm25s computes it
(Lucene IDF, k1 1.5, b 0.75), over all chunks or a question's candidates, from the question's terms'
postings alone (numpy, no chunk text); character TF-IDF cosines of the candidates from their n-gram counts
(counted from their texts, then kept per snapshot) and the stored n-gram document frequencies.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from kb import GRAM_BUCKETS, KnowledgeBase, Snapshot, bm25_terms, char_grams

# Chunks whose n-gram vectors stay in memory (an eval re-reads the same candidates under every condition):
# about 7 KiB each, so at most ~200 MiB.
CACHED_CHUNKS = 30_000
# Questions whose BM25 postings stay in memory: a reader scores the same question's pool and candidates.
CACHED_QUESTIONS = 8
# Terms in at least COMMON_TERM_POSTINGS chunks keep their BM25 contributions in memory, up to CACHED_POSTINGS
# entries in all (16 bytes each: ~96 MiB); see Corpus._read_terms.
COMMON_TERM_POSTINGS = 5_000
CACHED_POSTINGS = 6_000_000
BM25_K1, BM25_B = 1.5, 0.75
# From this many chunks bm25_top runs the compiled kernel (retriever.postings_kernel): there a long question's
# common words reach most chunks and numpy's pass over every row was the reader's slowest step; below it, numpy
# costs a few ms and a fresh `kb ask` skips numba's import and compilation (~1 s).
KERNEL_MIN_CHUNKS = 200_000
# A KB of more chunks than CACHED_CHUNKS counts most candidates' character n-grams afresh for each question (from
# their texts: ~90 µs a chunk in numpy, ~20 µs compiled by kb.lexical_kernels), so there they are counted compiled;
# a smaller KB's stay cached after its first questions, and a fresh `kb ask` on it skips numba's import.
CHAR_KERNEL_MIN_CHUNKS = CACHED_CHUNKS


class SnapshotMoved(Exception):
    """The lexical index (one, in kb.sqlite) already holds a later commit than this Corpus's snapshot: what it
    answers would mix two versions. Rank again on the new snapshot."""


@dataclass(frozen=True)
class _TermScores:
    """One question term's BM25 contributions: rows (snapshot rows holding it, ascending) and score (each row's
    idf * tf / (tf + k1 (1 - b + b dl / avgdl)), times the term's repeats in the question)."""

    rows: np.ndarray
    score: np.ndarray


@dataclass
class Corpus:
    """One snapshot of one KB, with reads of its lexical index. Thread-safe."""

    kb: KnowledgeBase
    snapshot: Snapshot
    _grams: "OrderedDict[int, tuple[np.ndarray, np.ndarray]]" = field(default_factory=OrderedDict, repr=False)
    _terms: "OrderedDict[tuple[str, ...], list[_TermScores]]" = field(default_factory=OrderedDict, repr=False)
    _common: "OrderedDict[str, _TermScores]" = field(default_factory=OrderedDict, repr=False)
    _common_size: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    previous: "Corpus | None" = field(default=None, repr=False)  # the KB's snapshot before: what can carry over

    @property
    def ids(self) -> np.ndarray:
        return self.snapshot.ids

    def mask(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """Boolean (N,) over snapshot rows: True where the chunk id is in allowed (sorted ids); None for None."""
        if allowed is None:
            return None
        return np.isin(self.ids, allowed, assume_unique=True)

    # ---- BM25 (words) --------------------------------------------------------------------------
    @cached_property
    def _row_of(self) -> np.ndarray:
        """Snapshot row of each chunk id, -1 for ids the snapshot lacks: (largest id + 1,) int32."""
        top = int(self.ids[-1]) + 1 if self.snapshot.size else 0
        rows = np.full(top, -1, dtype=np.int32)
        rows[self.ids] = np.arange(self.snapshot.size, dtype=np.int32)
        return rows

    def _term_scores(self, query: str) -> list[_TermScores]:
        """Each of query's BM25 terms the KB holds, with its contribution to every snapshot row holding it."""
        key = tuple(sorted(bm25_terms(query)))
        with self._lock:
            if key in self._terms:
                self._terms.move_to_end(key)
                return self._terms[key]
        repeats = Counter(key)
        known = self._common_terms(list(repeats))
        missing = [t for t in repeats if t not in known]
        if missing and self.snapshot.size:
            known.update(self._read_terms(missing))
        out = [
            known[t] if r == 1 else _TermScores(known[t].rows, r * known[t].score) for t, r in repeats.items() if t in known
        ]
        with self._lock:
            self._terms[key] = out
            while len(self._terms) > CACHED_QUESTIONS:
                self._terms.popitem(last=False)
        return out

    def _common_terms(self, terms: list[str]) -> dict[str, _TermScores]:
        """The cached ones of terms (see _read_terms)."""
        with self._lock:
            found = {t: self._common[t] for t in terms if t in self._common}
            for t in found:
                self._common.move_to_end(t)
        return found

    def _read_terms(self, terms: list[str]) -> dict[str, _TermScores]:
        """{term: its _TermScores, once} for the terms the KB holds, read from the postings; common ones are kept.

        Why keep them: at 1M chunks a question's common words ("cells", "patients") hold ~100k postings each,
        and reading them was a third of the reader's time; they come back in question after question, while a
        rare word costs little to read again. At most CACHED_POSTINGS entries stay in memory."""
        read = self.kb.term_postings(terms)
        if read.token != self.snapshot.token:
            raise SnapshotMoved(f"the lexical index is at commit {read.token}, not snapshot {self.snapshot.token}")
        n = self.snapshot.size
        avg_length = read.total_length / max(n, 1)
        out: dict[str, _TermScores] = {}
        for term in terms:
            if term not in read.df or term not in read.postings:
                continue
            idf = math.log(1 + (n - read.df[term] + 0.5) / (read.df[term] + 0.5))
            out[term] = self._contributions(read.postings[term], idf, max(avg_length, 1e-9))
        with self._lock:
            for term, scores in out.items():
                if len(scores.rows) >= COMMON_TERM_POSTINGS and term not in self._common:
                    self._common[term] = scores
                    self._common_size += len(scores.rows)
            while self._common_size > CACHED_POSTINGS:
                self._common_size -= len(self._common.popitem(last=False)[1].rows)
        return out

    def _contributions(self, records: np.ndarray, idf: float, avg_length: float) -> _TermScores:
        """One term's POSTING records (kb.postings) as its _TermScores over this snapshot's live rows."""
        if self.snapshot.size >= KERNEL_MIN_CHUNKS:  # the same floats, one compiled pass (a 1M KB's common words)
            from retriever.postings_kernel import term_contributions as compiled

            return _TermScores(*compiled(records, self._row_of, idf, BM25_K1, BM25_B, avg_length))
        return _TermScores(*term_contributions(records, self._row_of, idf, avg_length))

    def bm25_top(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(snapshot rows, BM25 scores) of the k best chunks for query's words, best first (ties: lower row
        first); only allowed ids when given (sorted). Every chunk holding a query word is scored exactly."""
        terms = [(t.rows, t.score) for t in self._term_scores(query)]
        if not terms or k < 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if allowed is not None:
            terms = [(rows[keep], score[keep]) for rows, score in terms for keep in [np.isin(self.ids[rows], allowed)]]
        if self.snapshot.size >= KERNEL_MIN_CHUNKS:
            from retriever.postings_kernel import top_k  # numba: only a large KB pays its import

            hit, values = top_k(terms, k, self.snapshot.size)
            return hit, values.astype(np.float32)
        rows = np.concatenate([rows for rows, _ in terms])
        score = np.concatenate([score for _, score in terms])
        total = np.bincount(rows, weights=score, minlength=self.snapshot.size)
        hit = np.flatnonzero(total > 0)
        values = total[hit]
        if len(hit) > k:
            hit, values = _at_least_kth(hit, values, k)
            kth = np.partition(values, len(values) - k)[len(values) - k]
            above = np.flatnonzero(values > kth)
            ties = np.flatnonzero(values == kth)[: k - len(above)]
            chosen = np.concatenate([above, ties])
            hit, values = hit[chosen], values[chosen]
        order = np.lexsort((hit, -values))
        return hit[order], values[order].astype(np.float32)

    def bm25_at(self, query: str, positions: np.ndarray) -> np.ndarray:
        """BM25 scores of query's words for the given snapshot rows (0 where none of them occurs), exactly as
        bm25s would score them over this snapshot. Query terms the KB lacks add nothing; repeats count twice."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.zeros(len(positions), dtype=np.float64)
        if not len(positions):
            return out.astype(np.float32)
        for term in self._term_scores(query):
            if not len(term.rows):
                continue
            at = np.minimum(np.searchsorted(term.rows, positions), len(term.rows) - 1)
            hit = term.rows[at] == positions
            out[hit] += term.score[at[hit]]
        return out.astype(np.float32)

    def _present(self, entries: list) -> list:
        """entries, unless a later commit removed one of their chunks (SnapshotMoved)."""
        if any(e is None for e in entries):
            raise SnapshotMoved(f"a chunk of snapshot {self.snapshot.token} is gone from the lexical index")
        return entries

    def _cached(self, cache: OrderedDict, ids: np.ndarray, load) -> list:
        """cache's entries for ids, loading the missing ones with load(list of ids) -> {id: entry}."""
        with self._lock:
            missing = [int(i) for i in ids if int(i) not in cache]
        if missing:
            fresh = load(missing)
            with self._lock:
                cache.update(fresh)
                while len(cache) > CACHED_CHUNKS:
                    cache.popitem(last=False)
        with self._lock:
            return [cache.get(int(i)) for i in ids]

    # ---- character n-grams ---------------------------------------------------------------------
    @cached_property
    def _char_idf(self) -> np.ndarray:
        """idf of each n-gram bucket, 0 where too rare to count: sklearn's smoothed TF-IDF with min_df 2 (1 for
        KBs of 50 chunks or fewer), as a TfidfVectorizer fitted on this snapshot's chunks would weigh them."""
        df = self.kb.char_df()
        n = max(self.snapshot.size, 1)
        idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
        idf[df < (2 if n > 50 else 1)] = 0.0
        return idf

    def _char_vectors(self, ids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{chunk id: (its n-gram buckets, their unit-length sublinear TF-IDF weights)} under this snapshot's idf."""
        compiled = self.snapshot.size > CHAR_KERNEL_MIN_CHUNKS
        found, counted = self.kb.chunk_grams(ids, compiled=compiled)
        if not len(found):
            return {}
        weigh = unit_weights
        if compiled:  # the same floats in one compiled pass
            from retriever.char_kernel import unit_weights as weigh
        indptr, kept, unit = weigh(counted.indptr, counted.buckets, counted.counts, self._char_idf)
        bounds = indptr.tolist()
        return {c: (kept[s:e], unit[s:e]) for c, s, e in zip(found.tolist(), bounds, bounds[1:])}

    def char_at(self, query: str, positions: np.ndarray) -> np.ndarray:
        """Cosine of the character 3-5-gram TF-IDF (sublinear tf) of query with each given snapshot row."""
        q = char_grams([query])
        q.sort_indices()
        q_w = (1 + np.log(q.data)) * self._char_idf[q.indices]
        q_norm = np.linalg.norm(q_w)
        if q_norm == 0 or not len(positions):
            return np.zeros(len(positions), dtype=np.float32)
        q_w = q_w / q_norm
        rows = self._present(self._cached(self._grams, self.ids[positions], self._char_vectors))
        buckets = np.concatenate([b for b, _ in rows])
        weights = np.concatenate([w for _, w in rows])
        row_of = np.repeat(np.arange(len(rows)), [len(b) for b, _ in rows])
        # The question's buckets set in a zeroed per-thread bitmap of all buckets (512 KiB: it stays in cache, where
        # the 16 MiB of weights would not), which picks the chunks' n-grams the question shares; only those read
        # the question's weights, spread over a zeroed per-thread array of all buckets. Both are zeroed again.
        bits, dense = _scratch()
        np.bitwise_or.at(bits, q.indices >> 3, (1 << (q.indices & 7)).astype(np.uint8))
        dense[q.indices] = q_w
        try:
            shared = np.flatnonzero((bits[buckets >> 3] >> (buckets & 7).astype(np.uint8)) & 1)
            hit = buckets[shared]
            dots = np.bincount(row_of[shared], weights=weights[shared] * dense[hit], minlength=len(rows))
        finally:
            bits[q.indices >> 3] = 0
            dense[q.indices] = 0.0
        return dots.astype(np.float32)

    # ---- words ---------------------------------------------------------------------------------
    @cached_property
    def vocabulary(self):
        """The Hopfield memory of the KB's words, for query repair (its heavy parts build on first need)."""
        from retriever.vocabulary import VocabularyMemory

        pairs = self.kb.vocabulary()
        words, counts = [w for w, _ in pairs], np.array([c for _, c in pairs], dtype=np.int64)
        before, self.previous = self.previous, None
        if before is not None and "vocabulary" in before.__dict__:
            return before.vocabulary.updated(words, counts)
        return VocabularyMemory(words, counts)

    def idf(self, words: set[str] | list[str]) -> dict[str, float]:
        """ln((N+1)/(df+0.5)) of each word over this KB's chunks (largest for words it lacks)."""
        n = self.snapshot.size
        df = self.kb.term_df([w for w in words if len(w) > 1])
        # One-character tokens ("5", "x") are not in the word index; call them common, not rare.
        return {w: math.log((n + 1) / ((df.get(w, 0) if len(w) > 1 else n) + 0.5)) for w in words}


def unit_weights(
    indptr: np.ndarray, buckets: np.ndarray, counts: np.ndarray, idf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, buckets uint32, unit float32): N chunks' n-grams (kb.lexicon.GramCounts' indptr, buckets,
    counts) weighted (1 + ln tf) * idf[bucket] (idf (GRAM_BUCKETS,) float32) and divided by each chunk's norm (by 1
    where it is 0), in CSR form; entries of weight 0 left out. retriever.char_kernel compiles the same floats."""
    # All chunks at once: one pass of numpy over their n-grams instead of a few calls per chunk. The counts as
    # float32 clipped at 65,535, as lexicon versions 7 and 8 stored them: the same weights to the bit.
    owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    weights = (1 + np.log(np.maximum(np.minimum(counts, 65535).astype(np.float32), 1))) * idf[buckets]
    norms = np.sqrt(np.bincount(owner, weights=np.square(weights, dtype=np.float64), minlength=len(indptr) - 1))
    keep = weights > 0
    unit = (weights[keep] / np.where(norms > 0, norms, 1.0)[owner[keep]]).astype(np.float32)
    return np.r_[0, np.cumsum(np.bincount(owner[keep], minlength=len(indptr) - 1))], buckets[keep], unit


def term_contributions(
    records: np.ndarray, row_of: np.ndarray, idf: float, avg_length: float
) -> tuple[np.ndarray, np.ndarray]:
    """(snapshot rows int64, BM25 contributions float64) of one term's POSTING records (kb.postings), live ones only:
    row_of maps a chunk id to its snapshot row (-1 where the snapshot lacks it); each contribution is
    idf * tf / (tf + k1 (1 - b + b dl / avg_length)), avg_length the snapshot's mean chunk length in terms."""
    ids = records["id"].astype(np.int64)
    rows = np.where(ids < len(row_of), row_of[np.minimum(ids, len(row_of) - 1)], -1)
    live = rows >= 0  # a removed chunk's entries stay until its term's segments merge (kb.postings)
    tf = records["tf"][live].astype(np.float64)
    norm = BM25_K1 * (1 - BM25_B + BM25_B * records["dl"][live] / avg_length)
    return rows[live].astype(np.int64), idf * tf / (tf + norm)


def _at_least_kth(rows: np.ndarray, values: np.ndarray, k: int, stride: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(rows, values) cut to the entries that can be among the k largest values, order kept, ties all kept.

    The k-th largest of every stride-th value is a floor for the k-th largest of all (a subset's k-th largest
    is never above the whole set's), so what lies below it can go before the exact partition: at 1M chunks a
    question's common words reach ~260k of them, and partitioning those was the slowest step of bm25_top."""
    sample = values[::stride]
    if len(sample) <= 4 * k:
        return rows, values
    floor = np.partition(sample, len(sample) - k)[len(sample) - k]
    keep = np.flatnonzero(values >= floor)
    return rows[keep], values[keep]


_SCRATCH = threading.local()


def _scratch() -> tuple[np.ndarray, np.ndarray]:
    """This thread's zeroed bitmap (uint8, 512 KiB) and float32 array (16 MiB) over all GRAM_BUCKETS, made once."""
    if getattr(_SCRATCH, "array", None) is None:
        _SCRATCH.bits = np.zeros(GRAM_BUCKETS // 8, dtype=np.uint8)
        _SCRATCH.array = np.zeros(GRAM_BUCKETS, dtype=np.float32)
    return _SCRATCH.bits, _SCRATCH.array


_CACHE: dict[str, Corpus] = {}
_CACHE_LOCK = threading.Lock()


def corpus_for(kb: KnowledgeBase) -> Corpus:
    """The Corpus of kb's current snapshot; cached per KB directory and replaced after a commit (cheaply:
    loading a snapshot reads its files and nothing else)."""
    snap = kb.snapshot()
    key = str(kb.dir.resolve())
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.snapshot.token == snap.token:
            return cached
        corpus = Corpus(kb=kb, snapshot=snap, previous=cached)
        if cached is not None:
            cached.previous = None  # keep one generation, not a chain
        _CACHE[key] = corpus
        return corpus
