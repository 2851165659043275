"""The question log: every question asked through the app, the API and (opt-in) `kb ask`, kept for insights.

Each entry: when (Unix seconds), the question with personal data redacted (kb/redact.py) before it is
stored, the outcome ("answered" or "abstained"), the evidence the answer layer read (0..1), the cited
passages (chunk id, document source, document version at the time), who asked ("key:ID" for an API key,
"session:ID" for an app session, None for the local CLI), the collection, if any, and for a follow-up its
context: the user's previous question (redacted too), so the question can be asked again as it was meant.

Retention: entries older than `retention_days` are deleted on every write (0 keeps nothing: nothing is
written, and what was there is deleted on the next write). The tables are declared in kb/schema.py
(QUESTION_LOG_TABLES) and created here on the first write; a KB never asked anything has none. The log
never prints its questions anywhere: it only stores them.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from kb.database import rollback
from kb.errors import KBError
from kb.redact import redact
from kb.schema import QUESTION_LOG_ADDED_COLUMNS, QUESTION_LOG_TABLES, FeatureTables, has_column, has_table
from kb.store import KnowledgeBase

DAY = 86400.0
OUTCOMES = ("answered", "abstained")


@dataclass(frozen=True)
class QuestionLogConfig:
    """retention_days: entries older than this many days are deleted on each write (90; 0 keeps nothing).
    redact: take personal data out of questions before storing them (on by default; tests may turn it off)."""

    retention_days: float = 90.0
    redact: bool = True

    def __post_init__(self) -> None:
        if not self.retention_days >= 0:
            raise KBError(f"retention_days must be >= 0 (0 keeps nothing), not {self.retention_days}")


@dataclass(frozen=True)
class LoggedCitation:
    """A passage an answer cited: its chunk id, document source and the document's version then."""

    chunk_id: int
    doc_source: str
    doc_version: int


@dataclass(frozen=True)
class LogEntry:
    """One logged question. at: Unix seconds; evidence: the answer layer's evidence (None if not given);
    context: a follow-up's previous user question (None: asked alone)."""

    id: int
    at: float
    question: str
    outcome: str
    citations: tuple[LoggedCitation, ...]
    asked_by: str | None
    collection: str | None
    evidence: float | None
    context: str | None = None

    @property
    def abstained(self) -> bool:
        return self.outcome == "abstained"


@dataclass(frozen=True)
class NewEntry:
    """An entry to log (QuestionLog.record_many): at: Unix seconds; the question as typed (redacted on writing);
    vector: its float32 unit vector by `model` when the asker's retriever has it at hand (kept only when
    redaction left the question unchanged: a vector of personal data is personal data); context: a follow-up's
    previous user question (redacted on writing too)."""

    at: float
    question: str
    outcome: str
    citations: tuple[LoggedCitation, ...] = ()
    asked_by: str | None = None
    collection: str | None = None
    evidence: float | None = None
    vector: bytes | None = None
    model: str | None = None
    context: str | None = None


