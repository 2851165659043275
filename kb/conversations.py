"""Saved chat conversations in the KB's own kb.sqlite (two tables of their own).

A conversation belongs to one *session* (an opaque, random id the app keeps in the browser's
URL, so a reload finds it again) and holds its turns in order: the question and the answer as
a JSON object the app wrote (text, citations, diagnostics; this module never looks inside).

Retention: conversations not touched (no new turn, no rename) for ConversationConfig.retention_days
(30 days by default) are deleted, with their turns, whenever a ConversationStore opens or
creates a conversation. Nothing else in the KB refers to them; ingest, sync and repair leave
them alone.

The tables are declared in kb/schema.py (CONVERSATION_TABLES) and created here on first use, so a KB
from before conversations needs no upgrade step.
"""

from __future__ import annotations

import builtins
import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from kb.database import DB_NAME, Database
from kb.errors import KBError
from kb.schema import CONVERSATION_TABLES, ensure_tables

MAX_TITLE_CHARS = 80


@dataclass(frozen=True)
class ConversationConfig:
    """retention_days: a conversation untouched this many days (24 h each) is deleted; 0 or less keeps all."""

    retention_days: float = 30.0


@dataclass(frozen=True)
class Conversation:
    """id: random, URL-safe; session: the browser session it belongs to; times in seconds since the epoch."""

    id: str
    session: str
    title: str
    created_at: float
    updated_at: float
    n_turns: int = 0


@dataclass(frozen=True)
class ConversationTurn:
    """position: 0-based order in its conversation; answer: the JSON object the app stored."""

    conversation_id: str
    position: int
    question: str
    answer: dict[str, Any]
    at: float


def new_id() -> str:
    """A random id for a session or a conversation (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def clean_title(title: str) -> str:
    """One line, at most MAX_TITLE_CHARS characters; KBError when nothing is left."""
    text = " ".join(str(title).split())
    if not text:
        raise KBError("a conversation title cannot be empty; type a few words")
    return text if len(text) <= MAX_TITLE_CHARS else text[: MAX_TITLE_CHARS - 1].rstrip() + "…"


class ConversationStore:
    """The conversations of the KB at kb_dir (which must exist: `kb ingest` or an upload creates it)."""

    def __init__(self, kb_dir: str | Path, config: ConversationConfig | None = None) -> None:
        self.dir = Path(kb_dir)
        self.config = config or ConversationConfig()
        self.db = Database(self.dir / DB_NAME)
        if not self.db.exists():
            raise KBError(f"no knowledge base at {self.dir}: add documents first, then conversations can be saved")
        with self._connect() as con:
            ensure_tables(con, CONVERSATION_TABLES)
        self.purge()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A write connection with foreign keys on (a conversation's turns go with it)."""
        try:
            with self.db.write() as con:
                con.execute("PRAGMA foreign_keys=ON")
                yield con
        except sqlite3.OperationalError as exc:
            raise KBError(f"cannot save or read conversations in {self.dir}: {exc}") from exc

    def purge(self, now: float | None = None) -> int:
        """Delete conversations untouched for longer than the retention; returns how many went."""
        if self.config.retention_days <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - self.config.retention_days * 86400.0
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "DELETE FROM conversation_turns WHERE conversation_id IN "
                "(SELECT id FROM conversations WHERE updated_at < ?)",
                (cutoff,),
            )
            gone = con.execute("DELETE FROM conversations WHERE updated_at < ?", (cutoff,)).rowcount
            con.execute("COMMIT")
        return int(gone)

    def create(self, session: str, title: str = "New conversation") -> Conversation:
        self.purge()
        now = time.time()
        conv = Conversation(new_id(), session, clean_title(title), now, now)
        with self._connect() as con:
            con.execute(
                "INSERT INTO conversations (id, session, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (conv.id, conv.session, conv.title, now, now),
            )
        return conv

    def list(self, session: str) -> list[Conversation]:
        """The session's conversations, most recently used first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT c.id, c.session, c.title, c.created_at, c.updated_at, "
                "(SELECT COUNT(*) FROM conversation_turns t WHERE t.conversation_id = c.id) "
                "FROM conversations c WHERE c.session = ? ORDER BY c.updated_at DESC, c.rowid DESC",
                (session,),
            ).fetchall()
        return [Conversation(*r) for r in rows]

    def get(self, conversation_id: str) -> Conversation | None:
        with self._connect() as con:
            r = con.execute(
                "SELECT c.id, c.session, c.title, c.created_at, c.updated_at, "
                "(SELECT COUNT(*) FROM conversation_turns t WHERE t.conversation_id = c.id) "
                "FROM conversations c WHERE c.id = ?",
                (conversation_id,),
            ).fetchone()
        return Conversation(*r) if r else None

    def rename(self, conversation_id: str, title: str) -> None:
        title = clean_title(title)
        with self._connect() as con:
            n = con.execute(
                "UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?", (title, time.time(), conversation_id)
            ).rowcount
        if not n:
            raise KBError("that conversation no longer exists (deleted, or older than the retention)")

    def delete(self, conversation_id: str) -> bool:
        """Delete a conversation and its turns; False when it was already gone."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM conversation_turns WHERE conversation_id = ?", (conversation_id,))
            n = con.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount
            con.execute("COMMIT")
        return bool(n)

    def add_turn(self, conversation_id: str, question: str, answer: dict[str, Any]) -> ConversationTurn:
        """Append a turn (the conversation's updated_at moves to now)."""
        now = time.time()
        body = json.dumps(answer, ensure_ascii=False)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            if not con.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone():
                con.execute("ROLLBACK")
                raise KBError("that conversation no longer exists (deleted, or older than the retention); start a new one")
            pos = con.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM conversation_turns WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()[0]
            con.execute(
                "INSERT INTO conversation_turns (conversation_id, position, question, answer, at) VALUES (?, ?, ?, ?, ?)",
                (conversation_id, pos, question, body, now),
            )
            con.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
            con.execute("COMMIT")
        return ConversationTurn(conversation_id, int(pos), question, answer, now)

    def turns(self, conversation_id: str) -> builtins.list[ConversationTurn]:  # `list` here is the method above
        with self._connect() as con:
            rows = con.execute(
                "SELECT conversation_id, position, question, answer, at FROM conversation_turns "
                "WHERE conversation_id = ? ORDER BY position",
                (conversation_id,),
            ).fetchall()
        return [ConversationTurn(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]
