"""Ingest and sync: make a KB hold the current version of every file under some paths.

Only new or changed files (by SHA-256 of their bytes) are parsed and embedded; a
chunk whose text was embedded before reuses its stored vector. Every change of
one run becomes visible in one commit (see kb.store), and a file that fails to
load keeps its previous good version in the KB.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urljoin

import numpy as np

from ingest.chunker import ChunkConfig, chunk
from ingest.exports import Article, read_zendesk
from ingest.loaders import DEFAULT_MAX_BYTES, Block, LoadError, ParsedText
from ingest.ocr import OcrConfig
from ingest.parse import shown
from ingest.worker import Budget, worker_for
from kb import (Embedder, EmbedderConfig, KBWriteError, KnowledgeBase, NewDocument, check_labels, load_embedder,
                retrieval_text, web_url)

# Vectors are saved to the KB's embedding cache every this many chunks, so a crashed
# run's embedding work is reused by the next run.
CACHE_EVERY = 256


@dataclass(frozen=True)
class IngestConfig:
    """mirror: also remove stored documents synced from the given folders whose files are gone (sync).
    wait: seconds to wait for another writer. max_bytes: larger files are refused.
    visibility, tags: labels given to every document of the run (see kb.DocumentFilter).
    key_prefix: put before every document key, to keep two folders' documents apart.
    budget: time and memory each file may take to parse and chunk (ingest.worker).
    follow_links: follow symbolic links that lead outside the folder being ingested (default: such
    links fail with a reason, so syncing a folder others can write never publishes /etc/passwd).
    ocr: how PDF pages without a text layer are read (ingest.ocr; each OCR page adds its own time limit
    to the budget). base_url: the wiki address that exported Confluence pages' links are relative to
    ("https://wiki.example.com"), so their citations link to the live page."""

    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    max_bytes: int = DEFAULT_MAX_BYTES
    mirror: bool = False
    dry_run: bool = False
    wait: float = 0.0
    progress: bool = False
    visibility: str = "internal"
    tags: tuple[str, ...] = ()
    key_prefix: str = ""
    budget: Budget = field(default_factory=Budget)
    follow_links: bool = False
    ocr: OcrConfig = field(default_factory=OcrConfig)
    base_url: str = ""

    def __post_init__(self) -> None:
        check_labels(self.visibility, self.tags)


@dataclass(frozen=True)
class FileFailure:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class IngestReport:
    """What a run did. Lists hold document sources; stage_seconds maps stage -> seconds."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    failed: tuple[FileFailure, ...] = ()
    warnings: tuple[str, ...] = ()
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_written: int = 0
    seconds: float = 0.0
    stage_seconds: tuple[tuple[str, float], ...] = ()
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "updated": len(self.updated), "unchanged": len(self.unchanged),
                "removed": len(self.removed), "failed": len(self.failed)}


def document_key(path: Path, roots: Sequence[Path], prefix: str = "") -> tuple[str, str]:
    """(key, root) of a file: its path relative to the folder it was found in (POSIX separators), or
    its name when it was given on its own; root is that folder, or "" for a file given on its own.

    >>> document_key(Path("/srv/docs/policies/refunds.md"), [Path("/srv/docs")])
    ('policies/refunds.md', '/srv/docs')
    """
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return shown(prefix + path.relative_to(root).as_posix()), shown(root)
    return shown(prefix + path.name), ""


def discover(paths: Sequence[str | Path], follow_links: bool = False) -> tuple[list[Path], list[Path], list[FileFailure]]:
    """(files, roots, failures): every non-hidden file under paths, sorted, with the resolved roots.

    A symbolic link inside a folder is followed only when it leads to a file inside that folder
    (or follow_links is set); links to folders are not walked (their files would come twice).
    """
    files: list[Path] = []
    roots: list[Path] = []
    failures: list[FileFailure] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            failures.append(FileFailure(shown(path), "no such file or directory"))
            continue
        root = path.resolve()
        roots.append(root)
        if root.is_file():
            files.append(root)
            continue
        if not os.access(root, os.R_OK | os.X_OK):
            failures.append(FileFailure(shown(path), "directory is not readable (permission denied)"))
            continue
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: failures.append(
                FileFailure(shown(e.filename), f"cannot list directory ({e.strerror})"))):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                file = Path(dirpath) / name
                if file.is_symlink() and not follow_links:
                    target = file.resolve()
                    if not target.is_relative_to(root):
                        failures.append(FileFailure(shown(file), f"a symbolic link to {shown(target)}, outside "
                                                                  f"{shown(root)}: not followed (--follow-links "
                                                                  "allows it)"))
                        continue
                files.append(file)
    return sorted(set(files)), roots, failures


