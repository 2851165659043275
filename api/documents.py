"""Uploads through the API: checked completely before anything is written, bounded, and kept inside the key's labels.

Order of an upload: labels (visibility within the key's, tags), type, name and size are checked
first; then the key takes one of the server's upload slots (a bounded number, at most a share of
them per key, else 429); then a name that belongs to a document the key may not see is refused
(403, the same answer whatever the reason, see docs/security.md); only then is the file written
(to a file of its own, swapped in atomically) and ingested in the key's own parse worker. If the
ingest fails, the previous original under uploads/ is put back.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fastapi import HTTPException

from api.config import scrub_paths
from api.payloads import document_payload
from ingest import Budget, IngestConfig, check_upload, ingest, staged_upload
from kb import KBError, check_labels, embedder_for

REFUSED_NAME = "this key cannot write a document under that name; choose another name"


@dataclass(frozen=True)
class UploadLimits:
    """slots: uploads parsed at once by the server; per_key: of those, at most this many for one key."""

    slots: int = 4
    per_key: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.per_key <= self.slots <= 64:
            raise KBError("upload limits: need 1 <= upload_slots_per_key <= upload_slots <= 64")


class UploadGate:
    """A bounded set of upload slots with a per-key share. Uploads run in the server's thread pool: without a
    bound, a burst of slow uploads would take every thread and stall every other endpoint."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key_id: str) -> Iterator[None]:
        with self._lock:
            total = sum(self._held.values())
            mine = self._held.get(key_id, 0)
            if total >= self.limits.slots or mine >= self.limits.per_key:
                who = "this key" if mine >= self.limits.per_key else "server"
                raise HTTPException(
                    429, f"too many uploads in progress ({who}); retry when one has finished", headers={"Retry-After": "5"}
                )
            self._held[key_id] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                self._held[key_id] -= 1
                if not self._held[key_id]:
                    del self._held[key_id]


_NAME_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_NAME_LOCKS_GUARD = threading.Lock()


def _name_lock(kb_dir: Path, name: str) -> threading.Lock:
    """One upload of a name at a time (the stored original is swapped and maybe put back)."""
    with _NAME_LOCKS_GUARD:
        if len(_NAME_LOCKS) > 10_000:
            for k in [k for k, v in _NAME_LOCKS.items() if not v.locked()]:
                del _NAME_LOCKS[k]
        return _NAME_LOCKS.setdefault((str(kb_dir), name), threading.Lock())


def upload(caller, data: bytes, name: str, visibility: str, tags: str) -> dict:
    """Store and ingest one uploaded file for caller (an api.auth.Caller acting on its collection); the reply the route
    sends (HTTPException or KBError on refusal)."""
    visibility, tag_list = check_labels(visibility, tuple(t.strip() for t in tags.split(",") if t.strip()))
    if not caller.sees(visibility):
        raise HTTPException(403, f"this key cannot write documents with visibility {visibility!r}")
    services, key = caller.services, caller.key
    collections, collection, max_mb = services.collections, caller.collection, services.config.max_upload_mb
    kb_dir = collections.get(collection).kb_dir
    dest = check_upload(kb_dir, name, data, max_mb)
    with services.uploads.hold(key.id), _name_lock(kb_dir, dest.name):
        if (kb_dir / "kb.sqlite").exists():
            existing = collections.kb(collection).document(dest.name)
            if existing is not None and existing.source == dest.name and not caller.sees(existing.visibility):
                raise HTTPException(403, REFUSED_NAME)
        config = IngestConfig(visibility=visibility, tags=tag_list, wait=60.0, budget=Budget(lane=f"key:{key.id}"))
        with staged_upload(kb_dir, name, data, max_mb) as saved:
            report = ingest(collections.kb(collection, create=True), [saved], config, embedder=embedder_for(kb_dir))
            if report.failed:
                raise HTTPException(
                    422,
                    scrub_paths("; ".join(f"{Path(f.path).name}: {f.reason}" for f in report.failed), collections.config),
                )
    # The upload committed through the served KB, whose writer loads the new snapshot before returning.
    stored = collections.kb(collection, create=True).document(saved.name)
    status = "added" if report.added else "updated" if report.updated else "unchanged"
    return {"status": status, "document": document_payload(stored)}
