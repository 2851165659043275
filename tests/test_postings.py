"""The BM25 postings (kb/postings.py) and the n-gram frequency deltas: many small commits stay cheap and answer
what a rebuild answers, a commit killed half-way leaves the previous index, the ranking is bm25s's, and a KB
indexed by the FTS5 version is rebuilt on open.

KBs are written through the public writer with the seeded synthetic texts of tests/test_lexical_index.py.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bm25s
import numpy as np
import pytest

import retriever.corpus as corpus_module
from kb import KBError, KnowledgeBase
from kb.lexicon import LEXICON_VERSION
from kb.postings import MERGE_AT
from retriever.corpus import BM25_B, BM25_K1, Corpus, term_contributions
from retriever.postings_kernel import borrowed, top_k
from retriever.postings_kernel import term_contributions as compiled_contributions
from tests.test_lexical_index import DIM, MODEL, VOCAB, _assert_same, _doc, _put, _state

ROOT = Path(__file__).resolve().parents[1]


def _query(con: sqlite3.Connection, sql: str, *args) -> list[tuple]:
    return con.execute(sql, args).fetchall()


def _raw(kb: KnowledgeBase) -> dict:
    """The lexical tables as stored (segments, delta rows, the n-gram frequency blob)."""
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    try:
        return {
            "segments": dict(_query(con, "SELECT term, COUNT(*) FROM lex_postings GROUP BY term")),
            "postings": _query(con, "SELECT term, seg, postings FROM lex_postings ORDER BY term, seg"),
            "delta": _query(con, "SELECT bucket, d FROM lex_gram_delta ORDER BY bucket"),
            "char_df_blob": _query(con, "SELECT value FROM meta WHERE key = 'char_df'"),
        }
    finally:
        con.close()


@pytest.mark.slow  # ~20 commits
def test_many_small_commits_append_segments_merge_crowded_terms_and_equal_a_rebuild(tmp_path):
    rng = np.random.default_rng(31)
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    _put(kb, rng, {"base": 40})
    assert _raw(kb)["delta"] and not _raw(kb)["char_df_blob"]  # a small first commit: rows, no 16 MiB array
    kb.repair()  # a rebuild folds everything into the array
    first = _raw(kb)
    assert first["delta"] == [] and first["char_df_blob"]
    for i in range(2 * MERGE_AT + 2):  # tiny commits: a new document, and every other time one replaced
        _put(kb, rng, {f"small{i}": 2, **({"base": 40} if i % 2 else {})})
    raw = _raw(kb)
    # The 16 MiB n-gram frequency array was not rewritten by the small commits: their changes are rows.
    assert raw["char_df_blob"] == first["char_df_blob"]
    assert len(raw["delta"]) > 0
    # Common words had a segment per commit; each was merged once it passed MERGE_AT.
    assert max(raw["segments"].values()) <= MERGE_AT + 1
    common = VOCAB[0]
    assert raw["segments"][common] < 2 * MERGE_AT
    incremental = _state(kb)
    kb.repair()  # a rebuild: one segment per term, no delta rows
    rebuilt = _raw(kb)
    assert set(rebuilt["segments"].values()) == {1} and rebuilt["delta"] == []
    _assert_same(incremental, _state(kb))


KILLED_COMMIT = """
import sys
import numpy as np
from kb import KBError, KnowledgeBase
from tests.test_lexical_index import _put
_put(KnowledgeBase(sys.argv[1]), np.random.default_rng(77), {"base": 30, "late": 12}, removals=("small0",))
"""


@pytest.mark.slow  # killed processes
def test_a_commit_killed_before_it_commits_leaves_the_previous_lexical_index(tmp_path):
    rng = np.random.default_rng(8)
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    _put(kb, rng, {"base": 30})
    for i in range(MERGE_AT + 1):  # enough segments that the killed commit also merges and writes delta rows
        _put(kb, rng, {f"small{i}": 2})
    before_raw, before = _raw(kb), _state(kb)
    env = {**os.environ, "HOPFIELD_KB_FAULT": "before-sqlite-commit", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_COMMIT, str(kb.dir)], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    reopened = KnowledgeBase(kb.dir)
    assert _raw(reopened) == before_raw
    _assert_same(before, _state(reopened))
    # The same commit, not killed, then changes it.
    done = subprocess.run(
        [sys.executable, "-c", KILLED_COMMIT, str(kb.dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert _raw(KnowledgeBase(kb.dir)) != before_raw


@pytest.mark.parametrize(
    "common_from, kernel_from", [(None, None), (1, None), (None, 0)], ids=["default", "every-term-kept", "compiled-kernel"]
)
def test_bm25_top_is_bm25s_ranking_over_every_chunk(tmp_path, monkeypatch, common_from, kernel_from):
    if common_from is not None:  # keep every term's postings in memory across questions (a 1M KB's common words)
        monkeypatch.setattr(corpus_module, "COMMON_TERM_POSTINGS", common_from)
    if kernel_from is not None:  # the compiled path a KB of KERNEL_MIN_CHUNKS+ chunks takes (retriever.postings_kernel)
        monkeypatch.setattr(corpus_module, "KERNEL_MIN_CHUNKS", kernel_from)
    rng = np.random.default_rng(12)
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    _put(kb, rng, {"alpha": 400, "beta": 300, "gamma": 250})
    _put(kb, rng, {"beta": 20}, removals=("gamma",))  # dead postings of the removed chunks stay in the table
    corpus = Corpus(kb=kb, snapshot=kb.snapshot())
    texts = kb.retrieval_texts(corpus.ids)
    reference = bm25s.BM25()
    reference.index(
        bm25s.tokenize([texts[int(i)] for i in corpus.ids], stopwords="en", show_progress=False), show_progress=False
    )
    pruned = 0  # questions whose hits were many enough for bm25_top to cut them before the exact selection
    common = 1.0 / np.arange(1, 151)  # as often as the documents use them, so that many questions hit most chunks
    for _ in range(25):
        question = " ".join(rng.choice(VOCAB[:150], size=rng.integers(1, 6), p=common / common.sum()))
        expected = reference.get_scores(bm25s.tokenize([question], stopwords="en", show_progress=False, return_ids=False)[0])
        holding = int((expected > 0).sum())
        for k in (1, 3, 15):
            rows, scores = corpus.bm25_top(question, k=k)
            pruned += k > 1 and holding // 16 > 4 * k
            assert len(rows) == min(k, holding)
            np.testing.assert_allclose(scores, expected[rows], atol=1e-4)
            # The top k of the exact scores, up to ties at the cut: the k-th best score bounds everything left out.
            cut = np.sort(expected)[::-1][len(rows) - 1] if len(rows) else 0.0
            assert np.all(expected[rows] >= cut - 1e-4)
            assert np.all(np.diff(scores) <= 1e-6)
    assert pruned >= 10


def test_the_compiled_kernel_gives_numpys_floats_and_order_ties_and_filters_included(tmp_path, monkeypatch):
    """A large KB's compiled path (retriever.postings_kernel) answers bm25_top and bm25_at with the very floats and
    order of the numpy path: scores bit for bit, ties at the cut by lower row, with and without a filter."""
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    rng = np.random.default_rng(3)
    _put(kb, rng, {"alpha": 300, "beta": 120})
    with kb.writer(model=MODEL, dim=DIM) as w:  # two copies of one document: chunks whose scores tie exactly
        for name in ("twin-a", "twin-b"):
            vectors = np.random.default_rng(9).standard_normal((40, DIM)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            w.put_document(_doc(name, np.random.default_rng(8), 40), vectors)
    _put(kb, rng, {"gamma": 30}, removals=("beta",))  # dead postings the decoding must skip
    by_numpy, by_kernel = Corpus(kb=kb, snapshot=kb.snapshot()), Corpus(kb=kb, snapshot=kb.snapshot())
    rows = np.arange(by_numpy.snapshot.size)
    allowed = np.sort(rng.choice(by_numpy.ids, size=len(rows) // 3, replace=False))
    common = 1.0 / np.arange(1, 151)
    ties_at_cut = 0
    for _ in range(30):
        question = " ".join(rng.choice(VOCAB[:150], size=rng.integers(1, 8), p=common / common.sum()))
        monkeypatch.setattr(corpus_module, "KERNEL_MIN_CHUNKS", 10**12)
        every = by_numpy.bm25_top(question, 10_000)[1]
        ties_at_cut += sum(len(every) > k and every[k - 1] == every[k] for k in (1, 5, 40))
        for k in (1, 5, 40, 10_000):
            for where in (None, allowed):
                monkeypatch.setattr(corpus_module, "KERNEL_MIN_CHUNKS", 10**12)
                expected = by_numpy.bm25_top(question, k, where)
                monkeypatch.setattr(corpus_module, "KERNEL_MIN_CHUNKS", 0)
                got = by_kernel.bm25_top(question, k, where)
                np.testing.assert_array_equal(got[0], expected[0])
                np.testing.assert_array_equal(got[1], expected[1])
        monkeypatch.setattr(corpus_module, "KERNEL_MIN_CHUNKS", 10**12)
        expected_at = by_numpy.bm25_at(question, rows)
        monkeypatch.setattr(corpus_module, "KERNEL_MIN_CHUNKS", 0)
        np.testing.assert_array_equal(by_kernel.bm25_at(question, rows), expected_at)
    assert ties_at_cut >= 5  # equal scores (the twins') straddled the cut: the kernel kept numpy's lower rows
    # The pooled accumulator is left zeroed for the next question.
    with borrowed(by_kernel.snapshot.size) as buffers:
        assert not buffers.acc.any()
    # Each term's contributions, before any sum or cast to float32: the same float64s, dead postings skipped.
    row_of = np.full(int(by_numpy.ids[-1]) + 1, -1, dtype=np.int32)
    row_of[by_numpy.ids] = np.arange(len(by_numpy.ids), dtype=np.int32)
    read = kb.term_postings(VOCAB)
    assert any(not np.isin(records["id"], by_numpy.ids).all() for records in read.postings.values())
    average = read.total_length / len(by_numpy.ids)
    for term, records in read.postings.items():
        idf = np.log(1 + (len(by_numpy.ids) - read.df[term] + 0.5) / (read.df[term] + 0.5))
        expected_rows, expected = term_contributions(records, row_of, idf, average)
        got_rows, got = compiled_contributions(records, row_of, idf, BM25_K1, BM25_B, average)
        np.testing.assert_array_equal(got_rows, expected_rows)
        np.testing.assert_array_equal(got, expected)


def test_the_compiled_kernel_answers_threads_at_once_as_one_at_a_time():
    """Questions ranked by 4 threads at once (the kernel runs without the GIL, each call in its own pooled buffers)
    get what one at a time gets, and that is the exact top-k of the summed scores, ties by lower row."""
    rng = np.random.default_rng(6)
    size = 1_000_000
    questions = []
    for _ in range(12):  # a 1M KB's long questions: common terms reaching many rows, some scores equal
        terms = []
        for _ in range(rng.integers(2, 6)):
            rows = np.sort(rng.choice(size, size=int(rng.integers(1_000, 300_000)), replace=False)).astype(np.int64)
            terms.append((rows, rng.integers(1, 20, size=len(rows)).astype(np.float64) / 4))
        questions.append(terms)
    alone = [top_k(terms, 100, size) for terms in questions]
    for terms, (rows, scores) in zip(questions, alone):
        total = np.bincount(np.concatenate([r for r, _ in terms]), np.concatenate([s for _, s in terms]), minlength=size)
        best = np.lexsort((np.arange(size), -total))[:100]
        np.testing.assert_array_equal(rows, best)
        np.testing.assert_array_equal(scores, total[best])
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            for (rows, scores), (want_rows, want_scores) in zip(pool.map(lambda t: top_k(t, 100, size), questions), alone):
                np.testing.assert_array_equal(rows, want_rows)
                np.testing.assert_array_equal(scores, want_scores)


def test_a_kb_indexed_by_the_fts5_version_is_rebuilt_on_open(tmp_path):
    rng = np.random.default_rng(4)
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    _put(kb, rng, {"alpha": 20, "beta": 15})
    before = _state(kb)
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    # What lexicon version 6 left: an FTS5 table, no postings, no delta table.
    con.executescript(
        "CREATE VIRTUAL TABLE chunk_fts USING fts5(body, content=''); DROP TABLE lex_postings; DROP TABLE lex_gram_delta; "
        "UPDATE meta SET value = '6' WHERE key = 'lexicon_version';"
    )
    con.close()
    reopened = KnowledgeBase(kb.dir)
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = con.execute("SELECT value FROM meta WHERE key = 'lexicon_version'").fetchone()[0]
    finally:
        con.close()
    assert "chunk_fts" not in tables and {"lex_postings", "lex_gram_delta"} <= tables
    assert version == LEXICON_VERSION
    _assert_same(before, _state(reopened))
    assert reopened.check().ok


def test_a_kb_from_a_newer_lexicon_is_refused_and_left_as_it_is(tmp_path):
    rng = np.random.default_rng(5)
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    _put(kb, rng, {"alpha": 20, "beta": 15})
    newer = str(int(LEXICON_VERSION) + 1)
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    con.execute("UPDATE meta SET value = ? WHERE key = 'lexicon_version'", (newer,))
    con.commit()
    con.close()
    stored = (kb.dir / "kb.sqlite").read_bytes()
    # Before, this rebuilt the index in this version's format: a silent downgrade of what a newer build wrote.
    with pytest.raises(KBError, match=f"version {newer}, written by a newer hopfield-kb"):
        KnowledgeBase(kb.dir)
    assert (kb.dir / "kb.sqlite").read_bytes() == stored