def _under(source: str, roots: list[Path]) -> bool:
    return any(source == str(r) or source.startswith(str(r) + os.sep) for r in roots)


def _mirrored(doc, roots: list[Path]) -> bool:
    """Whether a stored document came from one of roots, so a sync of them removes it when its file is gone."""
    if doc.root:
        return any(doc.root == str(r) for r in roots)
    return _under(doc.source, roots)  # keys from before relative keys were the absolute paths


def _human_size(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            # open() on a named pipe blocks until a writer appears: the run would hang holding the lock.
            raise LoadError(path, "not a regular file (a pipe, socket or device); skipped")
        size = info.st_size
        if size > max_bytes:
            # Units follow the numbers: a small test limit must not read "0.0 MB, over the 0 MB limit".
            raise LoadError(path, f"file is {_human_size(size)}, over the {_human_size(max_bytes)} size limit")
        # O_NOFOLLOW: a file that became a link since discovery is not read through it.
        flags = os.O_RDONLY | (0 if path.is_symlink() else os.O_NOFOLLOW)
        with os.fdopen(os.open(path, flags), "rb") as fh:
            return fh.read()
    except PermissionError as exc:
        raise LoadError(path, "permission denied") from exc
    except OSError as exc:
        raise LoadError(path, f"cannot read file ({exc.strerror})") from exc


@dataclass(frozen=True)
class TextRecord:
    """An in-memory document (e.g. one BEIR corpus entry): source is its unique key in the KB."""

    source: str
    title: str
    text: str
    name: str | None = None


def ingest(
    paths: Sequence[str | Path],
    kb_dir: str | Path = "kb_data",
    config: IngestConfig = IngestConfig(),
    embedder: Embedder | None = None,
    on_progress: Callable[[str, float], None] | None = None,
    engine=None,
) -> IngestReport:
    """Bring the KB at kb_dir up to date with the files under paths.

    on_progress(stage, fraction) lets a UI draw a progress bar. engine: where the changed files are
    parsed and their chunks embedded (ingest.ray_engine.RayEngine: on a Ray cluster); its
    parse(items, config) yields (key, (NewDocument, warnings) or FileFailure) per (path, data, key, root)
    and its embedder(config) is used unless embedder is given. Everything else, the writer and its
    one commit included, is the same as without it.
    """
    started = time.perf_counter()
    stages: dict[str, float] = {"read": 0.0, "parse": 0.0}
    files, roots, failures = discover(paths, config.follow_links)
    # `kb ingest .` with the default ./kb_data: the KB's own files (directly in kb_dir) are not
    # documents; each run would report its sqlite, npy and faiss files as failed. Subfolders such
    # as the app's uploads/ hold documents and stay.
    kb_root = Path(kb_dir).resolve()
    files = [f for f in files if f.parent != kb_root]
    keyed, failures = _keys(files, roots, failures, config.key_prefix)
    warnings: list[str] = []
    keyed, exports = _expand_exports(keyed, failures, warnings, config.max_bytes)
    exists = (Path(kb_dir) / "kb.sqlite").exists()
    if config.dry_run:
        # A plan creates nothing: against a KB directory that does not exist yet, every file is "added".
        return _plan_only(KnowledgeBase(kb_dir).documents() if exists else [], keyed, roots, failures, config, started,
                          exports)
    if exists and not os.access(kb_dir, os.W_OK):
        # Say so now, not after parsing every file: nothing can be committed here.
        raise KBWriteError(f"cannot write the knowledge base at {kb_dir}: the directory is read-only (or not "
                           "yours). Nothing was committed: the KB still holds its previous version. Fix the "
                           "directory's permissions, then run the command again.")
    # Parse before taking the write lock: a slow file must not keep every other writer waiting.
    before = _stored(KnowledgeBase(kb_dir)) if exists else {}
    parsed: dict[str, tuple[NewDocument, tuple[str, ...]]] = {}
    digests: dict[str, str] = {}
    pending: list[tuple[Path, bytes, str, str]] = []  # for the engine, which parses them all at once
    for i, (path, key, root) in enumerate(keyed):
        t = time.perf_counter()
        try:
            data = _data(path, key, exports, config.max_bytes)
            digests[key] = hashlib.sha256(data).hexdigest()
            stages["read"] += time.perf_counter() - t
            old = before.get(key) or before.get(str(path))
            if old is not None and old.content_hash == digests[key] and _same_labels(old, shown(path), root, config):
                continue
            t = time.perf_counter()
            if engine is not None:
                pending.append((path, data, key, root))  # parsed below, all at once, on the engine
            else:
                parsed[key] = worker_for(config.budget).parse(path, data, config.chunking, key=key, root=root,
                                                              visibility=config.visibility, tags=config.tags,
                                                              ocr=config.ocr)
            stages["parse"] += time.perf_counter() - t
        except LoadError as exc:
            stages["parse"] += time.perf_counter() - t
            failures.append(FileFailure(shown(exc.path), exc.reason))
        if on_progress:
            on_progress("parse", (i + 1) / max(len(keyed), 1))
    if pending:
        t = time.perf_counter()
        for key, outcome in engine.parse(pending, config):
            if isinstance(outcome, FileFailure):
                failures.append(outcome)
            else:
                parsed[key] = outcome
        stages["parse"] += time.perf_counter() - t
    kb = KnowledgeBase(kb_dir, create=True)
    if embedder is None:
        embedder = engine.embedder(config.embedder) if engine is not None else load_embedder(config.embedder)
    added, updated, unchanged = [], [], []
    docs: list[NewDocument] = []
    with kb.writer(model=embedder.name, dim=embedder.dim, wait=config.wait) as writer:
        stored_docs = _stored(kb)  # again, under the lock: another writer may have committed meanwhile
        # A KB from before relative keys stored each file under its absolute path: move it to its key.
        for path, key, _ in keyed:
            old = stored_docs.get(str(path))
            if old is not None and key != str(path) and key not in stored_docs:
                writer.rename_document(old.source, key)
                stored_docs[key] = old
                del stored_docs[str(path)]
        failed_paths = {f.path for f in failures}
        for path, key, root in keyed:
            if key not in digests or shown(path) in failed_paths:
                continue  # unreadable or unparsable: reported above; its stored version (if any) stays
            old = stored_docs.get(key)
            where = shown(exports.articles[key][0]) if key in exports.articles else shown(path)
            if _kept(writer, key, old, digests[key], where, root, config):
                unchanged.append(key)
                continue
            if key not in parsed:
                # Looked unchanged before the lock, but another writer changed the KB since: parse it now.
                try:
                    parsed[key] = worker_for(config.budget).parse(path, _data(path, key, exports, config.max_bytes),
                                                                  config.chunking,
                                                                  key=key, root=root, visibility=config.visibility,
                                                                  tags=config.tags, ocr=config.ocr)
                except LoadError as exc:
                    failures.append(FileFailure(shown(exc.path), exc.reason))
                    continue
            doc, doc_warnings = _exported_as(parsed[key][0], exports.articles.get(key), config.base_url), parsed[key][1]
            warnings.extend(doc_warnings)
            if _kept(writer, key, old, doc.content_hash, doc.path, root, config):
                # An export page whose file changed (the export stamps its time) but whose content did not.
                unchanged.append(key)
                continue
            docs.append(doc)
            (updated if key in stored_docs else added).append(key)
        removed = _removed(stored_docs, keyed, roots, exports, config)
        written = _write(writer, docs, removed, embedder, config, on_progress, stages)
    return IngestReport(
        added=tuple(added), updated=tuple(updated), unchanged=tuple(unchanged), removed=tuple(removed),
        failed=tuple(failures), warnings=tuple(warnings), seconds=time.perf_counter() - started,
        stage_seconds=tuple(stages.items()), **written,
    )


def _kept(writer, key: str, old, content_hash: str, path: str, root: str, config: IngestConfig) -> bool:
    """Whether the stored document old (now keyed key) already holds this content with these labels (no
    new version); if its folder moved, the writer records where it lives now, so it is still mirrored."""
    if old is None or old.content_hash != content_hash or not _same_labels(old, path, root, config):
        return False
    if (old.path, old.root) != (path, root):
        writer.relocate(key, path, root)
    return True


def _removed(stored: dict, keyed: list[tuple[Path, str, str]], roots: list[Path], exports: "_Exports",
             config: IngestConfig) -> list[str]:
    """Stored keys a run removes: articles an export read in this run no longer holds, and, when mirroring,
    documents of the synced folders whose files are gone (but not the articles of an export that failed)."""
    seen = {key for _, key, _ in keyed}
    return sorted(k for k, d in stored.items()
                  if k not in seen and (exports.stale(k) or config.mirror and _mirrored(d, roots) and not exports.held(k)))


@dataclass
class _Exports:
    """The Zendesk exports of one run: article key -> (export file, Article); the export keys read, and
    those that failed to load (their stored articles stay). An article's key is "<export key>#<id>"."""

    articles: dict[str, tuple[Path, Article]] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)

    def stale(self, key: str) -> bool:
        """Whether key (not in this run) is an article of an export read in this run: removed from it."""
        return key.rpartition("#")[0] in self.read

    def held(self, key: str) -> bool:
        """Whether key is an article of an export that failed to load in this run: it stays."""
        return key.rpartition("#")[0] in self.failed