class QuestionLog:
    """The question log of the KB at kb (a KnowledgeBase or its directory), in its kb.sqlite."""

    def __init__(self, kb: KnowledgeBase | str | Path, config: QuestionLogConfig | None = None) -> None:
        self.kb = kb if isinstance(kb, KnowledgeBase) else KnowledgeBase(kb)
        self.config = config or QuestionLogConfig()
        self.db = self.kb.db
        self._tables = FeatureTables(self.db, QUESTION_LOG_TABLES, "the question log", QUESTION_LOG_ADDED_COLUMNS)

    def exists(self) -> bool:
        """Whether the log's tables exist (nothing logged yet: False)."""
        if not self.db.path.exists():
            return False
        try:
            with self._tables.connect(write=False) as con:
                return has_table(con, "question_log")
        except KBError:
            return False

    def record(
        self,
        question: str,
        outcome: str,
        citations: Sequence[LoggedCitation] = (),
        asked_by: str | None = None,
        collection: str | None = None,
        evidence: float | None = None,
        now: float | None = None,
        vector: bytes | None = None,
        model: str | None = None,
        context: str | None = None,
    ) -> int | None:
        """Log one question (redacted) and prune what is past retention; the entry's id, or None when the
        retention is 0 (nothing kept). vector / model / context: see NewEntry."""
        now = time.time() if now is None else now
        entry = NewEntry(now, question, outcome, tuple(citations), asked_by, collection, evidence, vector, model, context)
        ids = self.record_many([entry], now)
        return ids[0] if ids else None

    def record_many(self, entries: Sequence["NewEntry"], now: float | None = None) -> list[int]:
        """Log entries (each redacted, at its own time) in one transaction after pruning what is past retention
        at now; their ids, in order ([] when the retention is 0). What record() does, for imports and benchmarks."""
        for e in entries:
            if e.outcome not in OUTCOMES:
                raise KBError(f"outcome must be one of {', '.join(OUTCOMES)}, not {e.outcome!r}")
        now = time.time() if now is None else now
        if self.config.retention_days == 0 and not self.exists():
            return []
        ids: list[int] = []
        with self._tables.connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                self._prune(con, now)
                if self.config.retention_days > 0:
                    for e in entries:
                        text = redact(e.question) if self.config.redact else e.question
                        context = redact(e.context) if self.config.redact and e.context else e.context
                        cur = con.execute(
                            "INSERT INTO question_log (at, question, outcome, asked_by, collection, evidence, context) "
                            "VALUES (?,?,?,?,?,?,?)",
                            (e.at, text, e.outcome, e.asked_by, e.collection, e.evidence, context or None),
                        )
                        entry = int(cur.lastrowid or 0)
                        ids.append(entry)
                        if e.vector is not None and e.model and text == e.question:
                            con.execute(
                                "INSERT OR IGNORE INTO question_log_vectors (question, model, vector) VALUES (?,?,?)",
                                (text, e.model, e.vector),
                            )
                        con.executemany(
                            "INSERT INTO question_log_citations (entry_id, n, chunk_id, doc_source, doc_version) "
                            "VALUES (?,?,?,?,?)",
                            [
                                (entry, n, int(c.chunk_id), c.doc_source, int(c.doc_version))
                                for n, c in enumerate(e.citations, 1)
                            ],
                        )
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        return ids

    def _prune(self, con: sqlite3.Connection, now: float) -> int:
        cutoff = now - self.config.retention_days * DAY if self.config.retention_days > 0 else float("inf")
        old = "SELECT id FROM question_log WHERE at < ?"
        # Not SELECT DISTINCT: SQLite would walk the whole question index for it (45 ms at 100k entries) where
        # the time index finds the few old rows at once.
        gone = sorted({r[0] for r in con.execute("SELECT question FROM question_log WHERE at < ?", (cutoff,))})
        con.execute(f"DELETE FROM question_log_citations WHERE entry_id IN ({old})", (cutoff,))
        n = con.execute("DELETE FROM question_log WHERE at < ?", (cutoff,)).rowcount
        # A question's vector goes with the last entry holding it (it is as personal as the text).
        con.executemany(
            "DELETE FROM question_log_vectors WHERE question = ? AND NOT EXISTS "
            "(SELECT 1 FROM question_log WHERE question = ?)",
            [(q, q) for q in gone],
        )
        return n

    def prune(self, now: float | None = None) -> int:
        """Delete the entries past retention now; how many."""
        if not self.exists():
            return 0
        with self._tables.connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            n = self._prune(con, time.time() if now is None else now)
            con.execute("COMMIT")
        return n

    def entries(
        self,
        since: float | None = None,
        until: float | None = None,
        asked_by: str | None = None,
        collections: Sequence[str] | None = None,
    ) -> list[LogEntry]:
        """The entries with since <= at < until (Unix seconds; None: no bound), oldest first; asked_by: only
        that asker's; collections: only entries of those collections."""
        if not self.exists():
            return []
        where: list[str] = ["1 = 1"]
        args: list[object] = []
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if until is not None:
            where.append("at < ?")
            args.append(until)
        if asked_by is not None:
            where.append("asked_by = ?")
            args.append(asked_by)
        if collections is not None:
            where.append(f"collection IN ({','.join('?' * len(collections))})")
            args.extend(collections)
        sql = " AND ".join(where)
        with self._tables.connect(write=False) as con:
            # A log written before contexts were kept has no such column until its next write.
            context = "context" if has_column(con, "question_log", "context") else "NULL"
            rows = con.execute(
                f"SELECT id, at, question, outcome, asked_by, collection, evidence, {context} FROM question_log "
                f"WHERE {sql} ORDER BY at, id",
                args,
            ).fetchall()
            cites: dict[int, list[LoggedCitation]] = {}
            for e, chunk, source, version in con.execute(
                "SELECT entry_id, chunk_id, doc_source, doc_version FROM question_log_citations WHERE entry_id IN "
                f"(SELECT id FROM question_log WHERE {sql}) ORDER BY entry_id, n",
                args,
            ):
                cites.setdefault(int(e), []).append(LoggedCitation(int(chunk), source, int(version)))
        return [
            LogEntry(int(r[0]), float(r[1]), r[2], r[3], tuple(cites.get(int(r[0]), ())), r[4], r[5], r[6], r[7])
            for r in rows
        ]

    def vectors(self, questions: Sequence[str], model: str) -> dict[str, bytes]:
        """{question: stored vector bytes (float32)} of the given logged questions embedded by model earlier."""
        if not questions or not self.exists():
            return {}
        out: dict[str, bytes] = {}
        distinct = list(dict.fromkeys(questions))
        with self._tables.connect(write=False) as con:
            if not has_table(con, "question_log_vectors"):
                return {}
            for start in range(0, len(distinct), 500):
                part = distinct[start : start + 500]
                out.update(
                    con.execute(
                        "SELECT question, vector FROM question_log_vectors WHERE model = ? "
                        f"AND question IN ({','.join('?' * len(part))})",
                        [model, *part],
                    ).fetchall()
                )
        return out

    def save_vectors(self, vectors: dict[str, bytes], model: str) -> None:
        """Keep {question: float32 vector bytes} by model for questions read from the log (retention deletes
        each with the last entry holding its question)."""
        if not vectors or not self.exists():
            return
        with self._tables.connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    "INSERT OR IGNORE INTO question_log_vectors (question, model, vector) VALUES (?,?,?)",
                    [(q, model, v) for q, v in vectors.items()],
                )
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise

    def __len__(self) -> int:
        if not self.exists():
            return 0
        with self._tables.connect(write=False) as con:
            return int(con.execute("SELECT COUNT(*) FROM question_log").fetchone()[0])
