"""Sync jobs: a collection's configured source folders synced in a background thread, with progress.

One sync per collection runs at a time (a second request is told which job is running). Each
source folder is one ingest run with mirror=True and that source's visibility and tags; each
commits atomically on its own, so a job stopped halfway leaves every folder at its old or new
version. Jobs live in memory: the last 100 are kept. A job is visible to the key that started it
(and to admins): its id and result are never shown to another key, and results name source folders
and files by their keys, never by a server path.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from api.config import CollectionConfig, SourceConfig
from api.errors import Conflict
from ingest import IngestConfig, ingest, report_dict
from kb import KBError, TextEmbedder

KEEP = 100


@dataclass
class SyncJob:
    """state: queued, running, done (every source synced, some files may have failed) or failed."""

    id: str
    collection: str
    sources: tuple[str, ...]
    dry_run: bool
    state: str = "queued"
    stage: str = ""
    progress: float = 0.0
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    results: list[dict] = field(default_factory=list)
    error: str | None = None
    started_by: str = ""  # the key id that started it: only it (and admins) may see the job

    def as_dict(self) -> dict:
        out = asdict(self)
        del out["started_by"]
        return out


def source_name(source: SourceConfig) -> str:
    """What a reply calls a configured source folder: its key prefix or folder name, never its server path."""
    return source.key_prefix.strip("/") or source.path.name


def _scrub(text: str, root: Path) -> str:
    """A message without the server's paths: the source folder's path becomes its name."""
    return text.replace(str(root), root.name)


def may_see(job: SyncJob, key) -> bool:
    """A job is shown to the key that started it, and to an admin that sees every label (its results name folders
    and files)."""
    return key is not None and (job.started_by == key.id or (key.has_role("admin") and key.sees_everything))


class JobRunning(Conflict):
    """A sync of the collection is already running: job. Its id is told only to a key that may_see it."""

    def __init__(self, job: SyncJob) -> None:
        super().__init__(f"a sync of {job.collection!r} is already running; wait for it")
        self.job = job

    def detail_for(self, key) -> str:
        mine = f" (job {self.job.id})" if may_see(self.job, key) else ""
        return f"a sync of {self.job.collection!r} is already running{mine}; wait for it"


def _scrub_all(text: str, collection: CollectionConfig) -> str:
    for source in collection.sources:
        text = _scrub(text, source.path)
    return text.replace(str(collection.kb_dir), collection.name)


class SyncJobs:
    """Starts and tracks sync jobs. on_done(collection, job) runs after each job (e.g. to record metrics)."""

    def __init__(
        self,
        embedder: Callable[[Path], TextEmbedder],
        on_done: Callable[[str, SyncJob], None] | None = None,
        on_committed: Callable[[str], None] | None = None,
    ) -> None:
        self._embedder = embedder
        self._on_done = on_done
        self._on_committed = on_committed  # runs before a job is seen as done (to serve the new version)
        self._jobs: dict[str, SyncJob] = {}
        self._running: dict[str, str] = {}
        self._lock = threading.Lock()

    def start(
        self, collection: CollectionConfig, sources: tuple[SourceConfig, ...], dry_run: bool = False, started_by: str = ""
    ) -> SyncJob:
        """A new job (running in the background), or JobRunning when collection has one (its id is for the
        key that started it: the caller decides what to tell)."""
        if not sources:
            raise KBError(
                f"collection {collection.name!r} has no source folders to sync: add sources to its "
                "[[collections.NAME.sources]] in the server config"
            )
        with self._lock:
            running = self._running.get(collection.name)
            if running:
                raise JobRunning(self._jobs[running])
            job = SyncJob(
                uuid.uuid4().hex[:12],
                collection.name,
                tuple(source_name(s) for s in sources),
                dry_run,
                started_by=started_by,
            )
            self._jobs[job.id] = job
            self._running[collection.name] = job.id
            while len(self._jobs) > KEEP:
                oldest = next(iter(self._jobs))
                if oldest in self._running.values():
                    break
                del self._jobs[oldest]
        threading.Thread(target=self._run, args=(job, collection, sources), name=f"sync-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> SyncJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: SyncJob, collection: CollectionConfig, sources: tuple[SourceConfig, ...]) -> None:
        job.state = "running"
        try:
            embedder = self._embedder(collection.kb_dir)  # the collection's own model (kb.embedder_for)
            for i, source in enumerate(sources):

                def progress(stage: str, fraction: float, i: int = i) -> None:
                    job.stage, job.progress = stage, round((i + min(max(fraction, 0.0), 1.0)) / len(sources), 3)

                config = IngestConfig(
                    mirror=True,
                    dry_run=job.dry_run,
                    wait=60.0,
                    visibility=source.visibility,
                    tags=source.tags,
                    key_prefix=source.key_prefix,
                    base_url=source.base_url,
                )
                report = ingest(collection.kb_dir, [source.path], config, embedder=embedder, on_progress=progress)
                job.results.append({"source": source_name(source), **report_dict(report, root=source.path)})
            if self._on_committed is not None and not job.dry_run:
                self._on_committed(collection.name)
            job.state, job.progress = "done", 1.0
        except KBError as exc:
            job.state, job.error = "failed", _scrub_all(str(exc), collection)
        except Exception as exc:  # noqa: BLE001 - a job reports every failure instead of dying silently
            job.state, job.error = "failed", _scrub_all(f"{type(exc).__name__}: {exc}", collection)
        finally:
            job.finished_at = time.time()
            with self._lock:
                self._running.pop(collection.name, None)
            if self._on_done is not None:
                self._on_done(collection.name, job)
