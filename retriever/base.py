"""The interface every retriever shares: rank candidate chunk ids, then resolve them to hits."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from kb import DocumentFilter, KBError, KnowledgeBase, TextEmbedder, query_embedder_for
from retriever.conversation import Context, HistoryConfig, Turn, build_context, history_used
from retriever.corpus import Corpus, SnapshotMoved, corpus_for
from retriever.results import Diagnostics, Hit, SearchResult

WORD = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class Ranked:
    """Chunk ids best first, their scores, and (Hopfield only) the diagnostics."""

    ids: np.ndarray
    scores: np.ndarray
    diagnostics: Diagnostics | None = None


def check_query(query: str) -> str:
    """The query stripped; raises KBError if it holds no letter or digit in any script."""
    if not isinstance(query, str) or not WORD.search(query):
        raise KBError("the question is empty or only punctuation; type some words to search for")
    return query.strip()


# First-stage candidates K every retriever reranks by default (the CLI, the app, the API and eval all read it here).
DEFAULT_CANDIDATES = 100


class Retriever:
    """Base class. Subclasses implement _rank(corpus, queries, query_vectors, k).

    top_k: hits returned; candidates: first-stage pool K (>= top_k).
    """

    name = "base"
    uses_dense = True

    def __init__(
        self, kb: KnowledgeBase, embedder: TextEmbedder | None = None, top_k: int = 5, candidates: int = DEFAULT_CANDIDATES
    ):
        if top_k < 1:
            raise KBError(f"top_k must be at least 1, not {top_k}")
        if candidates < top_k:
            raise KBError(f"candidates (K={candidates}) must be at least top_k ({top_k}); raise K or lower top_k")
        self.kb = kb
        self._embedder = embedder
        self._given = embedder is not None
        self.top_k = top_k
        self.candidates = candidates

    @property
    def embedder(self) -> TextEmbedder:
        """The embedder of the KB's model. One not given follows the KB: after a `kb reembed` commits, the
        snapshot reload brings the new model (kb.manifest) and the next question is embedded with it. One
        given that is not the KB's model is refused: its vectors would be compared with another model's."""
        model = self.kb.manifest.model if self.kb.manifest else None
        if self._embedder is None or (not self._given and model is not None and self._embedder.name != model):
            self._embedder = query_embedder_for(self.kb)  # numpy where it can: no torch import to answer
            self._given = False
        elif model is not None and self._embedder.name != model:
            raise KBError(
                f"this KB was built with the embedding model {model!r}, but the retriever was given "
                f"{self._embedder.name!r}; use the KB's model (kb.embedder_for(kb))"
            )
        return self._embedder

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Unit vectors of search queries (with the model's query instruction, where it has one)."""
        if len(queries) == 1:
            return _embed_one(self.embedder, queries[0])[None, :]
        return self.embedder.encode_queries(list(queries))

    # Whether _rank reads conversation contexts itself; a retriever that does not reads a follow-up as the
    # context text followed by the turn (the plain concatenation the conversation eval compares against).
    reads_context = False

    def _rank(
        self,
        corpus: Corpus,
        queries: list[str],
        qvecs: np.ndarray | None,
        k: int,
        allowed: np.ndarray | None = None,
        contexts: Sequence[Context | None] | None = None,
    ) -> list[Ranked]:
        raise NotImplementedError

    def rank(
        self,
        queries: Sequence[str],
        k: int | None = None,
        query_vectors: np.ndarray | None = None,
        where: DocumentFilter | None = None,
        corpus: Corpus | None = None,
        contexts: Sequence[Context | None] | None = None,
    ) -> list[Ranked]:
        """Rank chunk ids for each query (no chunk lookup): what eval uses.

        query_vectors: precomputed embeddings of queries (rows L2-normalised), to skip embedding.
        where: only chunks of the documents it allows are ranked (None: all).
        corpus: the snapshot's search structures to use (default: the KB's current one).
        contexts: per query, the conversation before it (retriever.conversation.build_context) or None.
        """
        k = k or self.top_k
        queries = [check_query(q) for q in queries]
        if contexts is not None and not self.reads_context and any(c is not None for c in contexts):
            queries = [q if c is None else f"{c.text} {q}" for q, c in zip(queries, contexts)]
            query_vectors, contexts = None, None
        corpus = corpus or corpus_for(self.kb)
        allowed = None if where is None or where.empty else allowed_ids(self.kb, corpus.snapshot.token, where)
        if self.uses_dense and query_vectors is None:
            query_vectors = self.embed_queries(queries)
        if allowed is not None and not len(allowed):
            return [Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in queries]
        if contexts is None:
            return self._rank(corpus, queries, query_vectors, min(k, corpus.snapshot.size), allowed)
        return self._rank(corpus, queries, query_vectors, min(k, corpus.snapshot.size), allowed, contexts)

    def search_batch(
        self,
        queries: Sequence[str],
        top_k: int | None = None,
        where: DocumentFilter | None = None,
        histories: Sequence[Sequence[Turn]] | None = None,
        history_config: HistoryConfig = HistoryConfig(),
    ) -> list[SearchResult]:
        """Hits with chunk records for each query (only from documents where allows).

        histories: per query, the conversation before it (Turn objects, oldest first; retriever.conversation).
        """
        started = time.perf_counter()
        for attempt in range(3):
            corpus = corpus_for(self.kb)
            try:
                contexts = None
                if histories is not None:
                    contexts = [
                        build_context(self, check_query(q), h, history_config, where, corpus) if h else None
                        for q, h in zip(queries, histories)
                    ]
                ranked = self.rank(queries, top_k, where=where, corpus=corpus, contexts=contexts)
            except SnapshotMoved:
                # A sync committed while we ranked: the lexical index is past our snapshot. Load the
                # new one now (a background-refreshing KB would still hand out the old one) and rank again.
                self.kb.refresh()
                continue
            found = self.kb.chunks([int(i) for r in ranked for i in r.ids])
            records = [rec for rec in found if rec is not None]
            if len(records) == len(found):
                break
            # A sync committed between ranking and lookup; rank again on the new snapshot, loaded now: a
            # background-refreshing KB would hand out the old one again (its cached words raise no SnapshotMoved).
            self.kb.refresh()
        else:
            raise KBError("the knowledge base kept changing during the search; try again")
        out, pos = [], 0
        elapsed = (time.perf_counter() - started) / max(len(queries), 1)
        for b, (query, r) in enumerate(zip(queries, ranked)):
            hits = tuple(Hit(chunk=records[pos + j], score=float(s), rank=j + 1) for j, s in enumerate(r.scores))
            pos += len(r.ids)
            context = contexts[b] if contexts is not None else None
            out.append(
                SearchResult(
                    query=query,
                    retriever=self.name,
                    hits=hits,
                    diagnostics=r.diagnostics,
                    seconds=elapsed,
                    snapshot=corpus.snapshot.token,
                    history=None
                    if context is None
                    else history_used(context, r.diagnostics.history_scale if r.diagnostics else 1.0),
                )
            )
        return out

    def search(
        self,
        query: str,
        top_k: int | None = None,
        where: DocumentFilter | None = None,
        history: Sequence[Turn] | None = None,
        history_config: HistoryConfig = HistoryConfig(),
    ) -> SearchResult:
        """search_batch for one query; history: the conversation before it (Turn objects, oldest first)."""
        histories = [tuple(history)] if history else None
        return self.search_batch([query], top_k, where, histories, history_config)[0]