def _expand_exports(keyed: list[tuple[Path, str, str]], failures: list[FileFailure], warnings: list[str],
                    max_bytes: int) -> tuple[list[tuple[Path, str, str]], _Exports]:
    """keyed with each Zendesk export (.json) replaced by its articles; an article's path names the export
    file and the article ("articles.json#360001.html", read as HTML). An export that cannot be read fails
    by name."""
    out: list[tuple[Path, str, str]] = []
    exports = _Exports()
    for path, key, root in keyed:
        if path.suffix.lower() != ".json":
            out.append((path, key, root))
            continue
        try:
            articles, notes = read_zendesk(path, _read(path, max_bytes))
        except LoadError as exc:
            failures.append(FileFailure(shown(exc.path), exc.reason))
            exports.failed.add(key)
            continue
        warnings.extend(notes)
        exports.read.add(key)
        for article in articles:
            exports.articles[f"{key}#{article.id}"] = (path, article)
            out.append((path.with_name(f"{path.name}#{article.id}.html"), f"{key}#{article.id}", root))
    return out, exports


def _data(path: Path, key: str, exports: _Exports, max_bytes: int) -> bytes:
    """The bytes a document is parsed from: an exported article's page, or the file's bytes."""
    if key in exports.articles:
        return exports.articles[key][1].page()
    return _read(path, max_bytes)


