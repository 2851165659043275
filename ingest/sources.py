"""What a run reads: the files under its paths, keyed, with exports expanded into their articles, the pages
of the web addresses among them (ingest.crawl), and the SHA-256 of each one's bytes (scan). Nothing here
parses a file or touches the KB."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping, Sequence

from ingest.attachments import attachment, attachments, is_message
from ingest.config import FileFailure, IngestConfig
from ingest.crawl import Crawl, Page, crawl
from ingest.exports import Article, read_zendesk
from ingest.loaders import WEB, LoadError
from ingest.parse import shown
from ingest.sitemap import is_web, page_name
from kb import Validators


@dataclass(frozen=True)
class Source:
    """One document of a run. path: its file, or "<export>.json#<id>.html" for an exported article;
    key: its key in the KB; root: the folder it was found in ("" for a file given on its own); where:
    the file it lives in (the export file for an article); digest: the SHA-256 of the bytes it is parsed
    from, None when they could not be read (the failure is in Scan.failures). A crawled page: key and where
    are its URL, root the sitemap or start page it was found from, path its name, kind "web"; kind "" means:
    by the file's extension."""

    path: Path
    key: str
    root: str
    where: str
    digest: str | None
    kind: str = ""


@dataclass(frozen=True)
class Exports:
    """The files of one run that hold documents of their own: Zendesk exports (article key -> (export file,
    Article)) and e-mail messages (attachment key -> (message file, attachment name); ingest.attachments);
    the keys of those read, and of those that failed to load (their stored articles and attachments stay).
    An article's key is "<export key>#<id>", an attachment's "<message key>#<name>"."""

    articles: dict[str, tuple[Path, Article]] = field(default_factory=dict)
    attachments: dict[str, tuple[Path, str]] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)

    def stale(self, key: str) -> bool:
        """Whether key (not in this run) is an article or attachment of a file read in this run: removed from it."""
        return key.rpartition("#")[0] in self.read

    def held(self, key: str) -> bool:
        """Whether key is an article of an export that failed to load in this run: it stays."""
        return key.rpartition("#")[0] in self.failed


@dataclass(frozen=True)
class Scan:
    """What a run found: its sources in discovery order, the resolved roots it was given, its exports,
    and the failures and warnings of finding and reading them; web: the crawl of its web addresses."""

    sources: tuple[Source, ...]
    roots: tuple[Path, ...]
    exports: Exports
    failures: tuple[FileFailure, ...]
    warnings: tuple[str, ...]
    web: Crawl = field(default_factory=Crawl)

    @cached_property
    def pages(self) -> dict[str, Page]:
        """key -> crawled page (read or failed)."""
        return {p.key: p for p in self.web.pages}

    def data(self, source: Source, max_bytes: int) -> bytes:
        """The bytes source is parsed from (read again: a scan keeps only their digest); LoadError."""
        if source.kind == WEB:
            page = self.pages.get(source.key)
            if page is None or page.data is None:
                raise LoadError(source.key, "not modified on the server since the stored version (HTTP 304); sync again")
            return page.data
        return _data(source.path, source.key, self.exports, max_bytes)


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
        for dirpath, dirnames, filenames in os.walk(
            root, onerror=lambda e: failures.append(FileFailure(shown(e.filename), f"cannot list directory ({e.strerror})"))
        ):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                file = Path(dirpath) / name
                if file.is_symlink() and not follow_links:
                    target = file.resolve()
                    if not target.is_relative_to(root):
                        failures.append(
                            FileFailure(
                                shown(file),
                                f"a symbolic link to {shown(target)}, outside "
                                f"{shown(root)}: not followed (--follow-links "
                                "allows it)",
                            )
                        )
                        continue
                files.append(file)
    return sorted(set(files)), roots, failures