_ALLOWED: "OrderedDict[tuple[str, str, DocumentFilter], np.ndarray]" = OrderedDict()
_ALLOWED_LOCK = threading.Lock()


def allowed_ids(kb: KnowledgeBase, token: str, where: DocumentFilter) -> np.ndarray:
    """Sorted chunk ids of the documents where allows, cached per (KB, snapshot, filter)."""
    key = (str(kb.dir), token, where)
    with _ALLOWED_LOCK:
        if key in _ALLOWED:
            _ALLOWED.move_to_end(key)
            return _ALLOWED[key]
    ids = kb.chunk_ids(where)
    with _ALLOWED_LOCK:
        _ALLOWED[key] = ids
        while len(_ALLOWED) > 64:
            _ALLOWED.popitem(last=False)
    return ids


def clear_query_caches() -> None:
    """Forget cached question vectors and filtered id lists (benchmarks measuring the cold path call it)."""
    _embed_one_cached.cache_clear()
    with _ALLOWED_LOCK:
        _ALLOWED.clear()


@lru_cache(maxsize=512)
def _embed_one_cached(embedder_id: int, query: str, embedder: TextEmbedder) -> bytes:
    return embedder.encode_queries([query])[0].tobytes()


def _embed_one(embedder: TextEmbedder, query: str) -> np.ndarray:
    # lru_cache's stub asks for Hashable arguments, which a Protocol cannot promise; every embedder hashes by identity.
    return np.frombuffer(_embed_one_cached(id(embedder), query, embedder), dtype=np.float32)  # type: ignore[arg-type]


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (ids, scores) of a 1-D score array, best first."""
    k = min(k, scores.shape[0])
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
    order = part[np.argsort(-scores[part], kind="stable")]
    return ids[order], scores[order]
