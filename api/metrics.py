"""Prometheus metrics of one server: requests by route and status, latency, KB size, last sync."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Its own registry (two apps in one process never mix figures). KB sizes are read at scrape time."""

    def __init__(self, collections) -> None:
        self.collections = collections
        self.registry = CollectorRegistry()
        self.requests = Counter("hkb_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("hkb_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.documents = Gauge("hkb_documents", "documents in a collection", ["collection"], registry=self.registry)
        self.chunks = Gauge("hkb_chunks", "chunks in a collection", ["collection"], registry=self.registry)
        self.last_sync = Gauge("hkb_last_sync_timestamp_seconds", "end of the last sync job", ["collection", "state"],
                               registry=self.registry)

    async def middleware(self, request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the template (/v1/collections/{collection}/...), never raw paths
        self.requests.labels(request.method, path, str(response.status_code)).inc()
        self.latency.labels(path).observe(time.perf_counter() - started)
        return response

    def sync_done(self, collection: str, job) -> None:
        self.last_sync.labels(collection, job.state).set(job.finished_at or time.time())

    def render(self) -> tuple[bytes, str]:
        for name in self.collections.config.collections:
            try:
                stats = self.collections.kb(name).stats()
            except Exception:  # noqa: BLE001 - an empty collection has no size yet
                continue
            self.documents.labels(name).set(stats["documents"])
            self.chunks.labels(name).set(stats["chunks"])
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
