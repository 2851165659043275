"""Ingest and sync: make a KB hold the current version of every file under some paths.

A run is plan -> parse -> embed -> commit:
  plan    ingest.sources finds, keys and hashes the files; ingest.plan decides what changes (the dry run
          stops here and reports the plan);
  parse   only new or changed files are parsed and chunked, on an engine (ingest.engine: here, or on a Ray
          cluster with ingest.ray_engine), before the write lock is taken;
  embed   only chunk texts the KB has not embedded before (ingest.embed);
  commit  under the write lock the plan is made again (another writer may have committed meanwhile), and
          every change becomes visible in one commit (ingest.commit, kb.Writer). A file that fails to load
          keeps its previous good version in the KB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urljoin

from ingest.commit import KBLike, open_for_reading, open_for_writing, stage_documents
from ingest.config import IngestConfig, IngestReport
from ingest.embed import ChunkEmbedder
from ingest.engine import Engine, LocalEngine, Parsed, parse_changes
from ingest.exports import Article
from ingest.loaders import WEB
from ingest.parse import shown
from ingest.plan import UNCHANGED, UPDATED, ChangePlan, make_plan, same_content, stored_documents
from ingest.sitemap import page_name
from ingest.sources import Scan, scan
from kb import KnowledgeBase, NewDocument, Validators, Writer, record_validators, stored_validators, web_url


def plan_changes(kb: KBLike, paths: Sequence[str | Path], config: IngestConfig = IngestConfig()) -> ChangePlan:
    """What ingest(kb, paths, config) would do now: the files are read and hashed, nothing is written (and
    against a directory with no KB yet, nothing is created: every file is added)."""
    kb_dir = kb.dir if isinstance(kb, KnowledgeBase) else Path(kb)
    opened = open_for_reading(kb)
    return make_plan(scan(paths, config, kb_dir, _known_pages(opened, config)), stored_documents(opened), config)


def ingest(
    kb: KBLike,
    paths: Sequence[str | Path],
    config: IngestConfig = IngestConfig(),
    *,
    embedder: ChunkEmbedder | None = None,
    on_progress: Callable[[str, float], None] | None = None,
    engine: Engine | None = None,
) -> IngestReport:
    """Bring kb up to date with the files under paths; the report of what changed (with config.dry_run,
    of what would change: plan_changes, and nothing is written).

    kb: an open KnowledgeBase, whose snapshot serves the commit as soon as ingest returns (no refresh()),
    or the directory of one (opened here once, created by a real run).
    embedder: the KB's model (default: engine.embedder(config.embedder)). on_progress(stage, fraction)
    lets a UI draw a progress bar (stages parse, embed). engine: where changed files are parsed and
    chunks embedded (default LocalEngine; ingest.ray_engine.RayEngine: on a Ray cluster); the plan, the
    writer and its one commit are the same on every engine.
    """
    started = time.perf_counter()
    if config.dry_run:
        return plan_changes(kb, paths, config).report(started)
    opened = open_for_writing(kb)
    engine = engine or LocalEngine()
    found = scan(paths, config, opened.dir, _known_pages(opened, config))
    stages: dict[str, float] = {"read": time.perf_counter() - started, "parse": 0.0}
    # Parse before taking the write lock: a slow file must not keep every other writer waiting.
    planned = make_plan(found, stored_documents(opened), config)
    parsed, failures, stages["parse"] = parse_changes(engine, planned.to_parse, found, config, on_progress)
    attempted = {c.key for c in planned.to_parse}
    if embedder is None:
        embedder = engine.embedder(config.embedder)
    with opened.writer(model=embedder.name, dim=embedder.dim, wait=config.wait) as writer:
        planned = make_plan(found, stored_documents(opened), config)  # again, under the lock
        late = [c for c in planned.to_parse if c.key not in attempted]
        if late:  # looked unchanged before the lock, but another writer changed the KB since: parse them now
            more, more_failures, seconds = parse_changes(engine, late, found, config)
            parsed.update(more)
            failures += more_failures
            stages["parse"] += seconds
        done = _carry_out(writer, planned, parsed, found, config)
        _record_pages(writer, found, done, planned.removed)
        written = stage_documents(writer, done.docs, planned.removed, embedder, config, on_progress, stages)
    return IngestReport(
        added=tuple(done.added),
        updated=tuple(done.updated),
        unchanged=tuple(done.unchanged),
        removed=planned.removed,
        failed=planned.failed + tuple(failures),
        warnings=planned.warnings + tuple(done.warnings),
        chunks_embedded=written.embedded,
        chunks_reused=written.reused,
        chunks_written=written.written,
        seconds=time.perf_counter() - started,
        stage_seconds=tuple(stages.items()),
    )


@dataclass
class _Done:
    """What carrying out a plan staged: the documents to write, in discovery order, and the keys by outcome."""

    docs: list[NewDocument] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _carry_out(writer: Writer, plan: ChangePlan, parsed: dict[str, Parsed], found: Scan, config: IngestConfig) -> _Done:
    """Stage plan's renames and relocations in writer, and collect the documents to write with the parsed
    files' warnings. A changed file whose parsed content is what the KB holds (an export page whose file
    changed, but not its content) is unchanged; a file that failed to parse is left out (its stored
    version stays)."""
    for old, new in plan.renamed:
        writer.rename_document(old, new)
    done = _Done()
    for change in plan.changes:
        if change.action == UNCHANGED:
            _relocate(writer, change.key, change.moved, change.source.where, change.source.root)
            done.unchanged.append(change.key)
            continue
        if change.key not in parsed:
            continue  # unparsable: reported with the failures
        doc, warnings = parsed[change.key]
        doc = _exported_as(doc, found.exports.articles.get(change.key), config.base_url)
        if change.key in found.exports.attachments:  # its file is the message it came in
            doc = replace(doc, path=change.source.where)
        if change.source.kind == WEB:
            doc = replace(doc, url=web_url(change.source.where), path=change.source.where, name=page_name(change.key))
        done.warnings.extend(warnings)
        if same_content(change.stored, doc.content_hash, config):
            _relocate(writer, change.key, change.moved, doc.path, change.source.root)
            done.unchanged.append(change.key)
            continue
        done.docs.append(doc)
        (done.updated if change.action == UPDATED else done.added).append(change.key)
    return done


def _relocate(writer: Writer, key: str, moved: bool, path: str, root: str) -> None:
    """Record where an unchanged document lives now, if its folder moved, so a sync still mirrors it."""
    if moved:
        writer.relocate(key, path, root)


def _exported_as(doc: NewDocument, export: tuple[Path, Article] | None, base_url: str) -> NewDocument:
    """doc with an exported article's address, date and export file; a relative page address (a
    Confluence page's) resolved against base_url."""
    if export is not None:
        path, article = export
        return replace(
            doc,
            url=web_url(article.url),
            updated_at=article.updated_at,
            path=shown(path),
            name=shown(f"{path.name}#{article.id}"),
        )
    if doc.url and base_url and "://" not in doc.url:
        return replace(doc, url=web_url(urljoin(base_url.rstrip("/") + "/", doc.url)))
    return replace(doc, url=web_url(doc.url)) if doc.url else doc


def _known_pages(kb: KnowledgeBase | None, config: IngestConfig) -> dict[str, Validators]:
    """The stored web pages' validators, for conditional requests. A page whose labels this run changes is
    fetched in full (without validators): its new version needs the page's bytes."""
    validators = stored_validators(kb)
    if not validators or kb is None:
        return validators
    docs = {d.source: d for d in kb.documents() if d.source in validators}
    same = {key for key, v in validators.items() if key in docs and same_content(docs[key], v.content_hash, config)}
    return {key: v if key in same else Validators(content_hash=v.content_hash) for key, v in validators.items()}


def _record_pages(writer: Writer, found: Scan, done: _Done, removed: tuple[str, ...]) -> None:
    """Stage, in the commit, the validators of every crawled page the KB holds after it (a 304 keeps its own)
    and forget those of removed pages."""
    if not found.web.pages:
        return
    held = set(done.added) | set(done.updated) | set(done.unchanged)
    fresh = {p.key: p.validators for p in found.web.pages if p.key in held and p.data is not None}
    record_validators(writer, fresh, removed)
