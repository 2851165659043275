"""The KB's one writer: changes staged by Writer and applied by commit() in one SQLite transaction, with a new
vector snapshot, under the directory's write lock (hold_write_lock).

Consistency: a commit writes the new snapshot files under a fresh token, then records that token in the
same transaction that changes the rows. A crash before that commit leaves the old token, whose files are
untouched; a crash after leaves the new one whole. Readers follow the token (kb/store.py).
"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import faiss
import numpy as np

from kb import lexical_index, lexical_rebuild, reads
from kb.database import inserted_id, rollback
from kb.errors import KBError, KBLockedError, ManifestError, write_failure
from kb.faults import fault_point
from kb.manifest import Manifest, write_manifest
from kb.records import NewDocument, retrieval_text, text_hash
from kb.vector_index import Snapshot, SnapshotDamaged, build_index, load_snapshot, remove_stale_snapshots, save_snapshot

if TYPE_CHECKING:
    from kb.store import KnowledgeBase

log = logging.getLogger("hopfield_kb.kb")

LOCK_NAME = "write.lock"


@contextmanager
def hold_write_lock(kb_dir: Path, wait: float) -> Iterator[None]:
    """The KB directory's write lock (an flock on write.lock) held for the block; KBLockedError after wait seconds."""
    try:
        lock_fh = open(kb_dir / LOCK_NAME, "a+")
    except OSError as exc:
        raise KBError(f"cannot write to {kb_dir}: {exc.strerror}; check the directory's permissions") from exc
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise KBLockedError(
                        f"another ingest or sync is writing to {kb_dir}; wait for it to finish (or pass a longer --wait)"
                    ) from None
                time.sleep(0.2)
        fault_point("locked")
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
        with self.kb.db.read() as con:
            return reads.vectors_by_hash(con, list({text_hash(t) for t in texts}))

    def cache_vectors(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Save vectors at once, outside the staged commit, so a crashed run's work is reused."""
        self._check_dim(vectors)
        rows = [(text_hash(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        with self.kb.db.transaction() as con:
            con.executemany("INSERT OR IGNORE INTO embeddings (text_hash, vector) VALUES (?, ?)", rows)
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
            if self._relocations or self._in_commit:  # no new snapshot: the rows alone, in one transaction
                with self.kb.db.transaction() as con:
                    self._apply_relocations(con)
                    for step in self._in_commit:
                        step(con)
                self._relocations.clear()
                self._in_commit.clear()
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
        with kb.db.write() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                old_token = reads.meta(con, "token")
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
                    self._replace_vectors(con, self._switch)
                con.execute("DELETE FROM embeddings WHERE text_hash NOT IN (SELECT text_hash FROM chunks)")
                for step in self._in_commit:
                    step(con)
                token = uuid.uuid4().hex[:16]
                snap = self._next_snapshot(
                    con, old_token, token, np.array(removed_ids, dtype=np.int64), added_ids, added_vecs
                )
                checksums = save_snapshot(kb.dir, snap)
                fault_point("snapshot-written")
                # The lexical index's largest write (16 MiB of n-gram frequencies) comes last: a full
                # disk then fails here, inside the transaction, and the old snapshot stays committed.
                if self._rebuild:
                    lexical_rebuild.rebuild(con, reads.retrieval_texts(con))
                else:
                    self._lexicon.apply(con)
                con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('token', ?)", (token,))
                # The model that built these vectors, in the same transaction (see KnowledgeBase._committed_model).
                con.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('model', ?)",
                    (json.dumps({"model": self.model, "dim": self.dim}),),
                )
                con.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshot_sha256', ?)",
                    (json.dumps({"token": token, "files": checksums}),),
                )
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
                rollback(con)
                raise
        fault_point("after-sqlite-commit")
        if self._switch is not None:
            manifest = (
                replace(kb.manifest, model=self.model, dim=self.dim)
                if kb.manifest
                else Manifest(model=self.model, dim=self.dim)
            )
            try:
                write_manifest(kb.dir, manifest)
            except OSError as exc:
                # Committed: kb.sqlite records the model and every reader follows it; the next writer rewrites the file.
                log.warning("%s: the re-embed is committed but manifest.json could not be rewritten (%s)", kb.dir, exc)
            kb.manifest = manifest
        remove_stale_snapshots(kb.dir, keep=token)
        if kb.background_refresh:
            kb.refresh()  # this process's own commit: serve it before commit() returns
        self._puts.clear()
        self._removals.clear()
        self._renames.clear()
        self._relocations.clear()
        self._rebuild = False
        self._switch = None
        self._in_commit.clear()

    def _replace_vectors(self, con: sqlite3.Connection, switch: dict[str, np.ndarray]) -> None:
        """Every current text's vector replaced by the staged switch's (the write lock kept the set fixed)."""
        current = {r[0] for r in con.execute("SELECT DISTINCT text_hash FROM chunks")}
        missing = current - set(switch)
        if missing:
            raise KBError(
                f"{len(missing)} passages changed while the KB was re-embedded; nothing was changed: run `kb reembed` again"
            )
        con.executemany(
            "UPDATE embeddings SET vector = ? WHERE text_hash = ?",
            [(np.asarray(v, dtype=np.float32).tobytes(), h) for h, v in switch.items() if h in current],
        )
        con.executemany(
            "INSERT OR IGNORE INTO embeddings (text_hash, vector) VALUES (?, ?)",
            [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in switch.items() if h in current],
        )

    def _apply_relocations(self, con: sqlite3.Connection) -> None:
        for source, (path, root) in self._relocations.items():
            con.execute("UPDATE documents SET path = ?, root = ? WHERE source = ?", (path, root, source))

    def _delete(self, con: sqlite3.Connection, source: str, now: float, event: str | None) -> list[int]:
        row = con.execute("SELECT id, version, content_hash FROM documents WHERE source = ?", (source,)).fetchone()
        if row is None:
            return []
        doc_id = row[0]
        ids = [r[0] for r in con.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        self._lexicon.remove(con, list(reads.retrieval_texts(con, ids)))
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
            (
                doc.source,
                doc.name,
                doc.title,
                doc.kind,
                doc.content_hash,
                version,
                now,
                len(doc.chunks),
                doc.size_bytes,
                doc.text,
                doc.path,
                doc.root,
                doc.visibility,
                json.dumps(list(doc.tags)),
                doc.encoding,
                doc.url,
                doc.updated_at,
            ),
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
                (
                    doc_id,
                    version,
                    ordinal,
                    chunk.text,
                    chunk.char_start,
                    chunk.char_end,
                    chunk.n_tokens,
                    chunk.page,
                    chunk.section,
                    h,
                    chunk.ocr_confidence,
                ),
            )
            ids.append(inserted_id(cur))
            indexed.append((ids[-1], body))
        self._lexicon.add(con, indexed)
        return ids

    def _next_snapshot(
        self,
        con: sqlite3.Connection,
        old_token: str | None,
        token: str,
        removed: np.ndarray,
        added_ids: list[int],
        added_vecs: list[np.ndarray],
    ) -> Snapshot:
        kb = self.kb
        old = None
        if old_token and not self._rebuild and self._switch is None:
            try:
                # Verified against its recorded checksums: a damaged file is never copied forward.
                old = load_snapshot(kb.dir, old_token, checksums=reads.recorded_checksums(con, old_token))
            except SnapshotDamaged as exc:
                log.warning("%s: snapshot file %s; the new snapshot is built from kb.sqlite", kb.dir, exc)
        new_ids = np.array(added_ids, dtype=np.int64)
        new_vecs = np.concatenate(added_vecs) if added_vecs else np.zeros((0, self.dim), np.float32)
        if old is None:
            # First commit, or the old files were lost: SQLite (inside this transaction) has it all.
            ids, vectors = reads.vectors(con, self.dim)
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
                index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(removed, dtype=np.int64)))
            if new_ids.size:
                index.add_with_ids(np.ascontiguousarray(new_vecs), new_ids)
        else:
            index = build_index(ids, vectors, kb.index_config)
        return Snapshot(token, ids, vectors, index)
