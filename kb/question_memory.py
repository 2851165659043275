"""The question memory: questions confirmed to be answered by a passage, kept to answer their paraphrases.

Each *association* is one (question, passage version, user) triple: the question's text, its embedding
(float32) and character 3-5-gram counts (its character view), the passage's *version* (`text_hash` of the
chunk's retrieval text, as kb/store.py keys embeddings), the document it came from and who confirmed it
(None: no user, as in the local app, the CLI or an imported labelled set). The reader
(retriever/question_recall.py) treats the associations as stored patterns and a new question as a cue.

Learning (Hebbian): a confirmation (thumbs up, a cited source marked helpful, an imported labelled pair)
adds +1 to the association's strength, a thumbs down subtracts 1 (anti-Hebbian); a single association's
strength stays within [-user_cap, user_cap], so repeating the same thumb is worth at most user_cap.
A named user's associations to one passage together add at most user_cap to it (see `patterns`): one
user's clicks cannot swamp everyone's ranking. Every change is an event in the history table.

Forgetting: strength halves every `half_life_days` (30 by default) without a new confirmation or
rejection: effective strength = strength * 0.5 ** (days since last_confirmed_at / half_life_days).
Associations below `min_strength` are not used (after ~4.3 half-lives for one confirmation). `forget`
deletes one association (its events stay, as history).

Versions: an association points at a passage version, never at a chunk id. At read time it resolves to
whichever current chunk has the same text_hash, so a passage whose text is unchanged by a sync carries
over to its new chunk, and one whose text changed finds no chunk and is never used. `prune` (run lazily
once per committed snapshot, by the first search that reads the memory after it) makes that visible:
such associations are *retired* (kept, with their history, never used again, even if the old text comes
back), associations of a deleted document are removed, and a renamed document's are moved with it.

The tables are declared in kb/schema.py (QUESTION_MEMORY_TABLES) and created here on the first write.
The memory normally lives in the KB's kb.sqlite; `path` puts it in a file of its own (eval's replays).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from kb import reads
from kb.database import Database, inserted_id
from kb.errors import KBError
from kb.lexicon import char_grams, pack_grams
from kb.memory_records import (
    ASSOCIATION_COLUMNS,
    PATTERN_COLUMNS,
    Association,
    MemoryConfig,
    MemoryEvent,
    MemoryPatterns,
    association_from_row,
    patterns_from_rows,
    question_key,
)
from kb.schema import QUESTION_MEMORY_TABLES, FeatureTables, has_table
from kb.store import KnowledgeBase


class QuestionMemory:
    """The question memory of the KB at kb (a KnowledgeBase or its directory).

    path: keep the associations in this SQLite file instead of the KB's kb.sqlite (eval replays use a
    scratch file, so a benchmark never writes into a real KB's memory).
    """

    def __init__(
        self, kb: KnowledgeBase | str | Path, config: MemoryConfig | None = None, path: str | Path | None = None
    ) -> None:
        self.kb = kb if isinstance(kb, KnowledgeBase) else KnowledgeBase(kb)
        self.config = config or MemoryConfig()
        self.db = self.kb.db if path is None else Database(path)
        self.path = self.db.path
        self._tables = FeatureTables(self.db, QUESTION_MEMORY_TABLES, "the question memory")

    def exists(self) -> bool:
        """Whether the memory's tables exist (no write needed to ask)."""
        if not self.path.exists():
            return False
        try:
            with self._tables.connect(write=False) as con:
                return has_table(con, "qmem_meta")
        except KBError:
            return False

    def version(self) -> int:
        """A counter that changes with every write (0 for a memory never written): what readers cache on.
        Asked on every question, so it reads through the database's kept read-only connection."""
        if not self.path.exists():
            return 0
        try:
            with self.db.read() as con:
                row = con.execute("SELECT value FROM qmem_meta WHERE key = 'version'").fetchone()
        except (sqlite3.Error, KBError):
            return 0  # no memory tables yet (or unreadable): nothing to recall
        return int(row[0]) if row else 0

    @staticmethod
    def bump_version(con: sqlite3.Connection) -> None:
        """Inside con's open transaction: readers caching on version() must reload."""
        con.execute(
            "INSERT INTO qmem_meta (key, value) VALUES ('version', '1') ON CONFLICT(key) DO UPDATE SET "
            "value = CAST(value AS INTEGER) + 1"
        )

    # ---- the KB side -------------------------------------------------------------
    def _chunks(self, chunk_ids: Sequence[int]) -> dict[int, tuple[str, str, int]]:
        """{chunk id: (text_hash, document source, document version)} of current chunks; KBError for a missing one."""
        with self.kb.db.read() as con:
            out = reads.chunk_versions(con, chunk_ids)
        missing = sorted({int(i) for i in chunk_ids} - set(out))
        if missing:
            raise KBError(f"no passage {missing[0]} in the knowledge base (it changed or was removed by a sync)")
        return out

    def _resolve(self, hashes: Sequence[str]) -> dict[str, list[tuple[int, str, int]]]:
        """{text_hash: [(chunk id, document source, document version), ...]} for the current chunks."""
        with self.kb.db.read() as con:
            return reads.chunks_by_hash(con, hashes)

    # ---- learning ----------------------------------------------------------------
    def confirm(
        self,
        question: str,
        vector: np.ndarray,
        chunk_id: int,
        user: str | None = None,
        origin: str = "thumbs_up",
        now: float | None = None,
    ) -> Association:
        """Hebbian: chunk_id answers question (embedding vector, unit length); +1 to the association."""
        return self.learn([(question, vector, chunk_id)], +1.0, user, origin, now)[0]

    def reject(
        self,
        question: str,
        vector: np.ndarray,
        chunk_id: int,
        user: str | None = None,
        origin: str = "thumbs_down",
        now: float | None = None,
    ) -> Association:
        """Anti-Hebbian: chunk_id does not answer question; -1 to the association (it may go negative)."""
        return self.learn([(question, vector, chunk_id)], -1.0, user, origin, now)[0]

    def learn(
        self,
        items: Sequence[tuple[str, np.ndarray, int]],
        delta: float,
        user: str | None = None,
        origin: str = "import",
        now: float | None = None,
    ) -> list[Association]:
        """Add delta (+1 confirm, -1 reject) to the association of each (question, vector, chunk id), in one
        transaction; the rows as written. The strength kept so far decays to now first, and stays within
        [-user_cap, user_cap]."""
        now = time.time() if now is None else float(now)
        user = user or ""
        cap = self.config.user_cap
        manifest = self.kb.manifest
        chunks = self._chunks([c for _, _, c in items])
        prepared = []
        for question, vector, chunk_id in items:
            if not isinstance(question, str) or not question.strip():
                raise KBError("an empty question cannot be remembered")
            vec = np.asarray(vector, dtype=np.float32).reshape(-1)
            if manifest is not None and vec.shape[0] != manifest.dim:
                raise KBError(f"question vector has {vec.shape[0]} dimensions, the KB's model {manifest.dim}")
            prepared.append((question.strip(), vec, chunks[int(chunk_id)]))
        grams = char_grams([q for q, _, _ in prepared]) if prepared else None
        out = []
        with self._tables.connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            for n, (question, vec, (h, source, version)) in enumerate(prepared):
                key = question_key(question)
                row = con.execute(
                    f"SELECT {ASSOCIATION_COLUMNS} FROM qmem_associations "
                    "WHERE question_key = ? AND text_hash = ? AND by_user = ?",
                    (key, h, user),
                ).fetchone()
                if row is None:
                    assert grams is not None  # computed whenever prepared holds a question
                    g = grams[n]
                    cur = con.execute(
                        "INSERT INTO qmem_associations (question, question_key, vector, grams, text_hash, doc_source, "
                        "doc_version, by_user, strength, confirmations, rejections, created_at, last_confirmed_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            question,
                            key,
                            vec.tobytes(),
                            pack_grams(g.indices.astype(np.uint32), g.data),
                            h,
                            source,
                            version,
                            user,
                            float(np.clip(delta, -cap, cap)),
                            int(delta > 0),
                            int(delta < 0),
                            now,
                            now,
                        ),
                    )
                    aid = inserted_id(cur)
                else:
                    old = association_from_row(row)
                    aid = old.id
                    # A retired association whose old text is current again starts afresh: its old weight is history.
                    kept = 0.0 if old.retired else old.strength * float(self.config.decay(now - old.last_confirmed_at))
                    con.execute(
                        "UPDATE qmem_associations SET strength = ?, confirmations = confirmations + ?, "
                        "rejections = rejections + ?, last_confirmed_at = ?, doc_version = ?, retired = 0, "
                        "retired_reason = '' WHERE id = ?",
                        (float(np.clip(kept + delta, -cap, cap)), int(delta > 0), int(delta < 0), now, version, aid),
                    )
                con.execute(
                    "INSERT INTO qmem_events (association_id, event, delta, by_user, origin, at) VALUES (?,?,?,?,?,?)",
                    (aid, "confirmed" if delta > 0 else "rejected", delta, user, origin, now),
                )
                out.append(aid)
            if out:
                self.bump_version(con)
            con.execute("COMMIT")
            return [
                association_from_row(
                    con.execute(f"SELECT {ASSOCIATION_COLUMNS} FROM qmem_associations WHERE id = ?", (aid,)).fetchone()
                )
                for aid in out
            ]

    def forget(self, association_id: int, now: float | None = None) -> bool:
        """Delete one association (its events stay, with a 'forgotten' one); False when there was none."""
        now = time.time() if now is None else now
        if not self.exists():
            return False
        with self._tables.connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            n = con.execute("DELETE FROM qmem_associations WHERE id = ?", (int(association_id),)).rowcount
            if n:
                con.execute(
                    "INSERT INTO qmem_events (association_id, event, at) VALUES (?, 'forgotten', ?)",
                    (int(association_id), now),
                )
                self.bump_version(con)
            con.execute("COMMIT")
        return bool(n)

    # ---- versions ----------------------------------------------------------------
    def prune(self, now: float | None = None) -> dict[str, int]:
        """Bring the associations in line with the KB after a sync; counts of what happened.

        retired: the passage's text changed (its document is still there); removed: the document was deleted;
        moved: the document was renamed (same text, new key); carried: same text in a new document version.
        """
        now = time.time() if now is None else now
        counts = {"retired": 0, "removed": 0, "moved": 0, "carried": 0}
        token = self.kb.token()
        if not self.exists():
            return counts
        with self._tables.connect(write=True) as con:
            rows = con.execute(
                "SELECT id, text_hash, doc_source, doc_version FROM qmem_associations WHERE retired = 0"
            ).fetchall()
        found = self._resolve([r[1] for r in rows])
        with self.kb.db.read() as con:
            live = reads.document_versions(con)
        events = []
        with self._tables.connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            for aid, h, source, version in rows:
                chunks = found.get(h)
                if chunks:
                    here = [c for c in chunks if c[1] == source] or chunks
                    _, new_source, new_version = here[0]
                    if new_source != source:
                        con.execute(
                            "UPDATE qmem_associations SET doc_source = ?, doc_version = ? WHERE id = ?",
                            (new_source, new_version, aid),
                        )
                        events.append((aid, "moved", f"{source} -> {new_source}"))
                        counts["moved"] += 1
                    elif new_version != version:
                        con.execute("UPDATE qmem_associations SET doc_version = ? WHERE id = ?", (new_version, aid))
                        events.append((aid, "carried", f"{source} v{version} -> v{new_version} (text unchanged)"))
                        counts["carried"] += 1
                elif source in live:
                    con.execute(
                        "UPDATE qmem_associations SET retired = 1, retired_reason = ? WHERE id = ?",
                        (f"passage changed in {source} v{live[source]}", aid),
                    )
                    events.append((aid, "retired", f"passage text changed in v{live[source]}"))
                    counts["retired"] += 1
                else:
                    con.execute("DELETE FROM qmem_associations WHERE id = ?", (aid,))
                    events.append((aid, "removed", f"document {source} deleted"))
                    counts["removed"] += 1
            con.executemany(
                "INSERT INTO qmem_events (association_id, event, note, at) VALUES (?,?,?,?)",
                [(a, e, n, now) for a, e, n in events],
            )
            con.execute("INSERT OR REPLACE INTO qmem_meta (key, value) VALUES ('pruned_token', ?)", (token or "",))
            if events:
                self.bump_version(con)
            con.execute("COMMIT")
        return counts

    def prune_if_stale(self) -> None:
        """prune() when the KB committed a snapshot since the last one; silently skipped where it cannot write
        (read-only media): reads check versions themselves."""
        if not self.exists():
            return
        try:
            with self._tables.connect(write=False) as con:
                row = con.execute("SELECT value FROM qmem_meta WHERE key = 'pruned_token'").fetchone()
            if (row[0] if row else None) != self.kb.token():
                self.prune()
        except (KBError, sqlite3.Error):
            pass

    # ---- reading -----------------------------------------------------------------
    def questions(self) -> list[str]:
        """Every distinct question the memory holds (retired ones too): what a model switch re-embeds."""
        if not self.exists():
            return []
        with self._tables.connect(write=False) as con:
            return [r[0] for r in con.execute("SELECT DISTINCT question FROM qmem_associations ORDER BY question")]

    def associations(self, include_retired: bool = False) -> list[Association]:
        if not self.exists():
            return []
        where = "" if include_retired else " WHERE retired = 0"
        with self._tables.connect(write=False) as con:
            rows = con.execute(f"SELECT {ASSOCIATION_COLUMNS} FROM qmem_associations{where} ORDER BY id").fetchall()
        return [association_from_row(r) for r in rows]

    def get(self, association_id: int) -> Association | None:
        if not self.exists():
            return None
        with self._tables.connect(write=False) as con:
            row = con.execute(
                f"SELECT {ASSOCIATION_COLUMNS} FROM qmem_associations WHERE id = ?", (int(association_id),)
            ).fetchone()
        return association_from_row(row) if row else None

    def events(self, association_id: int | None = None) -> list[MemoryEvent]:
        if not self.exists():
            return []
        sql = "SELECT association_id, event, delta, by_user, origin, note, at FROM qmem_events"
        args: tuple = ()
        if association_id is not None:
            sql, args = sql + " WHERE association_id = ?", (int(association_id),)
        with self._tables.connect(write=False) as con:
            rows = con.execute(sql + " ORDER BY id", args).fetchall()
        return [MemoryEvent(int(r[0]), r[1], float(r[2]), r[3], r[4], r[5], float(r[6])) for r in rows]

    def current_chunk(self, assoc: Association) -> int | None:
        """The current chunk an active association resolves to (None: retired, or its passage is gone)."""
        if assoc.retired:
            return None
        chunks = self._resolve([assoc.text_hash]).get(assoc.text_hash, [])
        here = [c for c in chunks if c[1] == assoc.doc_source] or chunks
        return here[0][0] if here else None

    def patterns(self, now: float | None = None) -> MemoryPatterns:
        """The usable associations as the reader's patterns (memory_records.patterns_from_rows: decayed, capped per
        user, summed per question and passage), each resolved to a current chunk with the same text."""
        now = time.time() if now is None else now
        dim = self.kb.manifest.dim if self.kb.manifest else 0
        if not self.exists():
            return patterns_from_rows([], {}, self.config, now, dim)
        with self._tables.connect(write=False) as con:
            rows = con.execute(f"SELECT {PATTERN_COLUMNS} FROM qmem_associations WHERE retired = 0").fetchall()
        found = self._resolve([r[4] for r in rows]) if rows else {}
        return patterns_from_rows(rows, found, self.config, now, dim)
