"""The knowledge base on disk: SQLite for documents and chunks, FAISS for vectors.

Layout of a KB directory:
    manifest.json          format version, model, dimension
    kb.sqlite              documents, chunks, history, embeddings, feedback (WAL mode; tables in kb/schema.py)
    ids-T.npy, vectors-T.npy, index-T.faiss   the vector snapshot named by token T
    write.lock             held by the one process writing

The rooms: kb/database.py opens every connection; kb/schema.py declares the tables and upgrades old KBs;
kb/reads.py holds the queries; kb/writer.py stages and commits changes; kb/integrity.py checks. This module
is the front door: a KnowledgeBase follows the committed snapshot token (SQLite is the source of truth and
stores every vector) and reloads when it changes, so readers never restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from kb import lexical_index, reads, schema
from kb.database import DB_NAME, Database
from kb.errors import EmptyKBError, KBError, KBWriteError, ManifestError, write_failure
from kb.integrity import CheckReport, check
from kb.lexicon import GramCounts, gram_counts
from kb.manifest import Manifest, read_manifest, write_manifest
from kb.records import OCR_LOW_CONFIDENCE, ChunkRecord, DocumentFilter, DocumentInfo, Feedback, HistoryEntry
from kb.vector_index import IndexConfig, Snapshot, SnapshotDamaged, build_index, load_snapshot, remove_stale_snapshots
from kb.writer import Writer, hold_write_lock

log = logging.getLogger("hopfield_kb.kb")


class KnowledgeBase:
    """A KB directory. Reads are safe from any thread or process; writes go through writer().

    >>> kb = KnowledgeBase("kb_data", create=True)          # doctest: +SKIP
    >>> with kb.writer(model="all-MiniLM-L6-v2", dim=384) as w:   # doctest: +SKIP
    ...     w.put_document(doc, vectors)
    """

    def __init__(
        self,
        kb_dir: str | Path = "kb_data",
        create: bool = False,
        index: IndexConfig | None = None,
        background_refresh: bool = False,
    ):
        """background_refresh: for long-running servers. When another process commits, snapshot() keeps
        returning the loaded snapshot while a thread loads and verifies the new one (reading and
        checksumming its files takes ~0.1 s per 100k chunks), then switches; no question waits for a
        load, and one may be answered from the previous version meanwhile. A commit through this KB's
        own writer loads the new snapshot in the writing thread before commit() returns."""
        self.dir = Path(kb_dir)
        self.db = Database(self.dir / DB_NAME)
        self.background_refresh = background_refresh
        self._loading: str | None = None
        self._loading_lock = threading.Lock()
        self.index_config = index or IndexConfig()
        if not self.dir.exists():
            if not create:
                raise KBError(f"no knowledge base at {self.dir}: run `kb ingest PATH --kb-dir {self.dir}` first")
            self.dir.mkdir(parents=True, mode=0o700)  # documents may be internal: only the owner enters
        if not self.db.exists() and not create:
            raise KBError(f"{self.dir} is not a knowledge base (no {DB_NAME}); run `kb ingest PATH --kb-dir {self.dir}`")
        self.manifest: Manifest | None = read_manifest(self.dir)
        self._snapshot: Snapshot | None = None
        self._snapshot_lock = threading.Lock()
        if not self.db.exists() or self._needs_upgrade():
            # Reads never write, except this once: a new KB gets its tables, an older one its new columns.
            self._upgrade_schema()
        self.manifest = self._committed_model(self.manifest)

    def _needs_upgrade(self) -> bool:
        with self.db.read() as con:
            return schema.needs_upgrade(con)

    def _upgrade_schema(self) -> None:
        try:
            with self.db.write() as con:
                schema.upgrade(con, reads.retrieval_texts(con))
        except KBWriteError as exc:
            raise KBError(
                f"the knowledge base at {self.dir} was written by an older version and needs a one-time "
                f"upgrade, which needs write access: {exc}"
            ) from exc

    def _committed_model(self, manifest: Manifest | None, token: str | None = None) -> Manifest | None:
        """manifest, or the model kb.sqlite records when that differs. SQLite is the source of truth: a
        `kb reembed` records its model in the transaction that swaps the vectors, then rewrites manifest.json;
        killed between the two, the vectors are the new model's and so must the KB's model be.
        token: use the record only if this snapshot token is still the committed one (else keep manifest)."""
        with self.db.read() as con:  # one statement: the model and the token of one commit
            value, committed = con.execute(
                "SELECT (SELECT value FROM meta WHERE key = 'model'), (SELECT value FROM meta WHERE key = 'token')"
            ).fetchone()
        if value is None or (token is not None and committed != token):
            return manifest
        try:
            record = json.loads(value)
            model, dim = str(record["model"]), int(record["dim"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{self.db.path}: unreadable model record ({exc}); the KB is damaged") from exc
        if manifest is not None and (manifest.model, manifest.dim) == (model, dim):
            return manifest
        return Manifest(model=model, dim=dim) if manifest is None else replace(manifest, model=model, dim=dim)

    # ---- the committed snapshot ------------------------------------------------------
    def token(self) -> str | None:
        """Token of the committed snapshot; changes on every commit."""
        with self.db.read() as con:
            return reads.meta(con, "token")

    def snapshot(self) -> Snapshot:
        """The current vector snapshot, reloaded only when a commit has changed it.

        A snapshot file that is damaged (changed since its commit, truncated, missing) is never used:
        the snapshot is rebuilt in memory from SQLite, nothing is written, and `kb check` names the file.
        """
        token = self._committed_token()
        current = self._snapshot
        if current is not None and current.token == token:
            return current
        if current is None or not self.background_refresh:
            return self._load(token)
        self._load_in_background(token)
        return current

    def refresh(self) -> Snapshot:
        """Load the committed snapshot now, waiting for it (after this process committed through another
        KnowledgeBase object of the same directory, e.g. ingest())."""
        return self._load(self._committed_token())

    def _committed_token(self) -> str:
        token = self.token()
        if token is None:
            raise EmptyKBError(f"the knowledge base at {self.dir} is empty: ingest documents first")
        return token

    def _load(self, token: str) -> Snapshot:
        with self._snapshot_lock:  # one load at a time; readers of the loaded snapshot never wait here
            if self._snapshot is None or self._snapshot.token != token:
                try:
                    snap = load_snapshot(self.dir, token, self.index_config.nprobe, self.recorded_checksums(token))
                except SnapshotDamaged as exc:
                    log.warning(
                        "%s: snapshot file %s; answering from vectors rebuilt from kb.sqlite "
                        "(kb check --repair rewrites the files)",
                        self.dir,
                        exc,
                    )
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
                log.warning(
                    "%s: loading snapshot %s failed (%s); still answering from %s",
                    self.dir,
                    token,
                    exc,
                    self._snapshot.token if self._snapshot else "nothing",
                )
            finally:
                with self._loading_lock:
                    self._loading = None

        threading.Thread(target=run, name=f"kb-snapshot-{token}", daemon=True).start()

    def recorded_checksums(self, token: str) -> dict[str, str] | None:
        """{file name: SHA-256} recorded when token's snapshot was committed (None before checksums existed)."""
        with self.db.read() as con:
            return reads.recorded_checksums(con, token)

    def _rebuild_snapshot(self, token: str) -> Snapshot:
        # The files of the committed token are gone (deleted by a later commit while we
        # looked, or by hand): rebuild from SQLite, which holds every vector.
        with self.db.read() as con:
            con.execute("BEGIN")
            ids, vectors = reads.vectors(con, self.manifest.dim if self.manifest else 0)
            committed = reads.meta(con, "token")
            con.execute("COMMIT")
        return Snapshot(
            token=committed or token, ids=ids, vectors=vectors, index=build_index(ids, vectors, self.index_config)
        )

    # ---- chunks and their lexical index (kb.lexicon) ----------------------------------------
    def chunks(self, chunk_ids: Sequence[int]) -> list[ChunkRecord | None]:
        """Chunk records in the order of chunk_ids; None where an id no longer exists."""
        if not len(chunk_ids):
            return []
        with self.db.read() as con:
            found = reads.chunk_records(con, chunk_ids)
        return [found.get(int(i)) for i in chunk_ids]

    def chunk_texts(self) -> tuple[np.ndarray, list[str]]:
        """(ids, retrieval texts) of every chunk, ordered by id: what lexical indexes are built from."""
        with self.db.read() as con:
            rows = list(reads.retrieval_texts(con))  # one statement: one consistent read
        return np.array([cid for cid, _ in rows], dtype=np.int64), [text for _, text in rows]

    def retrieval_texts(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        """{chunk id: retrieval text (title | section + text, what was embedded and indexed)} for chunk_ids."""
        with self.db.read() as con:
            return dict(reads.retrieval_texts(con, chunk_ids))

    def term_postings(self, terms: Sequence[str]) -> lexical_index.TermPostings:
        """What BM25 needs for terms, read at one commit: their postings, document frequencies, the total
        length, and the commit's snapshot token (kb.lexical_index.TermPostings)."""
        with self.db.read() as con:
            return lexical_index.term_postings(con, terms)

    def chunk_grams(self, chunk_ids: Sequence[int], compiled: bool = False) -> tuple[np.ndarray, GramCounts]:
        """(ids: those of chunk_ids that exist, in the order read; their character n-gram counts, row i for ids[i]),
        counted from their retrieval texts (kb.lexicon.gram_counts; compiled: hashed by kb.lexical_kernels)."""
        texts = self.retrieval_texts(chunk_ids)
        return np.fromiter(texts, dtype=np.int64, count=len(texts)), gram_counts(list(texts.values()), compiled=compiled)

    def char_df(self) -> np.ndarray:
        """Chunks holding each character n-gram bucket, (GRAM_BUCKETS,) int64."""
        with self.db.read() as con:
            return lexical_index.char_df(con)

    def bm25_length(self) -> int:
        """BM25 tokens (words less stopwords) in all chunks together."""
        with self.db.read() as con:
            return lexical_index.bm25_length(con)

    def term_df(self, terms: Sequence[str]) -> dict[str, int]:
        """{word: chunks holding it} for the given lower-case words the KB holds."""
        with self.db.read() as con:
            return lexical_index.term_df(con, terms)

    def vocabulary(self) -> list[tuple[str, int]]:
        """(word, occurrences) of every Latin word of 3+ letters in the KB's chunks, alphabetically."""
        with self.db.read() as con:
            return lexical_index.words(con)

    def n_chunks(self) -> int:
        with self.db.read() as con:
            return con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    # ---- documents ---------------------------------------------------------------------------
    def documents(self, where: DocumentFilter | None = None) -> list[DocumentInfo]:
        """Stored documents (those where allows), ordered by name."""
        with self.db.read() as con:
            return reads.documents(con, where)

    def chunk_ids(self, where: DocumentFilter) -> np.ndarray:
        """Sorted ids of the chunks of the documents where allows: what a filtered search may return."""
        with self.db.read() as con:
            return reads.chunk_ids(con, where)

    def document(self, source_or_name: str) -> DocumentInfo | None:
        """A document by its source path, or by file name when that is unambiguous."""
        with self.db.read() as con:
            found = reads.documents_named(con, source_or_name)
        if len(found) > 1:
            raise KBError(f"{source_or_name!r} names {len(found)} documents; give the full source path")
        return found[0] if found else None

    def document_text(self, doc_id: int) -> str:
        with self.db.read() as con:
            row = con.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return row[0] if row else ""

    def history(self, source_or_name: str) -> list[HistoryEntry]:
        """Every version event of a document, oldest first (kept after removal too)."""
        with self.db.read() as con:
            return reads.history(con, source_or_name)

    def hashes(self) -> dict[str, str]:
        """source -> content hash of every stored document: what sync compares against."""
        with self.db.read() as con:
            return dict(con.execute("SELECT source, content_hash FROM documents").fetchall())

    def stats(self) -> dict[str, object]:
        """Counts and identity, as plain values for printing or JSON; ocr_pages: pages read by OCR;
        low_confidence_pages: those under OCR_LOW_CONFIDENCE, with their document and confidence (0-1)."""
        with self.db.read() as con:
            counts = reads.counts(con)
        ocr = counts.pop("ocr_pages")
        size = sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())
        return {
            "kb_dir": str(self.dir),
            "model": self.manifest.model if self.manifest else None,
            "dim": self.manifest.dim if self.manifest else None,
            "format_version": self.manifest.format_version if self.manifest else None,
            "documents": counts["documents"],
            "documents_by_kind": counts["documents_by_kind"],
            "chunks": counts["chunks"],
            "tokens": counts["tokens"],
            "disk_bytes": size,
            "ocr_pages": len(ocr),
            "low_confidence_pages": [
                {"document": source, "page": page, "confidence": conf}
                for source, page, conf in ocr
                if conf < OCR_LOW_CONFIDENCE
            ],
        }

    # ---- integrity (kb/integrity.py) -----------------------------------------------------------
    def check(self, deep: bool = False, sample: int = 512) -> CheckReport:
        """Cross-check SQLite, the snapshot files (against their recorded checksums) and the FAISS index;
        compare snapshot vectors with kb.sqlite's (every one with deep, else `sample` of them, seeded)
        and check they are finite and unit-length. Damage is named, file by file."""
        return check(self, deep, sample)

    def repair(self, wait: float = 0.0) -> CheckReport:
        """Rewrite everything derived (snapshot vectors, ids, FAISS index, checksums, the lexical index) from kb.sqlite,
        without re-embedding, under the write lock; returns the deep check that proves the result."""
        if self.manifest is None:
            raise KBError(f"{self.dir} has no manifest.json, so its model is unknown: restore manifest.json")
        with self.writer(model=self.manifest.model, dim=self.manifest.dim, wait=wait) as w:
            w.rebuild()
        return self.check(deep=True)

    # ---- feedback ----------------------------------------------------------------------------
    def add_feedback(
        self, question: str, chunk_id: int | None, doc_source: str | None, helpful: bool, by: str | None = None
    ) -> int:
        """Store a verdict on a cited passage; by names who gave it (an API key's id, an app session)."""
        with self.db.write() as con:
            cur = con.execute(
                "INSERT INTO feedback (question, chunk_id, doc_source, helpful, at, by_user) VALUES (?, ?, ?, ?, ?, ?)",
                (question, chunk_id, doc_source, int(helpful), time.time(), by),
            )
            return int(cur.lastrowid or 0)

    def feedback(self) -> list[Feedback]:
        with self.db.read() as con:
            return reads.feedback(con)

    # ---- writing (kb/writer.py) ----------------------------------------------------------------
    @contextmanager
    def writer(self, model: str, dim: int, wait: float = 0.0) -> Iterator[Writer]:
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
    def model_switch(self, model: str, dim: int, wait: float = 0.0) -> Iterator[Writer]:
        """Exclusive write access for moving the KB to another embedding model (kb.reembed): stage every
        current text's new vector with Writer.switch_model; one commit swaps vectors, snapshot and model
        record together, and the old model's KB serves (and stays whole after a crash) until then."""
        with self._write_lock(wait):
            if self.manifest is None:
                raise KBError(
                    f"the knowledge base at {self.dir} holds nothing to re-embed; ingest documents "
                    "first (`kb sync PATH --model NAME` builds it with a chosen model)"
                )
            writer = Writer(self, model, dim)
            yield writer
            writer.commit()

    @contextmanager
    def _write_lock(self, wait: float) -> Iterator[None]:
        """The KB's write lock held, with the manifest re-read under it and stale snapshot files removed."""
        with hold_write_lock(self.dir, wait):
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
