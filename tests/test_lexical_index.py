"""The lexical index in kb.sqlite: what each commit leaves equals a full rebuild, its BM25 and character
TF-IDF scores equal bm25s's and scikit-learn's computed from the texts, and an index that is missing,
old or damaged is found by `kb check` and rebuilt by repair or on open.

KBs are written through the public writer with seeded synthetic texts and random vectors (no model).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import bm25s
import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from kb import KnowledgeBase, NewDocument
from kb.postings import live_postings
from retriever.corpus import Corpus, SnapshotMoved
from tests.helpers import sentence_document

MODEL, DIM = "synthetic-test-model", 16
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "zen", "pra", "qui", "dor"]


def _words(rng: np.random.Generator, n: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))) for _ in range(n)]


VOCAB = _words(np.random.default_rng(7), 300)


def _doc(name: str, rng: np.random.Generator, n_chunks: int) -> NewDocument:
    """A document of n_chunks sentences drawn from VOCAB (Zipf-like, with stopwords), one chunk each."""
    weights = 1.0 / np.arange(1, len(VOCAB) + 1)
    weights /= weights.sum()
    sentences = []
    for _ in range(n_chunks):
        words = list(rng.choice(VOCAB, size=rng.integers(5, 40), p=weights))
        words[1:1] = ["the", "and"]  # stopwords: in the word index, never in BM25
        sentences.append(" ".join(words).capitalize() + ".")
    return sentence_document(name, sentences, per_section=4)


def _put(kb: KnowledgeBase, rng: np.random.Generator, docs: dict[str, int], removals: tuple[str, ...] = ()) -> None:
    with kb.writer(model=MODEL, dim=DIM) as w:
        for name, n in docs.items():
            vectors = rng.standard_normal((n, DIM)).astype(np.float32)
            w.put_document(_doc(name, rng, n), vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        for name in removals:
            w.remove_document(f"/virtual/{name}")


def _state(kb: KnowledgeBase) -> dict:
    """Everything the lexical index answers, keyed by what it is about (chunk ids, words, buckets)."""
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    try:
        live = np.array([r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
        state = {
            "terms": dict(con.execute("SELECT term, df FROM lex_terms")),
            "words": dict(con.execute("SELECT word, n FROM lex_words")),
            "indexed": con.execute("SELECT value FROM meta WHERE key = 'lex_chunks'").fetchone(),
            # Dead entries of removed chunks may stay until a merge (kb.postings): the live ones must match.
            "postings": {t: r.tolist() for t, r in live_postings(con, live).items()},
        }
    finally:
        con.close()
    found, counted = kb.chunk_grams(live)  # counted from the texts (lexicon version 9 stores none)
    state["grams"] = {
        int(c): (counted.buckets[s:e].tolist(), counted.counts[s:e].tolist())
        for c, s, e in zip(found, counted.indptr, counted.indptr[1:])
    }
    state["char_df"] = kb.char_df()
    state["bm25_length"] = kb.bm25_length()
    corpus = Corpus(kb=kb, snapshot=kb.snapshot()) if kb.token() else None
    state["top"] = [
        corpus.bm25_top(" ".join(VOCAB[i : i + 3]), 15) if corpus else (np.zeros(0), np.zeros(0)) for i in range(0, 60, 6)
    ]
    return state


def _assert_same(a: dict, b: dict) -> None:
    assert a["terms"] == b["terms"]
    assert a["words"] == b["words"]
    assert a["grams"] == b["grams"]
    assert a["indexed"] == b["indexed"]
    assert a["postings"] == b["postings"]
    assert np.array_equal(a["char_df"], b["char_df"])
    assert a["bm25_length"] == b["bm25_length"]
    for (ids_a, scores_a), (ids_b, scores_b) in zip(a["top"], b["top"]):
        np.testing.assert_allclose(scores_a, scores_b, rtol=1e-9)
        assert sorted(ids_a.tolist()) == sorted(ids_b.tolist())


@pytest.fixture
def changed_kb(tmp_path: Path) -> KnowledgeBase:
    """A KB after three commits: four documents, then one changed, one added, one removed."""
    rng = np.random.default_rng(2024)
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    _put(kb, rng, {"alpha": 30, "beta": 25, "gamma": 20, "delta": 10})
    _put(kb, rng, {"beta": 28, "epsilon": 15}, removals=("gamma",))
    _put(kb, rng, {"zeta": 12}, removals=("delta",))
    return kb


def test_the_index_left_by_incremental_commits_equals_a_full_rebuild(changed_kb):
    incremental = _state(changed_kb)
    assert len(incremental["grams"]) == int(incremental["indexed"][0]) == changed_kb.n_chunks() == 30 + 28 + 15 + 12
    changed_kb.repair()
    _assert_same(incremental, _state(changed_kb))


def test_removed_documents_leave_nothing_in_the_lexical_index(tmp_path):
    rng = np.random.default_rng(5)
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    _put(kb, rng, {"alpha": 10, "beta": 10})
    _put(kb, rng, {}, removals=("alpha", "beta"))
    state = _state(kb)
    assert state["terms"] == {} and state["words"] == {} and state["grams"] == {} and state["postings"] == {}
    assert state["indexed"] == ("0",)
    assert not state["char_df"].any() and state["bm25_length"] == 0
    assert all(len(ids) == 0 for ids, _ in state["top"])


def _texts(kb: KnowledgeBase) -> tuple[np.ndarray, list[str]]:
    corpus = Corpus(kb=kb, snapshot=kb.snapshot())
    texts = kb.retrieval_texts(corpus.ids)
    return corpus.ids, [texts[int(i)] for i in corpus.ids]


def test_bm25_over_candidates_equals_bm25s_over_the_whole_snapshot(changed_kb):
    corpus = Corpus(kb=changed_kb, snapshot=changed_kb.snapshot())
    _, texts = _texts(changed_kb)
    reference = bm25s.BM25()  # Lucene IDF, k1 1.5, b 0.75: the defaults the corpus follows
    reference.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    rng = np.random.default_rng(11)
    everything = np.arange(corpus.snapshot.size)
    for _ in range(20):
        question = " ".join(rng.choice(VOCAB[:120], size=rng.integers(1, 6))) + " and the unknownword"
        tokens = bm25s.tokenize([question], stopwords="en", show_progress=False, return_ids=False)[0]
        expected = reference.get_scores(tokens)
        np.testing.assert_allclose(corpus.bm25_at(question, everything), expected, atol=1e-4)
        some = rng.choice(everything, size=12, replace=False)
        np.testing.assert_allclose(corpus.bm25_at(question, some), expected[some], atol=1e-4)


def test_bm25_top_returns_chunks_holding_a_question_word_best_first(changed_kb):
    corpus = Corpus(kb=changed_kb, snapshot=changed_kb.snapshot())
    ids, texts = _texts(changed_kb)
    rare = [w for w in VOCAB[150:] if sum(w in t.lower().split() for t in texts) == 1][0]
    rows, scores = corpus.bm25_top(f"{rare} {VOCAB[0]}", k=10)
    assert rare in texts[rows[0]].lower()  # a rare word outweighs a common one
    assert np.all(np.diff(scores) <= 1e-9)
    assert all(rare in texts[r].lower() or VOCAB[0] in texts[r].lower() for r in rows)
    allowed = np.sort(ids[rows[3:]])
    only, _ = corpus.bm25_top(f"{rare} {VOCAB[0]}", k=10, allowed=allowed)
    assert set(ids[only].tolist()) <= set(allowed.tolist()) and len(only) > 0


def test_character_cosines_equal_scikit_learn_tfidf_fitted_on_the_snapshot(changed_kb):
    corpus = Corpus(kb=changed_kb, snapshot=changed_kb.snapshot())
    _, texts = _texts(changed_kb)
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, dtype=np.float32)
    matrix = reference.fit_transform(texts)
    rng = np.random.default_rng(3)
    everything = np.arange(corpus.snapshot.size)
    for _ in range(10):
        words = list(rng.choice(VOCAB[:100], size=4))
        words[0] = words[0][:-1] + "x" + words[0][-1]  # a typo
        question = " ".join(words)
        expected = (matrix @ reference.transform([question]).T).toarray().ravel()
        got = corpus.char_at(question, everything)
        # Hashing 3-5-grams into 2^22 buckets: a rare collision may move a cosine in the fourth decimal.
        np.testing.assert_allclose(got, expected, atol=2e-3)
        assert np.argmax(got) == np.argmax(expected) or np.isclose(got.max(), expected[np.argmax(got)], atol=2e-3)


def test_a_kb_without_a_lexical_index_gets_one_on_open(changed_kb):
    before = _state(changed_kb)
    con = sqlite3.connect(changed_kb.dir / "kb.sqlite")
    con.executescript(
        "DROP TABLE lex_postings; DROP TABLE lex_terms; DROP TABLE lex_words; DROP TABLE lex_gram_delta; "
        "DELETE FROM meta WHERE key IN ('char_df', 'bm25_length', 'lexicon_version', 'lex_chunks');"
    )
    con.close()
    reopened = KnowledgeBase(changed_kb.dir)
    _assert_same(before, _state(reopened))
    assert reopened.check().ok


def test_check_names_a_damaged_lexical_index_and_repair_rebuilds_it(changed_kb):
    before = _state(changed_kb)
    con = sqlite3.connect(changed_kb.dir / "kb.sqlite")
    con.execute("UPDATE meta SET value = value - 5 WHERE key = 'lex_chunks'")  # as if 5 chunks were never indexed
    con.commit()
    con.close()
    report = changed_kb.check()
    assert not report.ok
    assert any("lexical index covers" in p and "kb check --repair" in p for p in report.problems), report.problems
    assert changed_kb.repair().ok
    _assert_same(before, _state(changed_kb))


def test_a_corpus_whose_snapshot_a_later_commit_passed_says_so_instead_of_answering_from_a_mix(changed_kb):
    # One lexical index serves every snapshot: a commit that replaced chunks makes an older snapshot's BM25 pool
    # incomplete (its removed chunks are gone), so the corpus raises and the search ranks again on the new one.
    old = Corpus(kb=changed_kb, snapshot=changed_kb.snapshot())
    rng = np.random.default_rng(9)
    _put(changed_kb, rng, {"alpha": 30, "eta": 20})  # alpha changed: its old chunks are gone
    question = " ".join(VOCAB[:5])
    with pytest.raises(SnapshotMoved):
        old.bm25_top(question, k=200)
    with pytest.raises(SnapshotMoved):
        old.bm25_at(question, np.arange(old.snapshot.size))
    with pytest.raises(SnapshotMoved):
        old.char_at(question, np.arange(old.snapshot.size))
    fresh = Corpus(kb=changed_kb, snapshot=changed_kb.snapshot())
    rows, _ = fresh.bm25_top(question, k=200)
    assert len(rows) and rows.max() < fresh.snapshot.size


@pytest.mark.slow  # starts worker processes
def test_a_rebuild_analysed_by_worker_processes_equals_the_serial_one(changed_kb, tmp_path):
    # In a fresh interpreter: the pool only forks from a process of one thread, and a test process may hold more
    # (tqdm's monitor, after the bm25s tests), where the rebuild would quietly run serially.
    script = """
import os, sys
import kb.lexical_index as lexical_index, kb.lexical_rebuild as lexical_rebuild
from kb import KnowledgeBase
lexical_rebuild.BATCH, lexical_rebuild.PARALLEL_FROM = 16, 32  # 85 chunks: 6 batches, so the worker pool runs
def analyse_noting_the_process(*args, **kwargs):  # the forked workers inherit the patched name
    with open(sys.argv[2], "a") as out:
        out.write(f"{os.getpid()}\\n")
    return lexical_index.analyse(*args, **kwargs)
lexical_rebuild.analyse = analyse_noting_the_process
KnowledgeBase(sys.argv[1]).repair()
print(os.getpid())
"""
    serial = _state(changed_kb)
    pids = tmp_path / "pids"
    done = subprocess.run(
        [sys.executable, "-c", script, str(changed_kb.dir), str(pids)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same(serial, _state(KnowledgeBase(changed_kb.dir)))
    analysed_in = set(pids.read_text().split())
    assert len(analysed_in) >= 2 and done.stdout.strip() not in analysed_in  # the workers analysed every batch
