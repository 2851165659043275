"""`kb check`: cross-check kb.sqlite, the snapshot files and the FAISS index, naming damage file by file.

Repair lives with the writer (KnowledgeBase.repair rewrites everything derived from kb.sqlite); this module
only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kb import lexical_index, reads
from kb.manifest import MANIFEST_NAME
from kb.vector_index import Snapshot, SnapshotDamaged, index_ids, load_snapshot, snapshot_paths

if TYPE_CHECKING:
    from kb.store import KnowledgeBase


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


def check(kb: KnowledgeBase, deep: bool = False, sample: int = 512) -> CheckReport:
    """The check report of kb; vectors compared with kb.sqlite: every one with deep, else `sample` (seeded)."""
    report, token = _check_once(kb, deep, sample)
    for _ in range(4):
        # A sync that commits while we look deletes the snapshot files of the token we read:
        # that is the KB moving on, not damage. Look again at the new token.
        if report.ok or token == kb.token():
            break
        report, token = _check_once(kb, deep, sample)
    return report


def _check_once(kb: KnowledgeBase, deep: bool, sample: int) -> tuple[CheckReport, str | None]:
    problems: list[str] = []
    notes: list[str] = []
    damaged: list[str] = []
    with kb.db.read() as con:
        con.execute("BEGIN")
        token = reads.meta(con, "token")
        db_ids = np.array([r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
        n_docs = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        missing_vec = con.execute(
            "SELECT COUNT(*) FROM chunks c LEFT JOIN embeddings e ON e.text_hash = c.text_hash WHERE e.text_hash IS NULL"
        ).fetchone()[0]
        bad_counts = con.execute(
            "SELECT d.source FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id "
            "GROUP BY d.id HAVING COUNT(c.id) != d.n_chunks"
        ).fetchall()
        orphans = con.execute(
            "SELECT COUNT(*) FROM chunks c LEFT JOIN documents d ON d.id = c.doc_id WHERE d.id IS NULL"
        ).fetchone()[0]
        checksums = reads.recorded_checksums(con, token) if token else None
        problems += lexical_index.problems(con, db_ids)
        con.execute("COMMIT")
    if missing_vec:
        problems.append(f"{missing_vec} chunks have no stored vector (only re-ingesting their documents restores them)")
    for (source,) in bad_counts:
        problems.append(f"{source}: chunk count differs from the document row")
    if orphans:
        problems.append(f"{orphans} chunks belong to no document")
    if not (kb.dir / MANIFEST_NAME).exists() and n_docs:
        rewrite = (
            f" (kb.sqlite records model {kb.manifest.model}; the next sync or `kb check --repair` rewrites it)"
            if kb.manifest
            else ""
        )
        problems.append("manifest.json is missing" + rewrite)
    n_vectors = compared = 0
    if token is None:
        if len(db_ids):
            problems.append("chunks are stored but no snapshot token is committed")
    else:
        if checksums is None:
            notes.append(
                "no checksums are recorded for this snapshot (written before they were); kb check --repair records them"
            )
        try:
            snap = load_snapshot(kb.dir, token, checksums=checksums)
        except SnapshotDamaged as exc:
            snap = None
            damaged = list(exc.files)
            problems.append(
                f"snapshot files damaged: {', '.join(exc.files)} ({exc.reason}); searches use "
                "vectors rebuilt from kb.sqlite; kb check --repair rewrites the files"
            )
        if snap is None and not damaged:
            others = sorted({p.name.split(".", 1)[0].partition("-")[2] for p in kb.dir.glob("vectors-*.npy")})
            lost = (
                f"; files of another snapshot ({', '.join(others)}) are present: a commit may have been lost "
                "(was kb.sqlite-wal deleted?)"
                if others
                else ""
            )
            damaged = [p.name for p in snapshot_paths(kb.dir, token)]
            problems.append(
                f"snapshot files for token {token} are missing{lost}; kb check --repair rebuilds them from kb.sqlite"
            )
        if snap is not None:
            n_vectors = snap.index.ntotal
            compared, snapshot_problems = _check_snapshot(kb, snap, db_ids, deep, sample)
            problems += snapshot_problems
    report = CheckReport(
        n_documents=n_docs,
        n_chunks=len(db_ids),
        n_vectors=n_vectors,
        problems=tuple(problems),
        damaged=tuple(damaged),
        vectors_compared=compared,
        notes=tuple(notes),
    )
    return report, token


def _check_snapshot(kb: KnowledgeBase, snap: Snapshot, db_ids: np.ndarray, deep: bool, sample: int) -> tuple[int, list[str]]:
    """(vectors compared, problems) of a loaded snapshot against the chunk rows db_ids."""
    problems = []
    faiss_ids = index_ids(snap.index)
    if not np.array_equal(faiss_ids, db_ids):
        extra = np.setdiff1d(faiss_ids, db_ids).size
        lost_ids = np.setdiff1d(db_ids, faiss_ids).size
        problems.append(f"FAISS ids differ from chunk rows: {extra} without a chunk, {lost_ids} chunks not indexed")
    if not np.array_equal(snap.ids, db_ids):
        problems.append("snapshot id list differs from chunk rows")
    if kb.manifest and snap.vectors.shape[1:] != (kb.manifest.dim,) and snap.size:
        problems.append(f"vector dimension {snap.vectors.shape[1]} != manifest dim {kb.manifest.dim}")
        return 0, problems
    if not snap.size:
        return 0, problems
    compared, vector_problems = _compare_vectors(kb, snap, deep, sample)
    return compared, problems + vector_problems


def _compare_vectors(kb: KnowledgeBase, snap: Snapshot, deep: bool, sample: int) -> tuple[int, list[str]]:
    """(vectors compared, problems): snapshot rows against kb.sqlite's vectors, finite and unit-length."""
    rows = (
        np.arange(snap.size)
        if deep or snap.size <= sample
        else np.sort(np.random.default_rng(0).choice(snap.size, sample, replace=False))
    )
    ids = snap.ids[rows]
    with kb.db.read() as con:
        stored = reads.vectors_of(con, ids)
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
