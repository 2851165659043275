"""The FAISS side of a snapshot: an IVF index answers one question as it answers a batch."""

from __future__ import annotations

import faiss
import numpy as np

from kb import IndexConfig
from kb.vector_index import Snapshot, build_index


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_an_ivf_snapshot_gives_one_question_the_hits_a_batch_gives_it_scanning_its_lists_on_every_thread():
    rng = np.random.default_rng(3)
    vectors = _unit(rng.normal(size=(6000, 64)))
    ids = np.arange(10, 6010, dtype=np.int64)
    index = build_index(ids, vectors, IndexConfig(kind="ivf", nprobe=16))
    snap = Snapshot("t", ids, vectors, index)
    ivf = faiss.extract_index_ivf(index)
    queries = _unit(vectors[rng.choice(6000, 40, replace=False)] + rng.normal(scale=0.3, size=(40, 64)))
    allowed = np.sort(rng.choice(ids, 3000, replace=False))
    for only in (None, allowed):
        batch_scores, batch_ids = snap.search(queries, 20, only)
        assert ivf.parallel_mode == 0  # a batch's questions split among the threads
        for q, scores, hits in zip(queries, batch_scores, batch_ids):
            one_scores, one_ids = snap.search(q[None], 20, only)
            assert ivf.parallel_mode == 1  # one question's inverted lists split among them
            np.testing.assert_array_equal(one_ids[0], hits)
            np.testing.assert_allclose(one_scores[0], scores, rtol=1e-6)
        if only is not None:
            assert np.isin(batch_ids[batch_ids >= 0], allowed).all()
