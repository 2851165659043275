"""The collections a server holds: each one's KnowledgeBase and retrievers, opened once and shared by requests."""

from __future__ import annotations

import threading

from fastapi import HTTPException

from api.config import CollectionConfig, ServerConfig
from api.errors import EmptyCollection
from kb import KnowledgeBase
from retriever import DEFAULT_CANDIDATES, HopfieldConfig, Retriever, make_retriever


class Collections:
    """KB objects and retrievers of config's collections, created on first use (thread-safe)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._kbs: dict[str, KnowledgeBase] = {}
        self._retrievers: dict[tuple, Retriever] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CollectionConfig:
        """The collection's config; 404 for a name the server does not hold."""
        found = self.config.collections.get(name)
        if found is None:
            raise HTTPException(404, f"no collection {name!r}")
        return found

    def kb(self, name: str, create: bool = False) -> KnowledgeBase:
        """The collection's KB; EmptyCollection (409) before anything was uploaded or synced to it, unless create."""
        with self._lock:
            if name not in self._kbs:
                path = self.get(name).kb_dir
                if not (path / "kb.sqlite").exists() and not create:
                    raise EmptyCollection(name)
                # A sync by another process must not make questions wait for the new snapshot's load.
                self._kbs[name] = KnowledgeBase(path, create=create, background_refresh=True)
            return self._kbs[name]

    def refresh(self, name: str) -> None:
        """After this server committed to a collection (upload, sync job): serve the new version now."""
        with self._lock:
            kb = self._kbs.get(name)
        if kb is not None and (kb.dir / "kb.sqlite").exists():
            kb.refresh()

    def retriever(
        self, name: str, kind: str, top_k: int, candidates: int = DEFAULT_CANDIDATES, beta: float = HopfieldConfig().beta
    ) -> Retriever:
        key = (name, kind, top_k, candidates, beta)
        with self._lock:
            cached = self._retrievers.get(key)
        if cached is not None:
            return cached
        # No embedder given: the retriever embeds with the collection's own model and follows a `kb reembed`.
        retriever = make_retriever(
            kind, self.kb(name), top_k=top_k, candidates=max(candidates, top_k), hopfield=HopfieldConfig(beta=beta)
        )
        with self._lock:
            return self._retrievers.setdefault(key, retriever)
