"""Prometheus metrics of one server: requests by route and status, latency, KB size, last sync.

Every label comes from a fixed set, so no request can grow the registry: the method is one of the
HTTP methods the API knows (anything else is "other"), the route is a route template or "unmatched",
and the collection is a configured name or "". An admin key scoped to some collections or labels
gets a view of only those: request figures of its collections and sizes counted over what it may see.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from kb import DocumentFilter

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Its own registry (two apps in one process never mix figures). KB sizes are read at scrape time."""

    def __init__(self, collections) -> None:
        self.collections = collections
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hkb_requests", "HTTP requests", ["method", "route", "status", "collection"], registry=self.registry
        )
        self.latency = Histogram(
            "hkb_request_seconds",
            "HTTP request latency",
            ["route", "collection"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.last_sync = Gauge(
            "hkb_last_sync_timestamp_seconds", "end of the last sync job", ["collection", "state"], registry=self.registry
        )

    def _collection(self, request) -> str:
        name = (request.scope.get("path_params") or {}).get("collection", "")
        return name if name in self.collections.config.collections else ""

    async def middleware(self, request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the template (/v1/collections/{collection}/...), never raw paths
        method = request.method if request.method in METHODS else "other"
        collection = self._collection(request)
        self.requests.labels(method, path, str(response.status_code), collection).inc()
        self.latency.labels(path, collection).observe(time.perf_counter() - started)
        return response

    def sync_done(self, collection: str, job) -> None:
        self.last_sync.labels(collection, job.state).set(job.finished_at or time.time())

    def render(self, key) -> tuple[bytes, str]:
        """The text an admin key may see: everything for an unscoped one; else its collections' figures only."""
        view = CollectorRegistry()
        documents = Gauge("hkb_documents", "documents in a collection", ["collection"], registry=view)
        chunks = Gauge("hkb_chunks", "chunks in a collection", ["collection"], registry=view)
        where = DocumentFilter(visibility=key.visible())
        for name in self.collections.config.collections:
            if not key.can_use(name):
                continue
            try:
                docs = self.collections.kb(name).documents(where)
            except Exception:  # noqa: BLE001 - an empty collection has no size yet
                continue
            documents.labels(name).set(len(docs))
            chunks.labels(name).set(sum(d.n_chunks for d in docs))
        text = generate_latest(view)
        if "*" in key.collections:
            return generate_latest(self.registry) + text, CONTENT_TYPE_LATEST
        return _only_collections(generate_latest(self.registry), key) + text, CONTENT_TYPE_LATEST


def _only_collections(text: bytes, key) -> bytes:
    """Sample lines of the collections key may use (and HELP/TYPE lines); figures of no collection are dropped
    (they would count other collections' requests)."""
    allowed = {f'collection="{n}"'.encode() for n in key.collections}
    out = []
    for line in text.splitlines():
        if line.startswith(b"#") or any(a in line for a in allowed):
            out.append(line)
    return b"\n".join(out) + b"\n"
