"""The FAISS index and the vectors it was built from, saved as one snapshot.

A snapshot is three files sharing a token: ids-T.npy (int64 chunk ids, sorted),
vectors-T.npy (float32 rows in the same order) and index-T.faiss. Files are
written under temporary names and renamed, so a snapshot on disk is whole or
absent. The vectors are kept beside the index because the Hopfield reader needs
the candidates' patterns, whatever the index type.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from kb.errors import KBError, storage_reason, write_failure
from kb.faults import fault_point

INDEX_KINDS = ("auto", "flat", "ivf", "hnsw")
STORAGES = ("fp32", "fp16", "sq8")


@dataclass(frozen=True)
class IndexConfig:
    """Which FAISS index to build. "auto": exact (flat) up to flat_max vectors, IVF above.

    Measured by bench/bench_index.py on KBs built from REAL SciFact chunk vectors (copies with
    Gaussian noise, cosine ~0.9 to their original), 600 real SciFact queries, recall@10 against
    exact search, one thread per query, 2-core AMD EPYC (see README, "Performance"):

        100k vectors, flat exact:            ~6-9 ms per query
        100k, IVF nlist 1264, nprobe 96:     recall@10 0.989, 0.5 ms
        100k, IVF nlist 1264, nprobe 128:    recall@10 0.992, 0.7 ms     <- defaults
        1M,   flat exact:                    ~78 ms per query
        1M,   IVF nlist 4096, nprobe 64:     recall@10 0.995, 1.2 ms
        1M,   IVF nlist 4096, nprobe 128:    recall@10 0.999, 2.3 ms     <- defaults

    flat_max 50_000: below it exact search costs under ~4 ms per query, so exactness is cheap;
    above it IVF is 10-30x faster at recall >= 0.99.
    nlist: inverted lists, lists_per_sqrt * sqrt(n) (4 * sqrt(n): 1264 at 100k, 4000 at 1M);
    the coarse quantizer is trained on train_per_list points per list (k-means time grows with
    both; 40 per list is FAISS's lower bound without a warning).
    nprobe: lists searched per query; 128 keeps recall@10 >= 0.99 from 50k to 1M vectors.
    storage: how the index holds vectors. "fp32" exact codes (1,536 bytes per 384-d vector);
    "fp16" half (768 B, recall cost ~0); "sq8" 8-bit scalar quantisation per dimension
    (384 B, a small recall cost, measured by the bench) for large KBs short of memory.
    The snapshot's vectors file stays float32 either way: the Hopfield reader needs exact patterns.
    storage and kind apply when an index is built (first commit, a change of kind, IVF retraining);
    a KB keeps its index type across incremental commits.
    hnsw_*: used only when kind="hnsw" is forced. HNSW cannot delete vectors in FAISS, so a KB
    forced to HNSW must be rebuilt, not synced, when documents change or go.
    """

    kind: str = "auto"
    flat_max: int = 50_000
    lists_per_sqrt: float = 4.0
    train_per_list: int = 40
    nprobe: int = 128
    storage: str = "fp32"
    hnsw_m: int = 32
    hnsw_ef_search: int = 128

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise KBError(f"index kind must be one of {INDEX_KINDS}, not {self.kind!r}")
        if self.storage not in STORAGES:
            raise KBError(f"index storage must be one of {STORAGES}, not {self.storage!r}")
        if self.nprobe < 1 or self.lists_per_sqrt <= 0 or self.train_per_list < 1:
            raise KBError("nprobe, lists_per_sqrt and train_per_list must be positive")

    def kind_for(self, n: int) -> str:
        if self.kind != "auto":
            return self.kind
        return "flat" if n <= self.flat_max else "ivf"

    def nlist_for(self, n: int) -> int:
        """Inverted lists for n vectors: lists_per_sqrt * sqrt(n), at least 16 and at most n / 39."""
        return max(16, min(int(self.lists_per_sqrt * math.sqrt(n)), n // 39))


_SQ_TYPES = {"fp16": "QT_fp16", "sq8": "QT_8bit"}


def _training_sample(vectors: np.ndarray, size: int) -> np.ndarray:
    n = vectors.shape[0]
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(n, size=min(n, size), replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def build_index(ids: np.ndarray, vectors: np.ndarray, config: IndexConfig) -> faiss.Index:
    """A FAISS inner-product index over vectors (float32, rows L2-normalised), searchable by chunk id."""
    n, dim = vectors.shape if vectors.ndim == 2 else (0, 0)
    kind = config.kind_for(n)
    ip = faiss.METRIC_INNER_PRODUCT
    sq = getattr(faiss.ScalarQuantizer, _SQ_TYPES[config.storage]) if config.storage in _SQ_TYPES else None
    if kind == "ivf" and n >= 1000:
        nlist = config.nlist_for(n)
        quantizer = faiss.IndexFlatIP(dim)
        ivf: faiss.IndexIVF
        if sq is None:
            ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, ip)
        else:
            ivf = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, sq, ip)
        ivf.train(_training_sample(vectors, config.train_per_list * nlist))
        ivf.nprobe = config.nprobe
        ivf.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        return ivf
    inner: faiss.Index
    if kind == "hnsw":
        hnsw: faiss.IndexHNSW
        if sq is None:
            hnsw = faiss.IndexHNSWFlat(dim, config.hnsw_m, ip)
        else:
            hnsw = faiss.IndexHNSWSQ(dim, sq, config.hnsw_m, ip)
        hnsw.hnsw.efSearch = config.hnsw_ef_search
        inner = hnsw
    elif sq is not None:
        inner = faiss.IndexScalarQuantizer(dim, sq, ip)
    else:
        inner = faiss.IndexFlatIP(dim)
    if n == 0:
        # SQ8 must see vectors to learn its ranges; an empty index stays plain so later adds work.
        inner = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(inner)
    if n:
        if not index.is_trained:
            inner.train(_training_sample(vectors, 100_000))
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    return index


def index_ids(index: faiss.Index) -> np.ndarray:
    """Sorted chunk ids stored in a FAISS index built by build_index."""
    if isinstance(index, faiss.IndexIDMap2) or isinstance(index, faiss.IndexIDMap):
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    ivf = faiss.extract_index_ivf(index)
    invlists = ivf.invlists
    assert invlists is not None, "an IVF index owns its inverted lists"
    parts = []
    for lst in range(ivf.nlist):
        size = invlists.list_size(lst)
        if size:
            parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Snapshot:
    """One committed state of the vector store. ids are sorted ascending."""

    token: str
    ids: np.ndarray
    vectors: np.ndarray
    index: faiss.Index

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, chunk ids), each (len(queries), k), best first; missing slots are -1.

        allowed: sorted chunk ids the search may return (None: all), applied inside FAISS, so k
        allowed hits come back whenever k exist.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        ivf = _ivf(self.index)
        if ivf is not None:
            # One question's inverted lists are scanned by every FAISS thread (parallel_mode 1), a batch's questions
            # are split among them (0). 1M chunks, nprobe 128, 2 cores: one question 6.4 -> 3.9 ms (p95 21 -> 12 ms
            # with both cores busy elsewhere); a batch of 300 is 17% faster split by question. The same hits either
            # way, so threads racing on the setting only change which split a search gets.
            ivf.parallel_mode = 1 if len(queries) == 1 else 0
        if allowed is None:
            return self.index.search(queries, k)
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        params: faiss.SearchParameters
        if ivf is None:  # flat or HNSW behind the id map
            params = faiss.SearchParameters()
        else:
            ivf_params = faiss.SearchParametersIVF()
            ivf_params.nprobe = ivf.nprobe
            params = ivf_params
        params.sel = selector
        return self.index.search(queries, k, params=params)

    def positions(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Row numbers of chunk_ids in vectors; -1 for ids not in this snapshot."""
        chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, chunk_ids)
        pos = np.clip(pos, 0, max(self.size - 1, 0))
        found = (self.size > 0) & (self.ids[pos] == chunk_ids) if self.size else np.zeros(chunk_ids.shape, bool)
        return np.where(found, pos, -1)


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    """The inverted-file index inside index, or None (flat or HNSW)."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def snapshot_paths(kb_dir: Path, token: str) -> tuple[Path, Path, Path]:
    return kb_dir / f"ids-{token}.npy", kb_dir / f"vectors-{token}.npy", kb_dir / f"index-{token}.faiss"


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SnapshotDamaged(Exception):
    """A snapshot file is missing, unreadable or differs from its recorded checksum; files names them."""

    def __init__(self, files: list[str], reason: str) -> None:
        super().__init__(f"{', '.join(files)}: {reason}")
        self.files = files
        self.reason = reason


def save_snapshot(kb_dir: Path, snap: Snapshot) -> dict[str, str]:
    """Write the snapshot's three files, each whole or not at all; returns {file name: SHA-256} to record."""
    ids_path, vec_path, index_path = snapshot_paths(kb_dir, snap.token)
    tmp_ids, tmp_vec, tmp_index = (p.with_name(p.name + ".tmp") for p in (ids_path, vec_path, index_path))
    try:
        with open(tmp_ids, "wb") as fh:
            np.save(fh, np.asarray(snap.ids, dtype=np.int64))
        with open(tmp_vec, "wb") as fh:
            np.save(fh, np.asarray(snap.vectors, dtype=np.float32))
        faiss.write_index(snap.index, str(tmp_index))
        checksums = {
            final.name: file_sha256(tmp)
            for tmp, final in ((tmp_ids, ids_path), (tmp_vec, vec_path), (tmp_index, index_path))
        }
        for tmp, final in ((tmp_ids, ids_path), (tmp_vec, vec_path), (tmp_index, index_path)):
            _fsync_replace(tmp, final)
            fault_point("snapshot-partial")
        # The renames must reach the disk before SQLite commits the token that names them; else a
        # power cut could leave a committed token whose files are gone (readers would rebuild from
        # SQLite, but `kb check` would flag it).
        dir_fd = os.open(kb_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except (OSError, RuntimeError) as exc:
        # Disk full / file-size limit / read-only: the token is not switched, so the old snapshot
        # stays current; say so plainly. Other RuntimeErrors are FAISS bugs and propagate as they are.
        if storage_reason(exc) is None:
            raise
        raise write_failure(kb_dir, exc) from exc
    finally:
        for tmp in (tmp_ids, tmp_vec, tmp_index):
            tmp.unlink(missing_ok=True)
    return checksums


def load_snapshot(
    kb_dir: Path, token: str, nprobe: int | None = None, checksums: dict[str, str] | None = None
) -> Snapshot | None:
    """The snapshot saved under token; None if all its files are gone (a later commit removed them).

    Raises SnapshotDamaged when some file is missing, unreadable, inconsistent or (with checksums, as
    recorded at its commit) changed since it was written: such a file must never be used or copied.
    """
    paths = snapshot_paths(kb_dir, token)
    present = [p for p in paths if p.exists()]
    if not present:
        return None
    if len(present) < len(paths):
        raise SnapshotDamaged([p.name for p in paths if not p.exists()], "missing")
    if checksums:
        changed = [p.name for p in paths if checksums.get(p.name) not in (None, file_sha256(p))]
        if changed:
            raise SnapshotDamaged(changed, "differs from the checksum recorded when it was written")
    ids_path, vec_path, index_path = paths
    try:
        ids = np.load(ids_path)
        vectors = np.load(vec_path, mmap_mode="r")
        index = faiss.read_index(str(index_path))
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        raise SnapshotDamaged([p.name for p in paths], f"unreadable ({type(exc).__name__}: {exc})") from None
    if ids.ndim != 1 or vectors.ndim != 2 or len(ids) != len(vectors) or index.ntotal != len(ids):
        raise SnapshotDamaged([p.name for p in paths], "ids, vectors and index disagree in length")
    if nprobe is not None and not isinstance(index, faiss.IndexIDMap2):
        faiss.extract_index_ivf(index).nprobe = nprobe
    return Snapshot(token=token, ids=ids, vectors=vectors, index=index)


def remove_stale_snapshots(kb_dir: Path, keep: str) -> None:
    """Delete snapshot files whose token is not keep (left by crashes or older commits)."""
    for path in kb_dir.glob("*-*.*"):
        stem = path.name.split(".", 1)[0]
        prefix, _, token = stem.partition("-")
        if prefix in ("ids", "vectors", "index") and token != keep:
            path.unlink(missing_ok=True)
