"""Who is asking and what they may see: the one dependency every route but /v1/health takes.

The front gate (api.limits.Gate) proves the key from its token before any body is read (KeyCache),
and puts it in request.state. A route then takes a Caller:
    Depends(authenticate)            any valid key (the routes that name no collection)
    READER / WRITER / ADMIN          a key scoped to the {collection} of the path, with that role
A Caller carries the visibility check: a key scoped to some labels (say public) never sees, is
never cited from and is never answered from a document with another label. The search filter
(Caller.filter) applies it inside the search, not to its results; Caller.document and Caller.chunk
answer 404 for what the key may not see, exactly as for what does not exist.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import Callable

from fastapi import Depends, HTTPException, Request

from api.keys import ApiKey, KeyStore
from api.schemas import Filters
from api.services import Services
from kb import ChunkRecord, DocumentFilter, DocumentInfo, KnowledgeBase

KEY_CACHE_SECONDS = 5.0  # a revoked key stops working within this many seconds


class KeyCache:
    """The active key a token proves, or None; answers are cached for KEY_CACHE_SECONDS (the gate asks per request)."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def __call__(self, token: str | None) -> ApiKey | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is None or hit[0] < now:
            hit = (now + KEY_CACHE_SECONDS, self._keys.verify(token))
            self._cache[digest] = hit
            if len(self._cache) > 10_000:
                self._cache.clear()
        return hit[1]


@dataclass(frozen=True)
class Caller:
    """The key a request came with, the server's services, and the collection it acts on (None: none named yet)."""

    key: ApiKey
    services: Services
    collection: str | None = None

    @property
    def scoped(self) -> bool:
        """The key may not see every label: replies leave out figures computed over every chunk (retriever.serialize)."""
        return not self.key.sees_everything

    def sees(self, visibility: str) -> bool:
        """May the key see (read, cite, write, sync) documents labelled visibility?"""
        allowed = self.key.visible()
        return allowed is None or visibility in allowed

    def use(self, collection: str, role: str = "read") -> "Caller":
        """This caller acting on collection: 403 when the key is not scoped to it or lacks role, 404 when the server
        has no such collection."""
        if not self.key.can_use(collection):
            raise HTTPException(403, f"this key is not allowed to use collection {collection!r}")
        if not self.key.has_role(role):
            raise HTTPException(403, f"this key's role ({self.key.role}) cannot do this; it needs {role}")
        self.services.collections.get(collection)
        return replace(self, collection=collection)

    @property
    def asker(self) -> str:
        """Who asked, as the question log and the feedback table record it."""
        return f"key:{self.key.id}"

    @property
    def questions_of(self) -> str | None:
        """Whose logged questions the key may read: everyone's (None) for a key scoped to nothing (every
        collection, every label); its own alone for any other."""
        return None if self.key.sees_everything and "*" in self.key.collections else self.asker

    @property
    def kb(self) -> KnowledgeBase:
        return self.services.collections.kb(self.collection_name)

    def where(self, key_prefix: str | None = None) -> DocumentFilter:
        """Documents the key may see (under key_prefix when given), for a listing."""
        return DocumentFilter(visibility=self.key.visible(), key_prefix=key_prefix or None)

    def filter(self, filters: Filters | None = None) -> DocumentFilter:
        """The request's filters narrowed to what the key may see (its visibility scope always applies)."""
        filters = filters or Filters()
        allowed = self.key.visible()
        visibility = tuple(filters.visibility) if filters.visibility is not None else None
        if allowed is not None:
            visibility = tuple(v for v in (allowed if visibility is None else visibility) if v in allowed)
        return DocumentFilter(
            visibility=visibility,
            key_prefix=filters.key_prefix or None,
            kinds=tuple(filters.kinds) if filters.kinds is not None else None,
            tags=tuple(filters.tags) if filters.tags is not None else None,
            ingested_after=filters.ingested_after,
        )

    def document(self, doc_key: str) -> DocumentInfo:
        """The document with key doc_key; 404 when there is none or the key may not see it."""
        doc = self.kb.document(doc_key)
        if doc is None or doc.source != doc_key or not self.sees(doc.visibility):
            raise HTTPException(404, f"no document {doc_key!r} in {self.collection!r}")
        return doc

    def chunk(self, chunk_id: int) -> ChunkRecord:
        """The passage chunk_id; 404 when there is none or the key may not see its document."""
        record = self.kb.chunks([chunk_id])[0]
        if record is None or not self.sees(record.doc_visibility):
            raise HTTPException(404, f"no passage {chunk_id} in {self.collection!r}")
        return record

    @property
    def collection_name(self) -> str:
        """The collection this caller acts on (READER and WRITER name it; RuntimeError before Caller.use)."""
        if self.collection is None:
            raise RuntimeError("this route names no collection: call Caller.use(collection) first")
        return self.collection


def authenticate(request: Request) -> Caller:
    """The caller of request: the key the front gate checked before the body was read (401 without one)."""
    key = getattr(request.state, "api_key", None)
    if key is None:
        raise HTTPException(
            401,
            "an API key is needed: send Authorization: Bearer <key> (kb keys create)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Caller(key, request.app.state.services)


def member(role: str) -> Callable[..., Caller]:
    """The dependency of a route under /v1/collections/{collection}: the caller acting on it with role."""

    def check(collection: str, caller: Caller = Depends(authenticate)) -> Caller:
        return caller.use(collection, role)

    check.__name__ = f"member_{role}"
    return check


READER, WRITER, ADMIN = Depends(member("read")), Depends(member("write")), Depends(member("admin"))
