"""Exceptions raised by the knowledge base. Each message names the fix."""

import errno
import re
import sqlite3


class KBError(Exception):
    """Base class for every error a user of hopfield-kb can act on."""


class ManifestError(KBError):
    """The KB on disk cannot be read by this version, or was built with another model."""


class KBLockedError(KBError):
    """Another process holds the KB's write lock (a sync or ingest is running)."""


class EmptyKBError(KBError):
    """A search or check was asked of a KB that holds no chunks."""


class KBWriteError(KBError):
    """The KB directory could not be written (disk full, file-size limit, read-only, I/O error).

    Raised before anything is committed, so the KB still holds its previous version.
    """


# errno -> what a user reads; anything else falls back to strerror.
_OS_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "a file-size limit was reached",  # RLIMIT_FSIZE or the filesystem's maximum
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "an I/O error occurred",
}
# SQLite primary result codes that mean storage trouble rather than a bug in a query.
_SQLITE_REASONS = {
    sqlite3.SQLITE_FULL: "the disk is full (or a file-size limit was reached)",
    sqlite3.SQLITE_IOERR: "a disk I/O error occurred (disk full, file-size limit or failing disk)",
    sqlite3.SQLITE_READONLY: "the database is read-only",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened (missing, or the directory is not writable)",
    sqlite3.SQLITE_PERM: "permission denied",
    sqlite3.SQLITE_BUSY: "another process kept the database locked",
}


def storage_reason(exc: BaseException) -> str | None:
    """A one-line reason when exc is a storage failure (OSError, SQLite I/O-class error, FAISS write error), else None."""
    if isinstance(exc, OSError):
        if exc.errno is None:  # numpy reports a short write ("N requested and M written") without errno
            return "a write was cut short (the disk is full or a file-size limit was reached)"
        return _OS_REASONS.get(exc.errno, exc.strerror or str(exc))
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return _SQLITE_REASONS.get(code & 0xFF)
    if type(exc).__name__ == "RuntimeError" and "write" in str(exc).lower():
        return "could not write the FAISS index file (disk full or file-size limit?)"  # faiss raises RuntimeError
    return None


def write_failure(kb_dir: object, exc: BaseException) -> KBWriteError:
    """The KBWriteError to raise for storage failure exc in kb_dir (call only when storage_reason(exc) is set)."""
    return KBWriteError(
        f"cannot write the knowledge base at {kb_dir}: {storage_reason(exc)}. Nothing was committed: the "
        "KB still holds its previous version. Free disk space or fix the directory's permissions, then run "
        "the command again."
    )


def damaged_database(kb_dir: object, exc: BaseException) -> KBError:
    """The KBError for a kb.sqlite that SQLite cannot read (truncated, overwritten, malformed)."""
    return KBError(
        f"the knowledge base database {kb_dir}/kb.sqlite is damaged ({exc}); it is the source of truth and "
        "cannot be rebuilt from the snapshot files: restore it from a backup, or rebuild the KB by syncing its "
        "folders into a new --kb-dir"
    )


_ABSOLUTE = re.compile(r"(?<![\w.~:/-])/(?:[^\s/'\"]+/)+([^\s/'\"]*)")


def without_paths(text: str, names: dict[str, str] | None = None) -> str:
    """text for a reply or a page, without the server's paths: each path in names becomes its name (longest
    first), any other absolute path its last part. A message names things by their keys and names."""
    for path, name in sorted((names or {}).items(), key=lambda p: -len(p[0])):
        text = text.replace(path, name)
    return _ABSOLUTE.sub(lambda m: m.group(1) or "(a server folder)", text)
