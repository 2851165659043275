"""The change plan: which documents a run adds, updates, keeps, removes, renames and relocates, and why.

One pure function (make_plan) decides, from a scan of the files (ingest.sources) and the documents the
KB holds; the dry run reports its plan, and the real run carries out the same plan (made again under the
write lock, since another writer may have committed meanwhile). Decisions are made on the bytes: a
document whose bytes changed but whose parsed content did not (an export stamps its time on every
page) is planned as updated and found unchanged after parsing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ingest.config import FileFailure, IngestConfig, IngestReport
from ingest.sources import Scan, Source
from kb import DocumentInfo, KnowledgeBase

ADDED, UPDATED, UNCHANGED = "added", "updated", "unchanged"


@dataclass(frozen=True)
class Change:
    """What a run does with one readable source. action: added, updated or unchanged; reason: why, in
    words; stored: the KB's document under this key (after renames), None for a new one."""

    source: Source
    action: str
    reason: str
    stored: DocumentInfo | None = None

    @property
    def key(self) -> str:
        return self.source.key

    @property
    def moved(self) -> bool:
        """Whether the stored document's file now lives elsewhere (a folder that moved, not a new version)."""
        return self.stored is not None and (self.stored.path, self.stored.root) != (self.source.where, self.source.root)


@dataclass(frozen=True)
class ChangePlan:
    """A run's decisions. changes: one per readable source, in discovery order; removed: stored keys a run
    removes; renamed: (stored key, new key) of documents stored under their absolute path by older
    versions; failed, warnings: what finding and reading the files reported."""

    changes: tuple[Change, ...] = ()
    removed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    failed: tuple[FileFailure, ...] = ()
    warnings: tuple[str, ...] = ()

    def keys(self, action: str) -> tuple[str, ...]:
        """The keys of the changes with action, in discovery order."""
        return tuple(c.key for c in self.changes if c.action == action)

    @property
    def to_parse(self) -> tuple[Change, ...]:
        """The changes whose files are parsed: new and changed ones."""
        return tuple(c for c in self.changes if c.action != UNCHANGED)

    @property
    def relocated(self) -> tuple[Change, ...]:
        """Unchanged documents whose file moved: the run records where they live now."""
        return tuple(c for c in self.changes if c.action == UNCHANGED and c.moved)

    def report(self, started: float) -> IngestReport:
        """The dry run's report of this plan (started: its time.perf_counter() at the start)."""
        return IngestReport(
            added=self.keys(ADDED),
            updated=self.keys(UPDATED),
            unchanged=self.keys(UNCHANGED),
            removed=self.removed,
            failed=self.failed,
            seconds=time.perf_counter() - started,
            dry_run=True,
        )


def make_plan(scan: Scan, stored: Mapping[str, DocumentInfo], config: IngestConfig) -> ChangePlan:
    """The plan for scan against the stored documents (source -> DocumentInfo; empty for a KB not
    created yet). Pure: reads no file and changes nothing."""
    stored = dict(stored)
    renamed = []
    for source in scan.sources:  # keys from before relative keys were the absolute paths: move them to their key
        old = stored.get(str(source.path))
        if old is not None and source.key != str(source.path) and source.key not in stored:
            renamed.append((old.source, source.key))
            stored[source.key] = stored.pop(str(source.path))
    changes = tuple(_change(s, stored.get(s.key), config) for s in scan.sources if s.digest is not None)
    seen = {s.key for s in scan.sources}
    removed = tuple(
        sorted(
            k
            for k, d in stored.items()
            if k not in seen
            and (
                scan.exports.stale(k)
                or (config.mirror and _mirrored(d, scan.roots) and not scan.exports.held(k))
                or (config.mirror and d.root in scan.web.sites)  # a page gone from its sitemap or site
            )
        )
    )
    return ChangePlan(changes, removed, tuple(renamed), scan.failures, scan.warnings)


def stored_documents(kb: KnowledgeBase | None) -> dict[str, DocumentInfo]:
    """source -> document of everything kb holds ({} for None: a KB not created yet)."""
    return {} if kb is None else {d.source: d for d in kb.documents()}


def same_content(old: DocumentInfo | None, content_hash: str, config: IngestConfig) -> bool:
    """Whether a stored document already holds this content with the labels (visibility, tags) a run
    gives it: no new version. (Where the file lives is not what it says: a moved folder is not a change.)"""
    return (
        old is not None
        and old.content_hash == content_hash
        and (old.visibility, tuple(old.tags)) == (config.visibility, tuple(config.tags))
    )


def _change(source: Source, old: DocumentInfo | None, config: IngestConfig) -> Change:
    if old is None:
        return Change(source, ADDED, "new", None)
    if same_content(old, source.digest or "", config):
        return Change(source, UNCHANGED, "same bytes and labels", old)
    reason = "bytes changed" if old.content_hash != source.digest else "visibility or tags changed"
    return Change(source, UPDATED, reason, old)


def _mirrored(doc: DocumentInfo, roots: tuple[Path, ...]) -> bool:
    """Whether a stored document came from one of roots, so a sync of them removes it when its file is gone."""
    if doc.root:
        return any(doc.root == str(r) for r in roots)
    # keys from before relative keys were the absolute paths
    return any(doc.source == str(r) or doc.source.startswith(str(r) + os.sep) for r in roots)
