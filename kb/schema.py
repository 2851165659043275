"""Every table of kb.sqlite, in one place, and the one-time upgrade of a KB written by an older version.

Three groups of tables:
    CORE_TABLES          documents, chunks, history, embeddings, feedback, meta and the lexical index:
                         created with the KB; an older KB gets missing tables and ADDED_COLUMNS on open
    QUESTION_MEMORY_TABLES   confirmed (question, passage) pairs (kb/question_memory.py)
    CONVERSATION_TABLES      saved chats (kb/conversations.py)
    QUESTION_LOG_TABLES      every question asked, redacted, with its outcome and citations (kb/question_log.py)
The last three are created by their owners on first write (ensure_tables), so a KB from before them needs
no upgrade and a read-only KB simply has none.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from kb import lexical_index

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
CREATE TABLE IF NOT EXISTS chunk_grams (chunk_id INTEGER PRIMARY KEY, grams BLOB NOT NULL);
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
        "chunk_grams",
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
    evidence REAL
);
CREATE INDEX IF NOT EXISTS question_log_at ON question_log(at);
CREATE TABLE IF NOT EXISTS question_log_citations (
    entry_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    chunk_id INTEGER NOT NULL,
    doc_source TEXT NOT NULL,
    doc_version INTEGER NOT NULL,
    PRIMARY KEY (entry_id, n)
);
"""


def ensure_tables(con: sqlite3.Connection, tables: str) -> None:
    """Create one group of tables (QUESTION_MEMORY_TABLES, CONVERSATION_TABLES, QUESTION_LOG_TABLES) if missing;
    idempotent."""
    con.executescript(tables)


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
    for table, added in ADDED_COLUMNS.items():
        have = _columns(con, table)
        for name, declaration in added:
            if name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
    if not lexical_index.is_current(con):
        # A KB from before the lexical index, or from before its current version (6: FTS5 instead of
        # postings): build it once from the chunks.
        con.execute("BEGIN IMMEDIATE")
        lexical_index.rebuild(con, retrieval_texts)
        con.execute("COMMIT")


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
