"""Every table of kb.sqlite, in one place, and the one-time upgrade of a KB written by an older version.

Three groups of tables:
    CORE_TABLES          documents, chunks, history, embeddings, feedback, meta and the lexical index:
                         created with the KB; an older KB gets missing tables and ADDED_COLUMNS on open
    QUESTION_MEMORY_TABLES   confirmed (question, passage) pairs (kb/question_memory.py)
    CONVERSATION_TABLES      saved chats (kb/conversations.py)
    QUESTION_LOG_TABLES      every question asked, redacted, with its outcome and citations (kb/question_log.py)
    WEB_PAGE_TABLES          a crawled page's HTTP validators (ETag, Last-Modified) for conditional requests
                             (kb/web_pages.py)
The last four are created by their owners on first write (ensure_tables), so a KB from before them needs
no upgrade and a read-only KB simply has none.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from kb import lexical_index, lexical_rebuild
from kb.database import rollback
from kb.errors import KBError

if TYPE_CHECKING:
    from kb.database import Database

# {table: ((column, declaration), ...)}: columns added to tables an earlier version created.
Columns = Mapping[str, tuple[tuple[str, str], ...]]

CORE_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    version INTEGER NOT NULL,
    ingested_at REAL NOT NULL,
    n_chunks INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(id),
    doc_version INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    page INTEGER,
    section TEXT,
    text_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS embeddings (text_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    source TEXT NOT NULL, version INTEGER NOT NULL, event TEXT NOT NULL,
    content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_source ON history(source);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, question TEXT NOT NULL, chunk_id INTEGER,
    doc_source TEXT, helpful INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lex_terms (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lex_words (word TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lex_postings (
    term TEXT NOT NULL, seg INTEGER NOT NULL, postings BLOB NOT NULL, PRIMARY KEY (term, seg)
);
CREATE TABLE IF NOT EXISTS lex_gram_delta (bucket INTEGER PRIMARY KEY, d INTEGER NOT NULL);
"""
CORE_TABLE_NAMES = frozenset(
    {
        "meta",
        "documents",
        "chunks",
        "embeddings",
        "history",
        "feedback",
        "lex_terms",
        "lex_words",
        "lex_postings",
        "lex_gram_delta",
    }
)

# Columns added after the first release: {table: ((name, declaration), ...)}. Older KBs get them on open.
ADDED_COLUMNS = {
    "documents": (
        ("path", "TEXT NOT NULL DEFAULT ''"),
        ("root", "TEXT NOT NULL DEFAULT ''"),
        ("visibility", "TEXT NOT NULL DEFAULT 'internal'"),
        ("tags", "TEXT NOT NULL DEFAULT '[]'"),
        ("encoding", "TEXT NOT NULL DEFAULT ''"),
        ("url", "TEXT NOT NULL DEFAULT ''"),
        ("updated_at", "TEXT NOT NULL DEFAULT ''"),
    ),
    "chunks": (("ocr_confidence", "REAL"),),
    "feedback": (("by_user", "TEXT"),),
}

QUESTION_MEMORY_TABLES = """
CREATE TABLE IF NOT EXISTS qmem_associations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question TEXT NOT NULL,
    question_key TEXT NOT NULL,
    vector BLOB NOT NULL,
    grams BLOB NOT NULL,
    text_hash TEXT NOT NULL,
    doc_source TEXT NOT NULL,
    doc_version INTEGER NOT NULL,
    by_user TEXT NOT NULL DEFAULT '',
    strength REAL NOT NULL,
    confirmations INTEGER NOT NULL DEFAULT 0,
    rejections INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    last_confirmed_at REAL NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0,
    retired_reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS qmem_key ON qmem_associations(question_key, text_hash, by_user);
CREATE TABLE IF NOT EXISTS qmem_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    association_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    delta REAL NOT NULL DEFAULT 0,
    by_user TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS qmem_events_assoc ON qmem_events(association_id);
CREATE TABLE IF NOT EXISTS qmem_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

CONVERSATION_TABLES = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_session ON conversations(session, updated_at);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated_at);
CREATE TABLE IF NOT EXISTS conversation_turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (conversation_id, position)
);
"""

