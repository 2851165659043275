"""What every retriever reads from one KB snapshot: the dense vectors and the lexical index.

Nothing here is built from the chunk texts when a process starts or after a sync: the lexical
index (BM25 over words, character n-grams, word document frequencies) lives in kb.sqlite and is
kept up to date by each commit (kb.lexicon). A Corpus only reads it: the BM25 top-K of all chunks
through SQLite's FTS5; for the candidates a question has (a few hundred, not every chunk), Okapi
BM25 as bm25s computes it (Lucene IDF, k1 1.5, b 0.75) from the stored word document frequencies,
and character TF-IDF cosines from each chunk's stored n-gram counts and n-gram document frequencies.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from kb import GRAM_BUCKETS, KnowledgeBase, Snapshot, bm25_terms, char_grams

# Chunks whose n-gram vectors and word counts stay in memory (an eval re-reads the same candidates under
# every condition): about 7 KiB each, so at most ~200 MiB.
CACHED_CHUNKS = 30_000
BM25_K1, BM25_B = 1.5, 0.75
# FTS5 scores every chunk holding any query word, so a common word costs time in proportion to the KB
# (at 1M chunks "patients" is in ~100k of them). Words are searched rarest first until their chunk
# counts reach this budget; the candidates are rescored exactly with all the words.
POSTINGS_BUDGET = 20_000


def bm25_weights(tf: np.ndarray, length: np.ndarray, avg_length: float, idf: np.ndarray) -> np.ndarray:
    """Okapi BM25 (Lucene form, as bm25s): sum over query terms of idf * tf / (tf + k1 (1 - b + b dl/avgdl)).

    tf: (chunks, terms) counts; length: (chunks,) BM25 tokens per chunk; idf: (terms,). Returns (chunks,).
    """
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / max(avg_length, 1e-9))
    return (idf * tf / (tf + norm[:, None])).sum(axis=1)


class SnapshotMoved(Exception):
    """The lexical index (one, in kb.sqlite) already holds a later commit than this Corpus's snapshot: a chunk
    it returned is not in the snapshot, or one of the snapshot's is gone. Rank again on the new snapshot."""


@dataclass
class Corpus:
    """One snapshot of one KB, with reads of its lexical index. Thread-safe."""

    kb: KnowledgeBase
    snapshot: Snapshot
    _grams: "OrderedDict[int, tuple[np.ndarray, np.ndarray]]" = field(default_factory=OrderedDict, repr=False)
    _words: "OrderedDict[int, Counter[str]]" = field(default_factory=OrderedDict, repr=False)
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
    def bm25_top(
        self, query: str, k: int, allowed: np.ndarray | None = None, exact: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(snapshot rows, BM25 scores) of the k best chunks for query's words, best first; only allowed ids
        when given (sorted). Chunks a newer commit added are skipped: they are not in this snapshot.

        FTS5 finds the chunks holding the query's rarest words (see POSTINGS_BUDGET). exact: 2k + 50 of them
        are scored exactly as bm25s would (bm25_at), so only a chunk that matches nothing but very common
        words, and so scores low anyway, can be missed; otherwise FTS5's own top k and scores (k1 1.2), a
        candidate pool for a reader that scores its candidates itself.
        """
        terms = self._search_terms(bm25_terms(query))
        want = 2 * k + 50 if exact else k
        while True:
            ids, fts_scores = self.kb.bm25_top(terms, want)
            pos = self.snapshot.positions(ids)
            if (pos < 0).any():
                raise SnapshotMoved(f"chunk {int(ids[pos < 0][0])} is newer than snapshot {self.snapshot.token}")
            keep = np.ones(len(ids), dtype=bool) if allowed is None else np.isin(ids, allowed)
            if keep.sum() >= want or len(ids) < want:
                break
            want *= 4  # the filter took some: look deeper
        pos = pos[keep]
        if not exact:
            return pos[:k], fts_scores[keep][:k]
        scores = self.bm25_at(query, pos)
        order = np.argsort(-scores, kind="stable")[:k]
        return pos[order], scores[order]

    def _search_terms(self, terms: list[str]) -> list[str]:
        """The query's distinct words the KB holds, rarest first, while their chunk counts add up to at most
        POSTINGS_BUDGET (the rarest always)."""
        df = self.kb.term_df(terms)
        chosen: list[str] = []
        postings = 0
        for term in sorted(set(terms) & df.keys(), key=lambda t: (df[t], t)):
            if chosen and postings + df[term] > POSTINGS_BUDGET:
                break
            chosen.append(term)
            postings += df[term]
        return chosen

    def bm25_at(self, query: str, positions: np.ndarray) -> np.ndarray:
        """BM25 scores of query's words for the given snapshot rows (0 where none of them occurs), exactly as
        bm25s would score them over this snapshot. Query terms the KB lacks add nothing; repeats count twice."""
        terms = bm25_terms(query)
        df = self.kb.term_df(terms)
        terms = [t for t in terms if t in df]
        if not terms or not len(positions):
            return np.zeros(len(positions), dtype=np.float32)
        n = self.snapshot.size
        idf = np.array([math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms])
        counts = self._present(self._cached(self._words, self.ids[positions], self._count_words))
        tf = np.array([[c.get(t, 0) for t in terms] for c in counts], dtype=np.float64)
        length = np.array([c.total() for c in counts], dtype=np.float64)
        return bm25_weights(tf, length, self._avg_length, idf).astype(np.float32)

    @cached_property
    def _avg_length(self) -> float:
        return self.kb.bm25_length() / max(self.snapshot.size, 1)

    def _count_words(self, ids: list[int]) -> dict[int, Counter]:
        return {cid: Counter(bm25_terms(text)) for cid, text in self.kb.retrieval_texts(ids).items()}

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
        idf = self._char_idf
        out = {}
        for cid, (buckets, counts) in self.kb.chunk_grams(ids).items():
            weights = (1 + np.log(np.maximum(counts, 1))) * idf[buckets]
            norm = np.linalg.norm(weights)
            keep = weights > 0
            out[cid] = (buckets[keep], (weights[keep] / norm).astype(np.float32) if norm > 0 else weights[keep])
        return out

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
        # The question's weights spread over a zeroed per-thread array of all buckets, read at the chunks'
        # buckets (one gather instead of a search per n-gram), then zeroed again.
        dense = _scratch()
        dense[q.indices] = q_w
        try:
            dots = np.bincount(row_of, weights=weights * dense[buckets], minlength=len(rows))
        finally:
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


_SCRATCH = threading.local()


def _scratch() -> np.ndarray:
    """This thread's zeroed float32 array over all GRAM_BUCKETS (16 MiB, made once per thread)."""
    if getattr(_SCRATCH, "array", None) is None:
        _SCRATCH.array = np.zeros(GRAM_BUCKETS, dtype=np.float32)
    return _SCRATCH.array


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