def _exported_as(doc: NewDocument, export: tuple[Path, Article] | None, base_url: str) -> NewDocument:
    """doc with an exported article's address, date and export file; a relative page address (a
    Confluence page's) resolved against base_url."""
    if export is not None:
        path, article = export
        return replace(doc, url=web_url(article.url), updated_at=article.updated_at, path=shown(path),
                       name=shown(f"{path.name}#{article.id}"))
    if doc.url and base_url and "://" not in doc.url:
        return replace(doc, url=web_url(urljoin(base_url.rstrip("/") + "/", doc.url)))
    return replace(doc, url=web_url(doc.url)) if doc.url else doc


def _stored(kb: KnowledgeBase) -> dict:
    return {d.source: d for d in kb.documents()}


def _keys(files: list[Path], roots: list[Path], failures: list[FileFailure],
          prefix: str) -> tuple[list[tuple[Path, str, str]], list[FileFailure]]:
    """(path, key, root) per file; a second file with the key of an earlier one fails, naming both."""
    out, first = [], {}
    for path in files:
        key, root = document_key(path, roots, prefix)
        if key in first:
            failures.append(FileFailure(str(path), f"same document key {key!r} as {first[key]}; sync the folders "
                                                   "one at a time, or give one a key prefix"))
            continue
        first[key] = str(path)
        out.append((path, key, root))
    return out, failures


def _same_labels(doc, path: str, root: str, config: IngestConfig) -> bool:
    """Whether a stored document already has the visibility and tags a run would give it. (A folder that
    moved is not a new version: where the file lives is not what it says.)"""
    return (doc.visibility, tuple(doc.tags)) == (config.visibility, tuple(config.tags))


def ingest_texts(
    records: Sequence[TextRecord],
    kb_dir: str | Path = "kb_data",
    config: IngestConfig = IngestConfig(),
    embedder: Embedder | None = None,
    on_progress: Callable[[str, float], None] | None = None,
) -> IngestReport:
    """Like ingest, for in-memory documents (one TextRecord each, chunked like a .txt file).

    With config.mirror, stored documents whose source is not among records are removed.
    """
    started = time.perf_counter()
    kb = KnowledgeBase(kb_dir, create=True)
    embedder = embedder or load_embedder(config.embedder)
    stages: dict[str, float] = {"parse": 0.0}
    added, updated, unchanged, failures = [], [], [], []
    docs: list[NewDocument] = []
    seen: set[str] = set()
    with kb.writer(model=embedder.name, dim=embedder.dim, wait=config.wait) as writer:
        stored = kb.hashes()
        t = time.perf_counter()
        for rec in records:
            if rec.source in seen:
                failures.append(FileFailure(rec.source, "duplicate source id; only the first record was kept"))
                continue
            seen.add(rec.source)
            data = (rec.title + "\n\n" + rec.text).encode("utf-8")
            if stored.get(rec.source) == hashlib.sha256(data).hexdigest():
                unchanged.append(rec.source)
                continue
            if not rec.text.strip():
                failures.append(FileFailure(rec.source, "empty text"))
                continue
            body = rec.text.strip()
            parsed = ParsedText(title=rec.title or rec.source, kind="text", text=body,
                                blocks=(Block(0, len(body)),))
            chunks = chunk(parsed, config.chunking)
            docs.append(NewDocument(source=rec.source, name=rec.name or rec.source, title=parsed.title, kind="text",
                                    content_hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                                    text=body, chunks=tuple(chunks), visibility=config.visibility,
                                    tags=config.tags))
            (updated if rec.source in stored else added).append(rec.source)
        stages["parse"] = time.perf_counter() - t
        removed = sorted(s for s in stored if config.mirror and s not in seen)
        written = _write(writer, docs, removed, embedder, config, on_progress, stages)
    return IngestReport(
        added=tuple(added), updated=tuple(updated), unchanged=tuple(unchanged), removed=tuple(removed),
        failed=tuple(failures), seconds=time.perf_counter() - started, stage_seconds=tuple(stages.items()), **written,
    )


