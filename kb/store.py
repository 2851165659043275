"""The knowledge base on disk: SQLite for documents and chunks, FAISS for vectors.

Layout of a KB directory:
    manifest.json          format version, model, dimension
    kb.sqlite              documents, chunks, history, embeddings, feedback (WAL mode)
    ids-T.npy, vectors-T.npy, index-T.faiss   the vector snapshot named by token T
    write.lock             held by the one process writing

Consistency: SQLite is the source of truth and stores every vector. A commit
writes a new snapshot under a fresh token, then records that token in the same
SQLite transaction that changes the rows. A crash before that commit leaves the
old token, whose files are untouched; a crash after leaves the new one whole.
Readers follow the token and reload when it changes, so they never restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import quote

import numpy as np

from kb.errors import (EmptyKBError, KBError, KBLockedError, KBWriteError, ManifestError, damaged_database,
                       storage_reason, write_failure)
from kb import lexical_index
from kb.faults import fault_point
from kb.manifest import MANIFEST_NAME, Manifest, read_manifest, write_manifest
from kb.records import (OCR_LOW_CONFIDENCE, ChunkRecord, DocumentFilter, DocumentInfo, Feedback, HistoryEntry,
                        NewDocument, retrieval_text)
from kb.sql import IN_LIST, select_in
from kb.vector_index import (
    IndexConfig,
    Snapshot,
    SnapshotDamaged,
    build_index,
    index_ids,
    load_snapshot,
    remove_stale_snapshots,
    save_snapshot,
    snapshot_paths,
)

log = logging.getLogger("hopfield_kb.kb")

DB_NAME = "kb.sqlite"
LOCK_NAME = "write.lock"

SCHEMA = """
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
""" + lexical_index.SCHEMA

# Columns added after the first release: (name, declaration). Older KBs get them on open.
ADDED_DOC_COLUMNS = (
    ("path", "TEXT NOT NULL DEFAULT ''"),
    ("root", "TEXT NOT NULL DEFAULT ''"),
    ("visibility", "TEXT NOT NULL DEFAULT 'internal'"),
    ("tags", "TEXT NOT NULL DEFAULT '[]'"),
    ("encoding", "TEXT NOT NULL DEFAULT ''"),
    ("url", "TEXT NOT NULL DEFAULT ''"),
    ("updated_at", "TEXT NOT NULL DEFAULT ''"),
)
ADDED_CHUNK_COLUMNS = (("ocr_confidence", "REAL"),)
ADDED_FEEDBACK_COLUMNS = (("by_user", "TEXT"),)

CHUNK_COLUMNS = (
    "c.id, c.doc_id, d.source, d.name, d.title, c.doc_version, c.ordinal, c.text, "
    "c.char_start, c.char_end, c.n_tokens, c.page, c.section, d.visibility, c.ocr_confidence, d.url"
)
DOC_COLUMNS = ("id, source, name, title, kind, content_hash, version, ingested_at, n_chunks, size_bytes, path, root, "
               "visibility, encoding, url, updated_at, tags")


def _document(row) -> DocumentInfo:
    *fields, encoding, url, updated_at, tags = row
    return DocumentInfo(*fields, encoding=encoding, url=url, updated_at=updated_at, tags=tuple(json.loads(tags or "[]")))


def text_hash(text: str) -> str:
    """Key of a chunk's embedding: identical text is embedded once per KB."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CheckReport:
    """Result of KnowledgeBase.check(): ok is True when problems is empty.

    damaged: snapshot files (names) that are missing, unreadable or changed since their commit;
    vectors_compared: snapshot vectors checked against kb.sqlite (all with deep=True, else a sample);
    notes: facts that are not problems (e.g. a snapshot written before checksums were recorded).
    """

    n_documents: int
    n_chunks: int
    n_vectors: int
    problems: tuple[str, ...]
    damaged: tuple[str, ...] = ()
    vectors_compared: int = 0
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


