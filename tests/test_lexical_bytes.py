"""The lexical index's stored bytes are pinned: a faster rebuild must write exactly what the version before wrote.

The digests below were computed by the implementation at commit 7996c21 (scipy's COO -> CSR per batch, one hash
pass per n) on the corpus here: Unicode letters and digits, punctuation, repeated and long words, whitespace runs,
an emoji, CJK. Equal bytes mean equal BM25 and character scores, so retrieval cannot move.

Lexicon version 8 stored chunk_grams more densely: its rows were pinned anew, and decoded and written again in
version 7's format (kb.lexicon.pack_grams) they gave version 7's digest. Version 9 stores no chunk_grams: a reader
counts a chunk's n-grams from its text (KnowledgeBase.chunk_grams). Those counts, written in version 8's row format
(_v8_row, kept here as the record of that format) and in version 7's, must still give the digests those versions
stored: the same counts, so the same character cosines. Every other digest is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np

from kb import KnowledgeBase, char_grams
from kb.lexicon import LEXICON_VERSION, GramCounts, pack_grams
from tests.helpers import sentence_document

ROOT = Path(__file__).resolve().parents[1]

MODEL, DIM = "synthetic-test-model", 8

SENTENCES = [
    "Reset your password from the Account page, then sign in again.",
    "İstanbul office: ÇAĞRI merkezi açık — naïve café résumé Œuvre straße.",
    "Refunds take 5-10 business days; card ending 4242 (Visa) or IBAN.",
    "日本語のサポート 窓口 は 平日 のみ  😀 emoji   and\ttabs\n\nnewlines",
    "the the the and and of of of of snake_case_words x1 y22 zz333 a b c",
    "Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
    "Ελληνικά κείμενα και русский текст с цифрами ١٢٣ ٤٥٦",
    "Don't can't won't it's O'Brien's e-mail: help@example.com http://x.y/z?q=1",
]
# sha256 of each table's rows (ordered), of the n-gram document frequencies and of char_grams, as 7996c21 gave them;
# chunk_grams as version 8 stored it, and chunk_grams_v7 as version 7 did (now both of the counts from the texts).
PINNED = {
    "lex_terms": "9e7edd544db423b6db8d1124d924f1ca6ddc3b0e36c35c5b0a1886ca27077b3c",
    "lex_words": "40cdf84c4e8d2e11b34389a214b3e911b23b434ba7b8270bfd66068b7b6132f2",
    "chunk_grams": "08495c60178e615e83a24a14e397b804f3a7369659603c875e32a13ca2881df2",
    "chunk_grams_v7": "911b732c5a938ee031daccc3481ecff73e811c94246dece25a5e6c40cb9b9833",
    "lex_postings": "e257da171af08685e12ae59ba548a9fc677541412b0f092a52c1dcbc627a7a8d",
    "bm25_length": "9b713e3c48149cf35d18631ffef8cb1ce4cd6cd01ded524a7ec2a56ca00a63c7",
    "char_df": "d59ff5bdff0bf852027ad7acd3d7da2a08910e582fe64e9593798e16cc25da3a",
    "char_grams": "4aab6335aafac7aaa983a9006fda89806ec65709e2f59a0e8efc738ef46b8713",
}


def _digests(kb: KnowledgeBase) -> dict[str, str]:
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    try:
        tables = {
            "lex_terms": "SELECT term, df FROM lex_terms ORDER BY term",
            "lex_words": "SELECT word, n FROM lex_words ORDER BY word",
            "lex_postings": "SELECT term, postings FROM lex_postings ORDER BY term, seg",
            "bm25_length": "SELECT value FROM meta WHERE key = 'bm25_length'",
        }
        out = {}
        for name, sql in tables.items():
            digest = hashlib.sha256()
            for row in con.execute(sql):
                digest.update(repr(row).encode())
            out[name] = digest.hexdigest()
        ids = [r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")]
    finally:
        con.close()
    for compiled in (False, True):  # a reader of a KB past retriever.corpus.KERNEL_MIN_CHUNKS hashes them compiled
        found, counted = kb.chunk_grams(ids, compiled=compiled)
        assert found.tolist() == ids
        v8, v7 = hashlib.sha256(), hashlib.sha256()
        for i, cid in enumerate(ids):
            buckets, counts = _row(counted, i)
            v8.update(repr((cid, _v8_row(buckets, counts))).encode())
            v7.update(repr((cid, pack_grams(buckets, counts))).encode())
        out["chunk_grams" if not compiled else "chunk_grams_compiled"] = v8.hexdigest()
        out["chunk_grams_v7"] = v7.hexdigest()
    assert out.pop("chunk_grams_compiled") == out["chunk_grams"]
    out["char_df"] = hashlib.sha256(kb.char_df().tobytes()).hexdigest()  # the array with a small commit's deltas
    matrix = char_grams(SENTENCES + ["", "  ", "a"])
    digest = hashlib.sha256()
    for part in (matrix.indptr, matrix.indices, matrix.data):
        digest.update(part.tobytes() + str(part.dtype).encode())
    out["char_grams"] = digest.hexdigest()
    return out


def _kb(tmp_path, n_docs: int) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    rng = np.random.default_rng(0)
    with kb.writer(model=MODEL, dim=DIM) as w:
        for d in range(n_docs):
            sentences = [f"{s} (copy {d})" if d else s for s in SENTENCES]
            vectors = rng.standard_normal((len(sentences), DIM)).astype(np.float32)
            w.put_document(
                sentence_document(f"doc{d}", sentences, per_section=3),
                vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
            )
    return kb


def test_a_commit_and_a_rebuild_store_the_bytes_the_previous_implementation_stored(tmp_path):
    kb = _kb(tmp_path, n_docs=3)
    committed = _digests(kb)
    kb.repair()  # the full rebuild
    assert _digests(kb) == committed
    assert committed == PINNED


def _row(counted: GramCounts, i: int) -> tuple[np.ndarray, np.ndarray]:
    s, e = counted.indptr[i], counted.indptr[i + 1]
    return counted.buckets[s:e], counted.counts[s:e]


def _v8_row(buckets: np.ndarray, counts: np.ndarray) -> bytes:
    """One chunk's n-gram counts as lexicon version 8 stored them in chunk_grams: the buckets split at bit 16 into 64
    groups; each group's count (uint16), then each n-gram's low 16 bits (uint16, ascending), then its count (uint8,
    255 = "see the overflow"), then the overflow: the counts of 255 or more (uint16, clipped at 65,535)."""
    if not len(buckets):
        return b""
    groups = np.bincount(buckets >> 16, minlength=64).astype("<u2").tobytes()
    low = (buckets & np.uint32(0xFFFF)).astype("<u2").tobytes()
    over = np.minimum(counts[counts >= 255], 65535).astype("<u2").tobytes()
    return groups + low + np.minimum(counts, 255).astype(np.uint8).tobytes() + over


def _cosines(kb: KnowledgeBase, question: str) -> np.ndarray:
    from retriever.corpus import Corpus

    return Corpus(kb=kb, snapshot=kb.snapshot()).char_at(question, np.arange(kb.snapshot().size))


def _make_version_8(kb: KnowledgeBase) -> None:
    """Turn kb's lexical index into what lexicon version 8 left: the same tables plus chunk_grams rows."""
    found, counted = kb.chunk_grams(kb.snapshot().ids)
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    with con:
        con.execute("CREATE TABLE chunk_grams (chunk_id INTEGER PRIMARY KEY, grams BLOB NOT NULL)")
        con.executemany(
            "INSERT INTO chunk_grams VALUES (?, ?)", [(int(c), _v8_row(*_row(counted, i))) for i, c in enumerate(found)]
        )
        con.execute("DELETE FROM meta WHERE key = 'lex_chunks'")  # version 9's count of indexed chunks
        con.execute("UPDATE meta SET value = '8' WHERE key = 'lexicon_version'")
    con.close()


