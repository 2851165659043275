"""Scatter-gather over shards (bench/scatter.py): the merged dense top k is one KB's top k; workers stop."""

from __future__ import annotations

import psutil
import pytest

from bench.common import sample_questions
from bench.kbs import kb_documents, shard_of, write_shard
from bench.scatter import ShardHit, ShardPool, merge_top_k
from kb import KnowledgeBase
from retriever import make_retriever


def _gone(pids: list[int]) -> bool:
    alive = []
    for pid in pids:
        try:
            alive.append(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            alive.append(False)
    return not any(alive)


def test_merge_keeps_the_best_scores_of_all_shards():
    a = [ShardHit(0.9, 0, 1, "a", 0), ShardHit(0.5, 0, 2, "a", 1)]
    b = [ShardHit(0.7, 1, 1, "b", 0), ShardHit(0.6, 1, 2, "b", 1)]
    assert [(h.shard, h.chunk_id) for h in merge_top_k([a, b], 3)] == [(0, 1), (1, 1), (1, 2)]


def test_scatter_gather_equals_one_kb_for_dense(sample_kb_dir, embedder, tmp_path):
    whole = KnowledgeBase(sample_kb_dir)
    docs = kb_documents(whole)
    assert {shard_of(d.source, 2) for d, _ in docs} == {0, 1}, "the sample's keys should fall in both shards"
    model, dim = whole.manifest.model, whole.manifest.dim
    dirs = [tmp_path / "shard_0", tmp_path / "shard_1"]
    written = [write_shard(d, docs, i, 2, model, dim) for i, d in enumerate(dirs)]
    assert sum(written) == whole.snapshot().size and min(written) > 0

    dense = make_retriever("dense", whole)
    questions = sample_questions()[:12]
    vectors = embedder.encode_queries(questions)
    with ShardPool(dirs) as pool:
        pids = [p.pid for p in pool.processes]
        pids += [c.pid for pid in list(pids) for c in psutil.Process(pid).children(recursive=True)]
        assert all(r > 0 for r in pool.rss_bytes())
        from_both = set()
        for question, vector in zip(questions, vectors):
            got = pool.search("dense", question, vector, k=5)
            ranked = dense.rank([question], 5, query_vectors=vector[None, :])[0]
            want = [(r.doc_source, r.ordinal) for r in whole.chunks([int(i) for i in ranked.ids])]
            assert [(h.source, h.ordinal) for h in got.hits] == want, question
            assert [h.score for h in got.hits] == pytest.approx(ranked.scores.tolist(), abs=1e-5)
            assert len(got.shard_cpu_s) == 2 and got.wall_s >= max(got.shard_wall_s)
            from_both |= {h.shard for h in got.hits}
            hop = pool.search("hopfield", question, vector, k=5)
            assert len(hop.hits) == 5 and all(shard_of(h.source, 2) == h.shard for h in hop.hits)
        assert from_both == {0, 1}
    assert _gone(pids), "a shard worker outlived the pool"

    with pytest.raises(KeyError), ShardPool(dirs) as pool:  # an error in the coordinator stops the workers too
        pids = [p.pid for p in pool.processes]
        raise KeyError("coordinator failed")
    assert _gone(pids), "a shard worker outlived an error in the coordinator"


def test_a_shard_that_cannot_open_is_named_and_nothing_is_left(tmp_path):
    missing = tmp_path / "no_such_shard"
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    with pytest.raises(RuntimeError, match="no_such_shard"):
        ShardPool([missing], start_timeout=60)
    left = [
        c
        for c in psutil.Process().children(recursive=True)
        if c.pid not in before and "resource_tracker" not in " ".join(c.cmdline())
    ]
    assert not left, left
