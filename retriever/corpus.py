"""Per-snapshot search structures shared by every retriever over one KB.

Built lazily from the KB's committed snapshot and rebuilt when a commit changes
it, so readers follow a sync without a restart. Lexical indexes are built from
the same retrieval texts that were embedded (title | section + chunk text).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from kb import KnowledgeBase, Snapshot


def bm25_tokens(texts: list[str]) -> list[list[str]]:
    """Lower-cased word tokens without English stopwords, as bm25s makes them."""
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


@dataclass
class Corpus:
    """Dense snapshot plus lazily built lexical views, all over the same chunk ids (sorted)."""

    snapshot: Snapshot
    texts: list[str]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ids(self) -> np.ndarray:
        return self.snapshot.ids

    @cached_property
    def bm25(self):
        import bm25s

        model = bm25s.BM25()
        model.index(bm25_tokens(self.texts), show_progress=False)
        return model

    @cached_property
    def char_vectorizer(self):
        """Character 3-5-gram TF-IDF (within word boundaries): robust to typos, unlike wordpieces."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2 if len(self.texts) > 50 else 1,
                              dtype=np.float32)
        # Only the transpose is kept: queries need n-gram -> chunks rows, and a second, row-major
        # copy would double the largest structure in memory (~10 KiB per chunk).
        self.__dict__["char_matrix_t"] = vec.fit_transform(self.texts).T.tocsr()
        return vec

    @cached_property
    def char_matrix_t(self) -> sp.csr_matrix:
        """(n-grams, N) TF-IDF, CSR: a query's scores over all chunks are one sparse product."""
        _ = self.char_vectorizer
        return self.__dict__["char_matrix_t"]

    @property
    def char_matrix(self) -> sp.csc_matrix:
        """(N, n-grams) TF-IDF rows (unit length), a transposed view of char_matrix_t (no copy)."""
        return self.char_matrix_t.T

    @cached_property
    def vocabulary(self):
        """The Hopfield memory of the KB's words, for query repair."""
        from retriever.vocabulary import VocabularyMemory

        return VocabularyMemory.build(self.texts)

    def mask(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """Boolean (N,) over snapshot rows: True where the chunk id is in allowed (sorted ids); None for None."""
        if allowed is None:
            return None
        return np.isin(self.ids, allowed, assume_unique=True)

    def bm25_scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for query, aligned with ids: (N,)."""
        tokens = bm25_tokens([query])[0]
        if not tokens:
            return np.zeros(len(self.texts), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)

    def char_query(self, queries: list[str]) -> sp.csr_matrix:
        return self.char_vectorizer.transform(queries)

    def char_scores(self, queries: list[str]) -> np.ndarray:
        """Cosine of each query's char n-gram TF-IDF with every chunk: (B, N)."""
        return (self.char_query(queries) @ self.char_matrix_t).toarray().astype(np.float32, copy=False)


_CACHE: dict[str, Corpus] = {}
_CACHE_LOCK = threading.Lock()
_BUILD_LOCKS: dict[str, threading.Lock] = {}


def corpus_for(kb: KnowledgeBase) -> Corpus:
    """The Corpus of kb's current snapshot; cached per KB directory and rebuilt after a commit.

    One thread builds the new Corpus while the others wait for it: 32 server threads that all
    saw a sync's new token each built their own lexical views of a 12k-chunk KB at once.
    """
    snap = kb.snapshot()
    key = str(kb.dir.resolve())
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.snapshot.token == snap.token:
            return cached
        build_lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    with build_lock:
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None and cached.snapshot.token == snap.token:
            return cached
        ids, texts = kb.chunk_texts()
        if not np.array_equal(ids, snap.ids):
            # A commit landed between reading the snapshot and the texts: take both again.
            snap = kb.snapshot()
            ids, texts = kb.chunk_texts()
        corpus = Corpus(snapshot=snap, texts=texts)
        with _CACHE_LOCK:
            _CACHE[key] = corpus
        return corpus