def _write(writer, docs, removed, embedder, config, on_progress, stages) -> dict[str, int]:
    """Embed docs, stage them and the removals in writer (committed when its context exits)."""
    t = time.perf_counter()
    vectors, n_embedded, n_reused = _embed_documents(docs, embedder, writer, config.progress, on_progress)
    stages["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    for doc, vecs in zip(docs, vectors):
        writer.put_document(doc, vecs)
    for source in removed:
        writer.remove_document(source)
    stages["stage"] = time.perf_counter() - t
    return {"chunks_embedded": n_embedded, "chunks_reused": n_reused,
            "chunks_written": sum(len(d.chunks) for d in docs)}


def _embed_documents(docs, embedder, writer, progress, on_progress):
    """One (n_chunks, dim) array per doc; texts already in the KB's cache are not re-embedded."""
    texts = [retrieval_text(d.title, c.section, c.text) for d in docs for c in d.chunks]
    cached = writer.cached_vectors(texts)
    from kb import text_hash

    hashes = [text_hash(t) for t in texts]
    todo = sorted({h: t for h, t in zip(hashes, texts) if h not in cached}.items())
    done = 0
    for idx, vecs in _encoded(embedder, [t for _, t in todo], progress and len(todo) > CACHE_EVERY):
        part = [todo[i] for i in idx]
        writer.cache_vectors([t for _, t in part], vecs)
        cached.update({h: v for (h, _), v in zip(part, vecs)})
        done += len(part)
        if on_progress:
            on_progress("embed", done / len(todo))
    out, pos = [], 0
    for d in docs:
        n = len(d.chunks)
        out.append(np.stack([cached[h] for h in hashes[pos : pos + n]]) if n else np.zeros((0, embedder.dim), np.float32))
        pos += n
    return out, len(todo), len(texts) - len(todo)


def _encoded(embedder, texts: list[str], progress: bool):
    """(indices into texts, vectors) in parts of about CACHE_EVERY texts, each cached as it comes. An
    embedder with encode_stream (ingest.ray_engine.RayEmbedder) streams parts from its actors, in any order."""
    stream = getattr(embedder, "encode_stream", None)
    if stream is not None:
        yield from stream(texts, CACHE_EVERY)
        return
    for start in range(0, len(texts), CACHE_EVERY):
        yield range(start, min(start + CACHE_EVERY, len(texts))), embedder.encode(texts[start:start + CACHE_EVERY],
                                                                                  progress=progress)


def _plan_only(stored_docs, keyed, roots, failures, config, started, exports: _Exports) -> IngestReport:
    stored = {d.source: d for d in stored_docs}
    for path, key, _ in keyed:  # keys from before relative keys (see ingest)
        if str(path) in stored and key not in stored:
            stored[key] = stored.pop(str(path))
    added, updated, unchanged = [], [], []
    for path, key, root in keyed:
        try:
            data = _data(path, key, exports, config.max_bytes)
        except LoadError as exc:
            failures.append(FileFailure(exc.path, exc.reason))
            continue
        digest = hashlib.sha256(data).hexdigest()
        old = stored.get(key)
        same = old is not None and old.content_hash == digest and _same_labels(old, str(path), root, config)
        (unchanged if same else updated if old is not None else added).append(key)
    removed = _removed(stored, keyed, roots, exports, config)
    return IngestReport(added=tuple(added), updated=tuple(updated), unchanged=tuple(unchanged), removed=tuple(removed),
                        failed=tuple(failures), seconds=time.perf_counter() - started, dry_run=True)