def scan(paths: Sequence[str | Path], config: IngestConfig, kb_dir: Path, known: Mapping[str, Validators] = {}) -> Scan:
    """Find, key and hash every document under paths (reading each file once). The KB's own files
    (directly in kb_dir) are not documents; its subfolders (the app's uploads/) are. A web address among
    paths is crawled (config.crawl), known giving the stored pages' validators for conditional requests."""
    urls = [str(p) for p in paths if is_web(p)]
    files, roots, failures = discover([p for p in paths if not is_web(p)], config.follow_links)
    # `kb ingest .` with the default ./kb_data: each run would report its sqlite, npy and faiss files as failed.
    kb_root = kb_dir.resolve()
    files = [f for f in files if f.parent != kb_root]
    keyed = _keys(files, roots, failures, config.key_prefix)
    warnings: list[str] = []
    keyed, exports = _expand_exports(keyed, failures, warnings, config.max_bytes)
    keyed = _expand_attachments(keyed, exports, warnings, config.max_bytes)
    sources = []
    for path, key, root in keyed:
        holder = exports.articles.get(key) or exports.attachments.get(key)
        where = shown(holder[0]) if holder else shown(path)
        try:
            digest: str | None = hashlib.sha256(_data(path, key, exports, config.max_bytes)).hexdigest()
        except LoadError as exc:
            failures.append(FileFailure(shown(exc.path), exc.reason))
            digest = None
        sources.append(Source(path, key, root, where, digest))
    web = crawl(urls, config.crawl, known) if urls else Crawl()
    for page in web.pages:
        if page.error:
            failures.append(FileFailure(page.key, page.error))
        sources.append(Source(Path(page_name(page.key)), page.key, page.site, page.url or page.key, page.digest, WEB))
    failures += [FileFailure(url, reason) for url, reason in web.failed]
    warnings += web.warnings
    return Scan(tuple(sources), tuple(roots), exports, tuple(failures), tuple(warnings), web)


def read_file(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, not followed through a link it became since discovery; LoadError with the
    reason (too large, not a regular file, unreadable)."""
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


def _human_size(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _keys(files: list[Path], roots: list[Path], failures: list[FileFailure], prefix: str) -> list[tuple[Path, str, str]]:
    """(path, key, root) per file; a second file with the key of an earlier one fails (into failures), naming both."""
    out: list[tuple[Path, str, str]] = []
    first: dict[str, str] = {}
    for path in files:
        key, root = document_key(path, roots, prefix)
        if key in first:
            failures.append(
                FileFailure(
                    str(path),
                    f"same document key {key!r} as {first[key]}; sync the folders one at a time, or give one a key prefix",
                )
            )
            continue
        first[key] = str(path)
        out.append((path, key, root))
    return out


def _expand_exports(
    keyed: list[tuple[Path, str, str]], failures: list[FileFailure], warnings: list[str], max_bytes: int
) -> tuple[list[tuple[Path, str, str]], Exports]:
    """keyed with each Zendesk export (.json) replaced by its articles; an article's path names the export
    file and the article ("articles.json#360001.html", read as HTML). An export that cannot be read fails
    by name."""
    out: list[tuple[Path, str, str]] = []
    exports = Exports()
    for path, key, root in keyed:
        if path.suffix.lower() != ".json":
            out.append((path, key, root))
            continue
        try:
            articles, notes = read_zendesk(path, read_file(path, max_bytes))
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


def _expand_attachments(
    keyed: list[tuple[Path, str, str]], exports: Exports, warnings: list[str], max_bytes: int
) -> list[tuple[Path, str, str]]:
    """keyed with each e-mail message followed by its attachments ("message.eml#report.pdf", parsed by the
    attachment's extension). A message whose attachments cannot be looked at keeps its stored ones (the
    message itself fails, or not, when it is parsed)."""
    out: list[tuple[Path, str, str]] = []
    for path, key, root in keyed:
        out.append((path, key, root))
        if not is_message(path) or key in exports.articles:
            continue
        try:
            found, notes = attachments(path, read_file(path, max_bytes), max_bytes)
        except LoadError:
            exports.failed.add(key)
            continue
        warnings.extend(notes)
        exports.read.add(key)
        for item in found:
            exports.attachments[f"{key}#{item.name}"] = (path, item.name)
            out.append((path.with_name(f"{path.name}#{item.name}"), f"{key}#{item.name}", root))
    return out


def _data(path: Path, key: str, exports: Exports, max_bytes: int) -> bytes:
    """The bytes a document is parsed from: an exported article's page, an attachment's bytes, or the file's."""
    if key in exports.articles:
        return exports.articles[key][1].page()
    if key in exports.attachments:
        message, name = exports.attachments[key]
        return attachment(message, read_file(message, max_bytes), name, max_bytes)
    return read_file(path, max_bytes)