def _lexical_tables(kb: KnowledgeBase) -> tuple[set[str], str]:
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return tables, con.execute("SELECT value FROM meta WHERE key = 'lexicon_version'").fetchone()[0]
    finally:
        con.close()


QUESTION = "pasword resett for the acount page"


def test_a_version_8_kb_drops_its_ngram_rows_on_open_and_answers_the_same(tmp_path):
    kb = _kb(tmp_path, n_docs=2)
    committed, cosines = _digests(kb), _cosines(kb, QUESTION)
    bm25 = kb.term_postings(["password", "account", "refunds"])
    _make_version_8(kb)
    tables, version = _lexical_tables(kb)
    assert "chunk_grams" in tables and version == "8"
    reopened = KnowledgeBase(kb.dir)
    tables, version = _lexical_tables(reopened)
    assert "chunk_grams" not in tables and version == LEXICON_VERSION
    assert _digests(reopened) == committed  # nothing rebuilt: the postings, words and n-gram frequencies as they were
    assert reopened.check().ok, reopened.check().problems
    assert cosines.max() > 0.1
    np.testing.assert_array_equal(_cosines(reopened, QUESTION), cosines)
    again = reopened.term_postings(["password", "account", "refunds"])
    assert again.df == bm25.df and again.total_length == bm25.total_length
    assert all(np.array_equal(again.postings[t], bm25.postings[t]) for t in bm25.postings)


# Opens the version 8 KB and is killed after the upgrade's statements, before its transaction commits.
KILLED_UPGRADE = """
import os, signal, sys
import kb.lexical_rebuild as lexical_rebuild
from kb import KnowledgeBase
upgrade = lexical_rebuild.upgrade
def upgrade_then_die(con, texts):
    upgrade(con, texts)
    os.kill(os.getpid(), signal.SIGKILL)
lexical_rebuild.upgrade = upgrade_then_die
KnowledgeBase(sys.argv[1])
"""


def test_an_upgrade_from_version_8_killed_before_it_commits_leaves_version_8_and_the_next_open_upgrades(tmp_path):
    kb = _kb(tmp_path, n_docs=2)
    committed, cosines = _digests(kb), _cosines(kb, QUESTION)
    _make_version_8(kb)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KILLED_UPGRADE, str(kb.dir)], cwd=ROOT, env=env, capture_output=True)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    tables, version = _lexical_tables(kb)
    assert "chunk_grams" in tables and version == "8"  # rolled back: version 8 whole
    reopened = KnowledgeBase(kb.dir)
    assert _lexical_tables(reopened)[1] == LEXICON_VERSION and _digests(reopened) == committed
    np.testing.assert_array_equal(_cosines(reopened, QUESTION), cosines)


def test_a_large_kbs_reader_counts_the_ngrams_compiled_to_the_same_cosines(tmp_path, monkeypatch):
    import retriever.corpus as corpus_module

    kb = _kb(tmp_path, n_docs=2)
    numpy_cosines = _cosines(kb, QUESTION)
    monkeypatch.setattr(corpus_module, "CHAR_KERNEL_MIN_CHUNKS", 0)  # as a KB past the cache of n-gram vectors does
    assert numpy_cosines.max() > 0.1
    np.testing.assert_array_equal(_cosines(kb, QUESTION), numpy_cosines)
