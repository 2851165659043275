"""The one place that opens connections to a KB's SQLite file (kb.sqlite, or a scratch file of the same shape).

Reads go through one read-only connection kept per thread (opening one costs more than most reads); it never
creates or changes a file, so a KB on read-only media or a full disk still answers. Writes get a fresh
connection in WAL mode with full sync. Storage failures (disk full, read-only, I/O) and a damaged file
become one KBError each that names the fix; a bug in a query stays the sqlite3 error it is.

    >>> db = Database(Path("kb_data") / DB_NAME)              # doctest: +SKIP
    >>> with db.read() as con: con.execute("SELECT COUNT(*) FROM chunks").fetchone()   # doctest: +SKIP
    >>> with db.transaction() as con: con.execute("DELETE FROM feedback")               # doctest: +SKIP
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from kb.errors import KBError, damaged_database, storage_reason, write_failure

DB_NAME = "kb.sqlite"
TIMEOUT_S = 60.0  # how long a statement waits for another process's write lock before SQLITE_BUSY
# A write connection's page cache, KiB (SQLite's default is 2 MiB; it grows only as a transaction touches pages). A big
# commit updates the embeddings table at random text hashes: with 2 MiB the same pages were spilled to the WAL and read
# back over and over; the 300k synthetic build took 140 s with 256 MiB against 191 s (bench.kbs, one run each).
WRITE_CACHE_KIB = 256 * 1024


def _wal(con: sqlite3.Connection) -> None:
    """Put con's database in WAL mode. Switching a new file to WAL needs it to itself, and SQLite answers "locked"
    at once, without waiting, when another connection is open on it (two threads opening a new KB): so wait here,
    up to TIMEOUT_S, as every other statement waits for a lock. Once the file is in WAL this is a no-op."""
    deadline = time.monotonic() + TIMEOUT_S
    delay = 0.001
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


class Database:
    """Connections to the SQLite file at path; thread-safe, one kept reader per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.dir = self.path.parent
        self._readers = threading.local()
        self._immutable = False

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This thread's read-only connection; nested reads share it, and a read that stops half-way inside
        a transaction is rolled back so it never pins an old view of the KB."""
        local = self._readers
        con = None
        try:
            con = self._reader()
            local.depth = getattr(local, "depth", 0) + 1
            yield con
        except sqlite3.DatabaseError as exc:
            clear = self._clear_error(exc, write=False)
            if clear is None:
                # The statement's own error ("no such table": a question memory never written) leaves the
                # connection sound: keep it, and its page cache (reopening it cost every 1M question ~1 ms).
                raise
            self._drop_reader()
            raise clear from exc
        finally:
            if con is not None:
                local.depth -= 1
                reader = getattr(local, "con", None)
                if local.depth == 0 and reader is not None and reader.in_transaction:
                    reader.rollback()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A fresh read-write connection in autocommit mode (the caller runs BEGIN IMMEDIATE ... COMMIT)."""
        con = None
        try:
            con = sqlite3.connect(self.path, timeout=TIMEOUT_S, isolation_level=None)
            _wal(con)
            con.execute("PRAGMA synchronous=FULL")
            con.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
            yield con
        except sqlite3.DatabaseError as exc:
            clear = self._clear_error(exc, write=True)
            if clear is None:
                raise
            raise clear from exc
        finally:
            if con is not None:
                con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """write() inside BEGIN IMMEDIATE: committed when the block exits cleanly, rolled back otherwise."""
        with self.write() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                rollback(con)
                raise
            con.execute("COMMIT")

    def _clear_error(self, exc: sqlite3.DatabaseError, write: bool) -> KBError | None:
        """The KBError naming the fix for storage trouble or damage; None for anything else (a query bug)."""
        if storage_reason(exc) is not None:
            if write:
                return write_failure(self.dir, exc)
            return KBError(f"cannot read the knowledge base at {self.dir}: {storage_reason(exc)}")
        if is_damaged(exc):
            return damaged_database(self.dir, exc)
        return None

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection, reopened when the file was replaced by another one."""
        local = self._readers
        try:
            stat = self.path.stat()
            file_id: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except OSError:
            file_id = None
        con = getattr(local, "con", None)
        if con is not None and local.file_id == file_id:
            return con
        if getattr(local, "depth", 0) > 0 and con is not None:
            return con  # inside an outer read of this thread: keep its connection
        self._drop_reader()
        local.con, local.file_id = self._open_read_only(), file_id
        return local.con

    def _drop_reader(self) -> None:
        con = getattr(self._readers, "con", None)
        self._readers.con = None
        if con is not None and getattr(self._readers, "depth", 0) == 0:
            con.close()

    def _open_read_only(self) -> sqlite3.Connection:
        wal = self.dir / f"{self.path.name}-wal"
        if not self._immutable and not os.access(self.dir, os.W_OK) and not (wal.exists() and wal.stat().st_size):
            # Read-only media: no writer can exist, and SQLite could not make its -shm file anyway.
            self._immutable = True
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro" + ("&immutable=1" if self._immutable else "")
        try:
            con = sqlite3.connect(uri, uri=True, timeout=TIMEOUT_S, isolation_level=None)
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return con
        except sqlite3.OperationalError as exc:
            if self._immutable or storage_reason(exc) is None and "unable to open" not in str(exc):
                raise
            # WAL mode needs a -shm file next to the database; on read-only media or a full disk it
            # cannot be created. With no -wal file there is nothing uncommitted to miss: read the file as is.
            if wal.exists() and wal.stat().st_size > 0:
                raise
            self._immutable = True
            return self._open_read_only()


def rollback(con: sqlite3.Connection) -> None:
    """Roll back con's open transaction, if SQLite has not already (SQLITE_FULL, an I/O error): a second
    ROLLBACK would raise and hide the error that tells the user what went wrong."""
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row cur's INSERT just added (SQLite sets lastrowid on every successful INSERT)."""
    if cur.lastrowid is None:
        raise ValueError("the cursor has run no INSERT")
    return int(cur.lastrowid)


def is_damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether exc says the file is not a readable SQLite database (truncated, overwritten, malformed)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc) or "not a database" in str(exc)