class KnowledgeBase:
    """A KB directory. Reads are safe from any thread or process; writes go through writer().

    >>> kb = KnowledgeBase("kb_data", create=True)          # doctest: +SKIP
    >>> with kb.writer(model="all-MiniLM-L6-v2", dim=384) as w:   # doctest: +SKIP
    ...     w.put_document(doc, vectors)
    """

    def __init__(self, kb_dir: str | Path = "kb_data", create: bool = False, index: IndexConfig | None = None,
                 background_refresh: bool = False):
        """background_refresh: for long-running servers. When another process commits, snapshot() keeps
        returning the loaded snapshot while a thread loads and verifies the new one (reading and
        checksumming its files takes ~0.1 s per 100k chunks), then switches; no question waits for a
        load, and one may be answered from the previous version meanwhile. A commit through this KB's
        own writer loads the new snapshot in the writing thread before commit() returns."""
        self.dir = Path(kb_dir)
        self._background = background_refresh
        self._loading: str | None = None
        self._loading_lock = threading.Lock()
        self._readers = threading.local()  # one kept read-only connection per thread (see _reader)
        self.index_config = index or IndexConfig()
        if not self.dir.exists():
            if not create:
                raise KBError(f"no knowledge base at {self.dir}: run `kb ingest PATH --kb-dir {self.dir}` first")
            self.dir.mkdir(parents=True, mode=0o700)  # documents may be internal: only the owner enters
        if not (self.dir / DB_NAME).exists() and not create:
            raise KBError(f"{self.dir} is not a knowledge base (no {DB_NAME}); run `kb ingest PATH --kb-dir {self.dir}`")
        self.manifest: Manifest | None = read_manifest(self.dir)
        self._snapshot: Snapshot | None = None
        self._snapshot_lock = threading.Lock()
        self._immutable = False
        if create and not (self.dir / DB_NAME).exists():
            self._upgrade_schema()
        elif self._needs_upgrade():
            # Reads never write, except this once: an older KB gets its new columns (a few ALTERs).
            self._upgrade_schema()
        if (self.dir / DB_NAME).exists():
            self.manifest = self._committed_model(self.manifest)

    def _needs_upgrade(self) -> bool:
        with self._connect() as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"meta", "documents", "chunks", "embeddings", "history", "feedback", "chunk_fts", "lex_terms",
                    "lex_words", "chunk_grams"} <= tables:
                return True
            if not lexical_index.is_current(con) and con.execute("SELECT 1 FROM chunks LIMIT 1").fetchone():
                return True
            have = {r[1] for r in con.execute("PRAGMA table_info(documents)")}
            have_fb = {r[1] for r in con.execute("PRAGMA table_info(feedback)")}
            have_chunks = {r[1] for r in con.execute("PRAGMA table_info(chunks)")}
        return not ({n for n, _ in ADDED_DOC_COLUMNS} <= have and {n for n, _ in ADDED_FEEDBACK_COLUMNS} <= have_fb
                    and {n for n, _ in ADDED_CHUNK_COLUMNS} <= have_chunks)

    def _upgrade_schema(self) -> None:
        try:
            with self._connect(write=True) as con:
                con.executescript(SCHEMA)
                for table, added in (("documents", ADDED_DOC_COLUMNS), ("feedback", ADDED_FEEDBACK_COLUMNS),
                                     ("chunks", ADDED_CHUNK_COLUMNS)):
                    have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
                    for name, declaration in added:
                        if name not in have:
                            con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
                if not lexical_index.is_current(con):
                    # A KB from before the lexical index: build it once from the chunks (what every
                    # process used to build in memory at start-up).
                    con.execute("BEGIN IMMEDIATE")
                    lexical_index.rebuild(con, self._retrieval_texts(con))
                    con.execute("COMMIT")
        except KBWriteError as exc:
            raise KBError(f"the knowledge base at {self.dir} was written by an older version and needs a one-time "
                          f"upgrade, which needs write access: {exc}") from exc

    # ---- connections -------------------------------------------------------------
    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; write=False opens read-only and never creates or changes a file (read-only media,
        a full disk), falling back to SQLite's immutable mode when even the shared-memory file cannot be made."""
        con = None
        local = self._readers
        try:
            if write:
                con = self._open(True)
            else:
                con = self._reader()
                local.depth = getattr(local, "depth", 0) + 1
            yield con
        except sqlite3.DatabaseError as exc:
            if not write:
                self._drop_reader()
            # Disk full, file-size limit, read-only directory: one clear KBError instead of a
            # traceback. A damaged file gets its own message; query bugs stay as they are.
            if storage_reason(exc) is not None:
                if write:
                    raise write_failure(self.dir, exc) from exc
                raise KBError(f"cannot read the knowledge base at {self.dir}: {storage_reason(exc)}") from exc
            if _damaged(exc):
                raise damaged_database(self.dir, exc) from exc
            raise
        finally:
            if write:
                if con is not None:
                    con.close()
            elif con is not None:
                local.depth -= 1
                reader = getattr(local, "con", None)
                if local.depth == 0 and reader is not None and reader.in_transaction:
                    reader.rollback()  # a read that stopped half-way must not pin an old view of the KB

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection, kept between reads (opening one costs more than most reads);
        reopened when kb.sqlite was replaced by another file."""
        local = self._readers
        try:
            stat = (self.dir / DB_NAME).stat()
            file_id = (stat.st_dev, stat.st_ino)
        except OSError:
            file_id = None
        con = getattr(local, "con", None)
        if con is not None and local.file_id == file_id:
            return con
        if getattr(local, "depth", 0) > 0 and con is not None:
            return con  # inside an outer read of this thread: keep its connection
        self._drop_reader()
        local.con, local.file_id = self._open(False), file_id
        return local.con

    def _drop_reader(self) -> None:
        con = getattr(self._readers, "con", None)
        self._readers.con = None
        if con is not None and getattr(self._readers, "depth", 0) == 0:
            con.close()

    def _open(self, write: bool) -> sqlite3.Connection:
        path = self.dir / DB_NAME
        if write:
            con = sqlite3.connect(path, timeout=60.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            return con
        wal = self.dir / f"{DB_NAME}-wal"
        if not self._immutable and not os.access(self.dir, os.W_OK) and not (wal.exists() and wal.stat().st_size):
            # Read-only media: no writer can exist, and SQLite could not make its -shm file anyway.
            self._immutable = True
        uri = f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if self._immutable else "")
        try:
            con = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
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
            return self._open(write=False)

    def _committed_model(self, manifest: Manifest | None, token: str | None = None) -> Manifest | None:
        """manifest, or the model kb.sqlite records when that differs. SQLite is the source of truth: a
        `kb reembed` records its model in the transaction that swaps the vectors, then rewrites manifest.json;
        killed between the two, the vectors are the new model's and so must the KB's model be.
        token: use the record only if this snapshot token is still the committed one (else keep manifest)."""
        with self._connect() as con:
            row = con.execute("SELECT (SELECT value FROM meta WHERE key = 'model'), "
                              "(SELECT value FROM meta WHERE key = 'token')").fetchone()
        if row is None or row[0] is None or (token is not None and row[1] != token):
            return manifest
        try:
            record = json.loads(row[0])
            model, dim = str(record["model"]), int(record["dim"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{self.dir / DB_NAME}: unreadable model record ({exc}); the KB is damaged") from exc
        if manifest is not None and (manifest.model, manifest.dim) == (model, dim):
            return manifest
        return Manifest(model=model, dim=dim) if manifest is None else replace(manifest, model=model, dim=dim)

    # ---- reading -----------------------------------------------------------------
    def token(self) -> str | None:
        """Token of the committed snapshot; changes on every commit."""
        with self._connect() as con:
            row = con.execute("SELECT value FROM meta WHERE key='token'").fetchone()
        return row[0] if row else None

    def snapshot(self) -> Snapshot:
        """The current vector snapshot, reloaded only when a commit has changed it.

        A snapshot file that is damaged (changed since its commit, truncated, missing) is never used:
        the snapshot is rebuilt in memory from SQLite, nothing is written, and `kb check` names the file.
        """
        token = self.token()
        if token is None:
            raise EmptyKBError(f"the knowledge base at {self.dir} is empty: ingest documents first")
        current = self._snapshot
        if current is not None and current.token == token:
            return current
        if current is None or not self._background:
            return self._load(token)
        self._load_in_background(token)
        return current

    def refresh(self) -> Snapshot:
        """Load the committed snapshot now, waiting for it (after this process committed through another
        KnowledgeBase object of the same directory, e.g. ingest())."""
        token = self.token()
        if token is None:
            raise EmptyKBError(f"the knowledge base at {self.dir} is empty: ingest documents first")
        return self._load(token)

    def _load(self, token: str) -> Snapshot:
        with self._snapshot_lock:  # one load at a time; readers of the loaded snapshot never wait here
            if self._snapshot is None or self._snapshot.token != token:
                try:
                    snap = load_snapshot(self.dir, token, self.index_config.nprobe, self.recorded_checksums(token))
                except SnapshotDamaged as exc:
                    log.warning("%s: snapshot file %s; answering from vectors rebuilt from kb.sqlite "
                                "(kb check --repair rewrites the files)", self.dir, exc)
                    snap = None
                self._snapshot = snap if snap is not None else self._rebuild_snapshot(token)
                # A `kb reembed` by another process switched the model with this token: questions must now be
                # embedded with it (retriever.base follows kb.manifest).
                self.manifest = self._committed_model(self.manifest, self._snapshot.token)
            return self._snapshot

    def _load_in_background(self, token: str) -> None:
        with self._loading_lock:
            if self._loading is not None:
                return  # one loader; a later token is picked up by the next snapshot() after it
            self._loading = token

        def run() -> None:
            try:
                self._load(token)
            except Exception as exc:  # noqa: BLE001 - the previous snapshot keeps serving; say why
                log.warning("%s: loading snapshot %s failed (%s); still answering from %s", self.dir, token, exc,
                            self._snapshot.token if self._snapshot else "nothing")
            finally:
                with self._loading_lock:
                    self._loading = None

        threading.Thread(target=run, name=f"kb-snapshot-{token}", daemon=True).start()

    def recorded_checksums(self, token: str, con: sqlite3.Connection | None = None) -> dict[str, str] | None:
        """{file name: SHA-256} recorded when token's snapshot was committed (None before checksums existed)."""
        if con is None:
            with self._connect() as own:
                return self.recorded_checksums(token, own)
        row = con.execute("SELECT value FROM meta WHERE key='snapshot_sha256'").fetchone()
        if not row:
            return None
        record = json.loads(row[0])
        return record["files"] if record.get("token") == token else None

    def _rebuild_snapshot(self, token: str) -> Snapshot:
        # The files of the committed token are gone (deleted by a later commit while we
        # looked, or by hand): rebuild from SQLite, which holds every vector.
        with self._connect() as con:
            con.execute("BEGIN")
            ids, vectors = self._vectors_from_db(con)
            row = con.execute("SELECT value FROM meta WHERE key='token'").fetchone()
            con.execute("COMMIT")
        return Snapshot(token=row[0] if row else token, ids=ids, vectors=vectors,
                        index=build_index(ids, vectors, self.index_config))

    def _vectors_from_db(self, con: sqlite3.Connection, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = con.execute(
            "SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.text_hash = c.text_hash ORDER BY c.id"
        ).fetchall()
        dim = dim if dim is not None else self.manifest.dim if self.manifest else 0
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.zeros((len(rows), dim), dtype=np.float32)
        for i, (_, blob) in enumerate(rows):
            vectors[i] = np.frombuffer(blob, dtype=np.float32)
        return ids, vectors

    def chunks(self, chunk_ids: Sequence[int]) -> list[ChunkRecord | None]:
        """Chunk records in the order of chunk_ids; None where an id no longer exists."""
        ids = [int(i) for i in chunk_ids]
        if not ids:
            return []
        found: dict[int, ChunkRecord] = {}
        with self._connect() as con:
            for row in select_in(con, f"SELECT {CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                      f"WHERE c.id IN {IN_LIST}", ids):
                found[row[0]] = ChunkRecord(*row)
        return [found.get(i) for i in ids]

    def chunk_texts(self) -> tuple[np.ndarray, list[str]]:
        """(ids, retrieval texts) of every chunk, ordered by id: what lexical indexes are built from."""
        with self._connect() as con:
            rows = list(self._retrieval_texts(con))  # one statement: one consistent read
        return np.array([cid for cid, _ in rows], dtype=np.int64), [text for _, text in rows]

    @staticmethod
    def _retrieval_texts(con: sqlite3.Connection, chunk_ids: Sequence[int] | None = None):
        """(chunk id, retrieval text) of every chunk (or of chunk_ids), as the lexical index holds them."""
        query = "SELECT c.id, d.title, c.section, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id"
        if chunk_ids is None:
            for cid, title, section, text in con.execute(query + " ORDER BY c.id"):
                yield cid, retrieval_text(title, section, text)
            return
        for cid, title, section, text in select_in(con, query + f" WHERE c.id IN {IN_LIST}", [int(i) for i in chunk_ids]):
            yield cid, retrieval_text(title, section, text)

    # ---- the lexical index (kb.lexicon) --------------------------------------------------------
    def bm25_top(self, terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, scores) of the k chunks best matching any of terms by BM25, best first."""
        with self._connect() as con:
            return lexical_index.bm25_top(con, terms, k)

    def retrieval_texts(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        """{chunk id: retrieval text (title | section + text, what was embedded and indexed)} for chunk_ids."""
        with self._connect() as con:
            return dict(self._retrieval_texts(con, chunk_ids))

    def chunk_grams(self, chunk_ids: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{chunk id: (character n-gram buckets, counts)}."""
        with self._connect() as con:
            return lexical_index.grams_of(con, chunk_ids)

    def char_df(self) -> np.ndarray:
        """Chunks holding each character n-gram bucket, (GRAM_BUCKETS,) int64."""
        with self._connect() as con:
            return lexical_index.char_df(con)

    def bm25_length(self) -> int:
        """BM25 tokens (words less stopwords) in all chunks together."""
        with self._connect() as con:
            return lexical_index.bm25_length(con)

    def term_df(self, terms: Sequence[str]) -> dict[str, int]:
        """{word: chunks holding it} for the given lower-case words the KB holds."""
        with self._connect() as con:
            return lexical_index.term_df(con, terms)

    def vocabulary(self) -> list[tuple[str, int]]:
        """(word, occurrences) of every Latin word of 3+ letters in the KB's chunks, alphabetically."""
        with self._connect() as con:
            return lexical_index.words(con)

    def n_chunks(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def documents(self, where: DocumentFilter | None = None) -> list[DocumentInfo]:
        """Stored documents (those where allows), ordered by name."""
        clause, params = _filter_sql(where)
        with self._connect() as con:
            rows = con.execute(f"SELECT {DOC_COLUMNS} FROM documents d WHERE {clause} ORDER BY name, source",
                               params).fetchall()
        return [_document(r) for r in rows]

    def chunk_ids(self, where: DocumentFilter) -> np.ndarray:
        """Sorted ids of the chunks of the documents where allows: what a filtered search may return."""
        clause, params = _filter_sql(where)
        with self._connect() as con:
            rows = con.execute(f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {clause} "
                               "ORDER BY c.id", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def document(self, source_or_name: str) -> DocumentInfo | None:
        """A document by its source path, or by file name when that is unambiguous."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT {DOC_COLUMNS} FROM documents WHERE source = ? OR name = ?", (source_or_name, source_or_name)
            ).fetchall()
        exact = [r for r in rows if r[1] == source_or_name]
        rows = exact or rows
        if len(rows) > 1:
            raise KBError(f"{source_or_name!r} names {len(rows)} documents; give the full source path")
        return _document(rows[0]) if rows else None

    def document_text(self, doc_id: int) -> str:
        with self._connect() as con:
            row = con.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return row[0] if row else ""

    def history(self, source_or_name: str) -> list[HistoryEntry]:
        """Every version event of a document, oldest first (kept after removal too)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT h.source, h.version, h.event, h.content_hash, h.n_chunks, h.at FROM history h "
                "WHERE h.source = ? OR h.source IN (SELECT source FROM history GROUP BY source "
                "HAVING source LIKE '%/' || ? ESCAPE '\\') ORDER BY h.at, h.rowid",
                # _ and % in a file name are literal characters, not LIKE wildcards.
                (source_or_name, re.sub(r"([\\%_])", r"\\\1", source_or_name)),
            ).fetchall()
        return [HistoryEntry(*r) for r in rows]

    def stats(self) -> dict[str, object]:
        """Counts and identity, as plain values for printing or JSON; ocr_pages: pages read by OCR;
        low_confidence_pages: those under OCR_LOW_CONFIDENCE, with their document and confidence (0-1)."""
        with self._connect() as con:
            n_docs = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            n_chunks, n_tokens = con.execute("SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM chunks").fetchone()
            by_kind = dict(con.execute("SELECT kind, COUNT(*) FROM documents GROUP BY kind").fetchall())
            ocr = con.execute("SELECT d.source, c.page, MIN(c.ocr_confidence) FROM chunks c JOIN documents d "
                              "ON d.id = c.doc_id WHERE c.ocr_confidence IS NOT NULL GROUP BY d.source, c.page "
                              "ORDER BY d.source, c.page").fetchall()
        size = sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())
        return {
            "kb_dir": str(self.dir),
            "model": self.manifest.model if self.manifest else None,
            "dim": self.manifest.dim if self.manifest else None,
            "format_version": self.manifest.format_version if self.manifest else None,
            "documents": n_docs,
            "documents_by_kind": by_kind,
            "chunks": n_chunks,
            "tokens": n_tokens,
            "disk_bytes": size,
            "ocr_pages": len(ocr),
            "low_confidence_pages": [{"document": source, "page": page, "confidence": conf}
                                     for source, page, conf in ocr if conf < OCR_LOW_CONFIDENCE],
        }

    def hashes(self) -> dict[str, str]:
        """source -> content hash of every stored document: what sync compares against."""
        with self._connect() as con:
            return dict(con.execute("SELECT source, content_hash FROM documents").fetchall())

    # ---- integrity ---------------------------------------------------------------
    def check(self, deep: bool = False, sample: int = 512) -> CheckReport:
        """Cross-check SQLite, the snapshot files (against their recorded checksums) and the FAISS index;
        compare snapshot vectors with kb.sqlite's (every one with deep, else `sample` of them, seeded)
        and check they are finite and unit-length. Damage is named, file by file."""
        for _ in range(5):
            report, token = self._check_once(deep, sample)
            # A sync that commits while we look deletes the snapshot files of the token we read:
            # that is the KB moving on, not damage. Look again at the new token.
            if report.ok or token == self.token():
                return report
        return report

    def _check_once(self, deep: bool, sample: int) -> tuple[CheckReport, str | None]:
        problems: list[str] = []
        notes: list[str] = []
        damaged: list[str] = []
        with self._connect() as con:
            con.execute("BEGIN")
            token_row = con.execute("SELECT value FROM meta WHERE key='token'").fetchone()
            db_ids = np.array([r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
            n_docs = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            missing_vec = con.execute(
                "SELECT COUNT(*) FROM chunks c LEFT JOIN embeddings e ON e.text_hash = c.text_hash "
                "WHERE e.text_hash IS NULL"
            ).fetchone()[0]
            bad_counts = con.execute(
                "SELECT d.source FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id "
                "GROUP BY d.id HAVING COUNT(c.id) != d.n_chunks"
            ).fetchall()
            orphans = con.execute(
                "SELECT COUNT(*) FROM chunks c LEFT JOIN documents d ON d.id = c.doc_id WHERE d.id IS NULL"
            ).fetchone()[0]
            checksums = self.recorded_checksums(token_row[0], con) if token_row else None
            problems += lexical_index.problems(con, db_ids)
            con.execute("COMMIT")
        if missing_vec:
            problems.append(f"{missing_vec} chunks have no stored vector (only re-ingesting their documents restores them)")
        for (source,) in bad_counts:
            problems.append(f"{source}: chunk count differs from the document row")
        if orphans:
            problems.append(f"{orphans} chunks belong to no document")
        if not (self.dir / MANIFEST_NAME).exists() and n_docs:
            rewrite = (f" (kb.sqlite records model {self.manifest.model}; the next sync or `kb check --repair` "
                       "rewrites it)" if self.manifest else "")
            problems.append("manifest.json is missing" + rewrite)
        n_vectors = compared = 0
        if token_row is None:
            if len(db_ids):
                problems.append("chunks are stored but no snapshot token is committed")
        else:
            token = token_row[0]
            if checksums is None:
                notes.append("no checksums are recorded for this snapshot (written before they were); "
                             "kb check --repair records them")
            try:
                snap = load_snapshot(self.dir, token, checksums=checksums)
            except SnapshotDamaged as exc:
                snap = None
                damaged = list(exc.files)
                problems.append(f"snapshot files damaged: {', '.join(exc.files)} ({exc.reason}); searches use "
                                "vectors rebuilt from kb.sqlite; kb check --repair rewrites the files")
            if snap is None and not damaged:
                others = sorted({p.name.split(".", 1)[0].partition("-")[2] for p in self.dir.glob("vectors-*.npy")})
                lost = f"; files of another snapshot ({', '.join(others)}) are present: a commit may have been lost " \
                       "(was kb.sqlite-wal deleted?)" if others else ""
                damaged = [p.name for p in snapshot_paths(self.dir, token)]
                problems.append(f"snapshot files for token {token} are missing{lost}; kb check --repair rebuilds "
                                "them from kb.sqlite")
            if snap is not None:
                n_vectors = snap.index.ntotal
                faiss_ids = index_ids(snap.index)
                if not np.array_equal(faiss_ids, db_ids):
                    extra = np.setdiff1d(faiss_ids, db_ids).size
                    lost_ids = np.setdiff1d(db_ids, faiss_ids).size
                    problems.append(f"FAISS ids differ from chunk rows: {extra} without a chunk, "
                                    f"{lost_ids} chunks not indexed")
                if not np.array_equal(snap.ids, db_ids):
                    problems.append("snapshot id list differs from chunk rows")
                if self.manifest and snap.vectors.shape[1:] != (self.manifest.dim,) and snap.size:
                    problems.append(f"vector dimension {snap.vectors.shape[1]} != manifest dim {self.manifest.dim}")
                elif snap.size:
                    compared, vector_problems = self._compare_vectors(snap, deep, sample)
                    problems += vector_problems
        report = CheckReport(n_documents=n_docs, n_chunks=len(db_ids), n_vectors=n_vectors, problems=tuple(problems),
                             damaged=tuple(damaged), vectors_compared=compared, notes=tuple(notes))
        return report, token_row[0] if token_row else None

    def _compare_vectors(self, snap: Snapshot, deep: bool, sample: int) -> tuple[int, list[str]]:
        """(vectors compared, problems): snapshot rows against kb.sqlite's vectors, finite and unit-length."""
        rows = np.arange(snap.size) if deep or snap.size <= sample else \
            np.sort(np.random.default_rng(0).choice(snap.size, sample, replace=False))
        ids = snap.ids[rows]
        stored: dict[int, np.ndarray] = {}
        with self._connect() as con:
            for cid, blob in select_in(con, "SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON "
                                       f"e.text_hash = c.text_hash WHERE c.id IN {IN_LIST}", [int(i) for i in ids]):
                stored[cid] = np.frombuffer(blob, dtype=np.float32)
        vectors = np.asarray(snap.vectors[rows], dtype=np.float32)
        problems = []
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            problems.append(f"{int(bad.sum())} snapshot vectors hold NaN or infinity (chunk {int(ids[bad][0])} ...)")
        norms = np.linalg.norm(np.nan_to_num(vectors), axis=1)
        off = np.abs(norms - 1) > 1e-3
        if off.any():
            problems.append(f"{int(off.sum())} snapshot vectors are not unit length (chunk {int(ids[off][0])} ...)")
        differ = [int(i) for i, v in zip(ids, vectors) if int(i) in stored and not np.allclose(v, stored[int(i)], atol=1e-6)]
        if differ:
            problems.append(f"{len(differ)} snapshot vectors differ from kb.sqlite (chunk {differ[0]} ...)")
        return len(rows), problems

    def repair(self, wait: float = 0.0) -> CheckReport:
        """Rewrite everything derived (snapshot vectors, ids, FAISS index, checksums, the lexical index) from kb.sqlite,
        without re-embedding, under the write lock; returns the deep check that proves the result."""
        if self.manifest is None:
            raise KBError(f"{self.dir} has no manifest.json, so its model is unknown: restore manifest.json")
        with self.writer(model=self.manifest.model, dim=self.manifest.dim, wait=wait) as w:
            w.rebuild()
        return self.check(deep=True)

    # ---- feedback ----------------------------------------------------------------
    def add_feedback(self, question: str, chunk_id: int | None, doc_source: str | None, helpful: bool,
                     by: str | None = None) -> int:
        """Store a verdict on a cited passage; by names who gave it (an API key's id, an app session)."""
        with self._connect(write=True) as con:
            cur = con.execute(
                "INSERT INTO feedback (question, chunk_id, doc_source, helpful, at, by_user) VALUES (?, ?, ?, ?, ?, ?)",
                (question, chunk_id, doc_source, int(helpful), time.time(), by),
            )
            return int(cur.lastrowid)

    def feedback(self) -> list[Feedback]:
        with self._connect() as con:
            rows = con.execute("SELECT id, question, chunk_id, doc_source, helpful, at, by_user FROM feedback "
                               "ORDER BY id").fetchall()
        return [Feedback(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]

    # ---- writing -----------------------------------------------------------------
    @contextmanager
    def writer(self, model: str, dim: int, wait: float = 0.0) -> Iterator["Writer"]:
        """Exclusive write access; changes become visible together when the block exits cleanly.

        wait: seconds to wait for another writer before raising KBLockedError.
        """
        if self.manifest is not None:
            self.manifest.check_model(model, dim)
        with self._write_lock(wait):
            if self.manifest is not None:
                self.manifest.check_model(model, dim)
            writer = Writer(self, model, dim)
            yield writer
            writer.commit()

    @contextmanager
    def model_switch(self, model: str, dim: int, wait: float = 0.0) -> Iterator["Writer"]:
        """Exclusive write access for moving the KB to another embedding model (kb.reembed): stage every
        current text's new vector with Writer.switch_model; one commit swaps vectors, snapshot and model
        record together, and the old model's KB serves (and stays whole after a crash) until then."""
        with self._write_lock(wait):
            if self.manifest is None:
                raise KBError(f"the knowledge base at {self.dir} holds nothing to re-embed; ingest documents "
                              "first (`kb sync PATH --model NAME` builds it with a chosen model)")
            writer = Writer(self, model, dim)
            yield writer
            writer.commit()

    @contextmanager
    def _write_lock(self, wait: float) -> Iterator[None]:
        """The KB's write lock held (KBLockedError after wait seconds), with the manifest re-read under it."""
        try:
            lock_fh = open(self.dir / LOCK_NAME, "a+")
        except OSError as exc:
            raise KBError(f"cannot write to {self.dir}: {exc.strerror}; check the directory's permissions") from exc
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise KBLockedError(
                            f"another ingest or sync is writing to {self.dir}; wait for it to finish "
                            "(or pass a longer --wait)"
                        ) from None
                    time.sleep(0.2)
            fault_point("locked")
            # Another process may have written the first manifest since this object read it (two
            # ingests into a new KB, or a KB opened before its first ingest): check against the disk.
            on_disk = read_manifest(self.dir)
            self.manifest = self._committed_model(on_disk)
            if self.manifest is not None and self.manifest != on_disk:
                # A re-embed was killed between its commit and rewriting manifest.json: finish it.
                try:
                    write_manifest(self.dir, self.manifest)
                except OSError as exc:
                    raise write_failure(self.dir, exc) from exc
            current = self.token()
            if current:
                remove_stale_snapshots(self.dir, keep=current)
            yield
        finally:
            fcntl.flock(lock_fh, fcntl.LOCK_UN)
            lock_fh.close()


class Writer:
    """Staged changes to a KB, applied in one transaction by commit()."""

    def __init__(self, kb: KnowledgeBase, model: str, dim: int) -> None:
        self.kb = kb
        self.model = model
        self.dim = dim
        self._puts: dict[str, tuple[NewDocument, np.ndarray]] = {}
        self._removals: set[str] = set()
        self._renames: dict[str, str] = {}
        self._relocations: dict[str, tuple[str, str]] = {}
        self._rebuild = False
        self._switch: dict[str, np.ndarray] | None = None
        self._in_commit: list[Callable[[sqlite3.Connection], None]] = []

    def switch_model(self, vectors: dict[str, np.ndarray]) -> None:
        """Stage the KB's move to this writer's model (only inside KnowledgeBase.model_switch): vectors holds,
        by text_hash, the new vector of every current chunk's retrieval text. At commit every stored vector is
        replaced, the snapshot rebuilt from them, and the model recorded; the lexical index is unchanged."""
        if vectors:
            self._check_dim(np.stack(list(vectors.values())))
        self._switch = dict(vectors)

    def in_commit(self, step: Callable[[sqlite3.Connection], None]) -> None:
        """Run step(connection) inside the commit's transaction, after the rows are written (a table another
        module keeps, such as the question memory's vectors, changed together with the KB's)."""
        self._in_commit.append(step)

    def cached_vectors(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors for retrieval texts already embedded in this KB, keyed by text_hash."""
        hashes = list({text_hash(t) for t in texts})
        out: dict[str, np.ndarray] = {}
        with self.kb._connect() as con:
            for h, blob in select_in(con, f"SELECT text_hash, vector FROM embeddings WHERE text_hash IN {IN_LIST}",
                                     hashes):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def cache_vectors(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Save vectors at once, outside the staged commit, so a crashed run's work is reused."""
        self._check_dim(vectors)
        rows = [(text_hash(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        with self.kb._connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            con.executemany("INSERT OR IGNORE INTO embeddings (text_hash, vector) VALUES (?, ?)", rows)
            con.execute("COMMIT")
        fault_point("embedding")

    def _check_dim(self, vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ManifestError(f"vectors have shape {vectors.shape}; this KB stores dimension {self.dim}")

    def put_document(self, doc: NewDocument, vectors: np.ndarray) -> None:
        """Stage doc (replacing any stored document with the same source) with one vector per chunk."""
        if len(doc.chunks) != len(vectors):
            raise KBError(f"{doc.source}: {len(doc.chunks)} chunks but {len(vectors)} vectors")
        if len(doc.chunks):
            self._check_dim(vectors)
        self._removals.discard(doc.source)
        self._puts[doc.source] = (doc, np.asarray(vectors, dtype=np.float32))

    def remove_document(self, source: str) -> None:
        """Stage the removal of a document and all its chunks."""
        self._puts.pop(source, None)
        self._removals.add(source)

    def relocate(self, source: str, path: str, root: str) -> None:
        """Stage a new file path and folder for an unchanged document (its folder moved): no new version."""
        self._relocations[source] = (path, root)

    def rebuild(self) -> None:
        """Stage a full rebuild of the snapshot files from SQLite (no re-embedding): what `kb check --repair` does."""
        self._rebuild = True

    def rename_document(self, old: str, new: str) -> None:
        """Stage a change of a stored document's key (applied first at commit, history and feedback too).

        Used to move a KB whose keys were absolute paths to keys relative to the synced folder.
        """
        self._renames[old] = new

    @property
    def pending(self) -> int:
        return len(self._puts) + len(self._removals) + len(self._renames)

    def commit(self) -> None:
        """Apply staged changes: SQLite rows and a new snapshot, visible together or not at all."""
        if not self._puts and not self._removals and not self._renames and not self._rebuild and self._switch is None:
            if self._relocations:
                with self.kb._connect(write=True) as con:
                    con.execute("BEGIN IMMEDIATE")
                    self._apply_relocations(con)
                    con.execute("COMMIT")
                self._relocations.clear()
            return
        kb = self.kb
        if kb.manifest is None:
            manifest = Manifest(model=self.model, dim=self.dim)
            try:
                write_manifest(kb.dir, manifest)
            except OSError as exc:
                raise write_failure(kb.dir, exc) from exc
            kb.manifest = manifest
        now = time.time()
        self._lexicon = lexical_index.LexiconDelta()
        with kb._connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                old_token = con.execute("SELECT value FROM meta WHERE key='token'").fetchone()
                removed_ids: list[int] = []
                added_ids: list[int] = []
                added_vecs: list[np.ndarray] = []
                for old, new in self._renames.items():
                    if con.execute("SELECT 1 FROM documents WHERE source = ?", (new,)).fetchone():
                        raise KBError(f"cannot rename document {old!r} to {new!r}: that key is taken")
                    con.execute("UPDATE documents SET source = ? WHERE source = ?", (new, old))
                    con.execute("UPDATE history SET source = ? WHERE source = ?", (new, old))
                    con.execute("UPDATE feedback SET doc_source = ? WHERE doc_source = ?", (new, old))
                self._apply_relocations(con)
                for source in sorted(self._removals):
                    removed_ids += self._delete(con, source, now, event="removed")
                for source, (doc, vectors) in self._puts.items():
                    row = con.execute("SELECT version FROM documents WHERE source = ?", (source,)).fetchone()
                    version = row[0] + 1 if row else 1
                    removed_ids += self._delete(con, source, now, event=None)
                    ids = self._insert(con, doc, vectors, version, now)
                    added_ids += ids
                    added_vecs.append(vectors)
                    con.execute(
                        "INSERT INTO history (source, version, event, content_hash, n_chunks, at) VALUES (?,?,?,?,?,?)",
                        (source, version, "updated" if row else "added", doc.content_hash, len(ids), now),
                    )
                if self._switch is not None:
                    self._replace_vectors(con)
                con.execute(
                    "DELETE FROM embeddings WHERE text_hash NOT IN (SELECT text_hash FROM chunks)"
                )
                for step in self._in_commit:
                    step(con)
                token = uuid.uuid4().hex[:16]
                snap = self._next_snapshot(con, old_token[0] if old_token else None, token,
                                           np.array(removed_ids, dtype=np.int64), added_ids, added_vecs)
                checksums = save_snapshot(kb.dir, snap)
                fault_point("snapshot-written")
                # The lexical index's largest write (16 MiB of n-gram frequencies) comes last: a full
                # disk then fails here, inside the transaction, and the old snapshot stays committed.
                if self._rebuild:
                    lexical_index.rebuild(con, kb._retrieval_texts(con))
                else:
                    self._lexicon.apply(con)
                con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('token', ?)", (token,))
                # The model that built these vectors, in the same transaction (see KnowledgeBase._committed_model).
                con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('model', ?)",
                            (json.dumps({"model": self.model, "dim": self.dim}),))
                con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshot_sha256', ?)",
                            (json.dumps({"token": token, "files": checksums}),))
                fault_point("before-sqlite-commit")
                con.execute("COMMIT")
                try:
                    # Fold the WAL (16 MiB of n-gram frequencies per commit) into kb.sqlite now: readers keep
                    # their connections open, so no "last connection closes" checkpoint would ever run, and
                    # a long WAL costs every new reader a large shared-memory index.
                    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass  # a reader mid-read; SQLite's automatic checkpoint finishes it at a later commit
            except BaseException:
                # SQLite may already have rolled back by itself (SQLITE_FULL, I/O error); a second
                # ROLLBACK would raise and hide the error that tells the user what went wrong.
                if con.in_transaction:
                    try:
                        con.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
        fault_point("after-sqlite-commit")
        if self._switch is not None:
            manifest = replace(kb.manifest, model=self.model, dim=self.dim) if kb.manifest else \
                Manifest(model=self.model, dim=self.dim)
            try:
                write_manifest(kb.dir, manifest)
            except OSError as exc:
                # Committed: kb.sqlite records the model and every reader follows it; the next writer rewrites the file.
                log.warning("%s: the re-embed is committed but manifest.json could not be rewritten (%s)", kb.dir, exc)
            kb.manifest = manifest
        remove_stale_snapshots(kb.dir, keep=token)
        if kb._background:
            kb._load(token)
        self._puts.clear()
        self._removals.clear()
        self._renames.clear()
        self._relocations.clear()
        self._rebuild = False
        self._switch = None
        self._in_commit.clear()

    def _replace_vectors(self, con: sqlite3.Connection) -> None:
        """Every current text's vector replaced by the staged switch's (the write lock kept the set fixed)."""
        current = {r[0] for r in con.execute("SELECT DISTINCT text_hash FROM chunks")}
        missing = current - set(self._switch)
        if missing:
            raise KBError(f"{len(missing)} passages changed while the KB was re-embedded; nothing was changed: "
                          "run `kb reembed` again")
        con.executemany("UPDATE embeddings SET vector = ? WHERE text_hash = ?",
                        [(np.asarray(v, dtype=np.float32).tobytes(), h) for h, v in self._switch.items() if h in current])
        con.executemany("INSERT OR IGNORE INTO embeddings (text_hash, vector) VALUES (?, ?)",
                        [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in self._switch.items() if h in current])

    def _apply_relocations(self, con: sqlite3.Connection) -> None:
        for source, (path, root) in self._relocations.items():
            con.execute("UPDATE documents SET path = ?, root = ? WHERE source = ?", (path, root, source))

    def _delete(self, con: sqlite3.Connection, source: str, now: float, event: str | None) -> list[int]:
        row = con.execute("SELECT id, version, content_hash FROM documents WHERE source = ?", (source,)).fetchone()
        if row is None:
            return []
        doc_id = row[0]
        ids = [r[0] for r in con.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        self._lexicon.remove(con, list(self.kb._retrieval_texts(con, ids)))
        con.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        if event:
            con.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
            con.execute(
                "INSERT INTO history (source, version, event, content_hash, n_chunks, at) VALUES (?,?,?,?,?,?)",
                (source, row[1], event, row[2], 0, now),
            )
        return ids

    def _insert(self, con: sqlite3.Connection, doc: NewDocument, vectors: np.ndarray, version: int, now: float) -> list[int]:
        con.execute(
            "INSERT INTO documents (source, name, title, kind, content_hash, version, ingested_at, n_chunks, size_bytes, "
            "text, path, root, visibility, tags, encoding, url, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(source) DO UPDATE SET name=excluded.name, title=excluded.title, kind=excluded.kind, "
            "content_hash=excluded.content_hash, version=excluded.version, ingested_at=excluded.ingested_at, "
            "n_chunks=excluded.n_chunks, size_bytes=excluded.size_bytes, text=excluded.text, path=excluded.path, "
            "root=excluded.root, visibility=excluded.visibility, tags=excluded.tags, encoding=excluded.encoding, "
            "url=excluded.url, updated_at=excluded.updated_at",
            (doc.source, doc.name, doc.title, doc.kind, doc.content_hash, version, now, len(doc.chunks), doc.size_bytes,
             doc.text, doc.path, doc.root, doc.visibility, json.dumps(list(doc.tags)), doc.encoding, doc.url,
             doc.updated_at),
        )
        doc_id = con.execute("SELECT id FROM documents WHERE source = ?", (doc.source,)).fetchone()[0]
        ids = []
        indexed = []
        for ordinal, (chunk, vector) in enumerate(zip(doc.chunks, vectors)):
            body = retrieval_text(doc.title, chunk.section, chunk.text)
            h = text_hash(body)
            con.execute("INSERT OR IGNORE INTO embeddings (text_hash, vector) VALUES (?, ?)", (h, vector.tobytes()))
            cur = con.execute(
                "INSERT INTO chunks (doc_id, doc_version, ordinal, text, char_start, char_end, n_tokens, page, section, "
                "text_hash, ocr_confidence) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (doc_id, version, ordinal, chunk.text, chunk.char_start, chunk.char_end, chunk.n_tokens,
                 chunk.page, chunk.section, h, chunk.ocr_confidence),
            )
            ids.append(int(cur.lastrowid))
            indexed.append((ids[-1], body))
        self._lexicon.add(con, indexed)
        return ids

    def _next_snapshot(self, con: sqlite3.Connection, old_token: str | None, token: str,
                       removed: np.ndarray, added_ids: list[int], added_vecs: list[np.ndarray]) -> Snapshot:
        kb = self.kb
        old = None
        if old_token and not self._rebuild and self._switch is None:
            try:
                # Verified against its recorded checksums: a damaged file is never copied forward.
                old = load_snapshot(kb.dir, old_token, checksums=kb.recorded_checksums(old_token, con))
            except SnapshotDamaged as exc:
                log.warning("%s: snapshot file %s; the new snapshot is built from kb.sqlite", kb.dir, exc)
        new_ids = np.array(added_ids, dtype=np.int64)
        new_vecs = np.concatenate(added_vecs) if added_vecs else np.zeros((0, self.dim), np.float32)
        if old is None:
            # First commit, or the old files were lost: SQLite (inside this transaction) has it all.
            ids, vectors = kb._vectors_from_db(con, self.dim)
            return Snapshot(token, ids, vectors, build_index(ids, vectors, kb.index_config))
        keep = ~np.isin(old.ids, removed)
        # AUTOINCREMENT ids only grow, so appending keeps ids sorted.
        ids = np.concatenate([old.ids[keep], new_ids])
        vectors = np.concatenate([np.asarray(old.vectors)[keep], new_vecs]) if len(ids) else new_vecs
        index = old.index
        kind = kb.index_config.kind_for(len(ids))
        # An IVF index is retrained once it has grown well past what its centroids saw.
        incremental = kind == kb.index_config.kind_for(old.size) and (kind != "ivf" or len(ids) < 4 * max(old.size, 1))
        if incremental:
            if removed.size:
                index.remove_ids(removed)
            if new_ids.size:
                index.add_with_ids(np.ascontiguousarray(new_vecs), new_ids)
        else:
            index = build_index(ids, vectors, kb.index_config)
        return Snapshot(token, ids, vectors, index)


def _filter_sql(where: DocumentFilter | None) -> tuple[str, list]:
    """A SQL condition on documents d (and its parameters) for where; "1" allows everything."""
    if where is None or where.empty:
        return "1", []
    parts, params = [], []
    if where.visibility is not None:
        parts.append(f"d.visibility IN ({','.join('?' * len(where.visibility))})" if where.visibility else "0")
        params += list(where.visibility)
    if where.key_prefix:
        parts.append("substr(d.source, 1, ?) = ?")
        params += [len(where.key_prefix), where.key_prefix]
    if where.kinds is not None:
        parts.append(f"d.kind IN ({','.join('?' * len(where.kinds))})" if where.kinds else "0")
        params += list(where.kinds)
    if where.tags is not None:
        parts.append("EXISTS (SELECT 1 FROM json_each(d.tags) t WHERE t.value IN "
                     f"({','.join('?' * len(where.tags))}))" if where.tags else "0")
        params += list(where.tags)
    if where.ingested_after is not None:
        parts.append("d.ingested_at > ?")
        params.append(float(where.ingested_after))
    return " AND ".join(parts), params


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc) or "not a database" in str(exc)