QUESTION_LOG_TABLES = """
CREATE TABLE IF NOT EXISTS question_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    question TEXT NOT NULL,
    outcome TEXT NOT NULL,
    asked_by TEXT,
    collection TEXT,
    evidence REAL,
    context TEXT
);
CREATE INDEX IF NOT EXISTS question_log_at ON question_log(at);
CREATE INDEX IF NOT EXISTS question_log_question ON question_log(question);
CREATE TABLE IF NOT EXISTS question_log_citations (
    entry_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    chunk_id INTEGER NOT NULL,
    doc_source TEXT NOT NULL,
    doc_version INTEGER NOT NULL,
    PRIMARY KEY (entry_id, n)
);
-- Unit vectors of logged (redacted) questions by a model, so insights embed each question once; deleted with
-- the last entry holding the question (retention).
CREATE TABLE IF NOT EXISTS question_log_vectors (
    question TEXT NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (question, model)
);
"""

# Columns a log written by an earlier version lacks, added on its next write (FeatureTables).
QUESTION_LOG_ADDED_COLUMNS: Columns = {"question_log": (("context", "TEXT"),)}

WEB_PAGE_TABLES = """
CREATE TABLE IF NOT EXISTS web_pages (
    source TEXT PRIMARY KEY,
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
"""


def ensure_tables(con: sqlite3.Connection, tables: str) -> None:
    """Create one group of tables (QUESTION_MEMORY_TABLES, CONVERSATION_TABLES, QUESTION_LOG_TABLES,
    WEB_PAGE_TABLES) if missing;
    idempotent."""
    con.executescript(tables)


class FeatureTables:
    """One feature's group of tables in a KB's database (the question log, the question memory), created
    on the feature's first write; connections whose errors name the feature (`what`) and the file."""

    def __init__(self, db: Database, tables: str, what: str, added: Columns | None = None) -> None:
        self.db, self.tables, self.what, self.added = db, tables, what, added or {}
        self._ready = False

    @contextmanager
    def connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        """A fresh write connection (the tables ensured on the first) or the thread's kept read-only one."""
        try:
            if not write:
                with self.db.read() as con:
                    yield con
                return
            with self.db.write() as con:
                if not self._ready:
                    ensure_tables(con, self.tables)
                    add_missing_columns(con, self.added)
                    self._ready = True
                yield con
        except sqlite3.OperationalError as exc:
            raise KBError(f"cannot read or write {self.what} in {self.db.path}: {exc}") from exc


def add_missing_columns(con: sqlite3.Connection, added: Columns) -> None:
    """Add each (name, declaration) column its table lacks, in one transaction that re-reads the columns (two
    writers may find the same table old at once)."""
    if not added:
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        _add_columns(con, added)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # after SQLITE_FULL or an I/O error SQLite has rolled back: a bare ROLLBACK would hide why
        raise


def has_column(con: sqlite3.Connection, table: str, name: str) -> bool:
    return name in _columns(con, table)


def has_table(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def needs_upgrade(con: sqlite3.Connection) -> bool:
    """Whether the core tables, their added columns or the lexical index are missing or out of date."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not CORE_TABLE_NAMES <= tables:
        return True
    if not lexical_index.is_current(con) and con.execute("SELECT 1 FROM chunks LIMIT 1").fetchone():
        return True
    return any(not {n for n, _ in added} <= _columns(con, table) for table, added in ADDED_COLUMNS.items())


def upgrade(con: sqlite3.Connection, retrieval_texts: Iterable[tuple[int, str]]) -> None:
    """Bring a KB (new or older) to the current core schema on a write connection; retrieval_texts: every
    (chunk id, retrieval text), read only when the lexical index must be built."""
    con.executescript(CORE_TABLES)
    # One writer at a time, each re-reading what is there: two threads opening a new KB at once (a sync job
    # and the server's warm-up) would otherwise both add the same column.
    con.execute("BEGIN IMMEDIATE")
    try:
        _add_columns(con, ADDED_COLUMNS)
        if not lexical_index.is_current(con):
            # A KB from before the lexical index, or from before its current version (6: FTS5 instead of
            # postings; 8: stored n-gram counts, dropped): built once from the chunks, or upgraded in place.
            lexical_rebuild.upgrade(con, retrieval_texts)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # after SQLITE_FULL or an I/O error SQLite has rolled back: a bare ROLLBACK would hide why
        raise


def _add_columns(con: sqlite3.Connection, added: Columns) -> None:
    for table, columns in added.items():
        have = _columns(con, table)
        for name, declaration in columns:
            if name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
