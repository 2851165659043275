"""The lexical index's stored bytes are pinned: a faster rebuild must write exactly what the version before wrote.

The digests below were computed by the implementation at commit 7996c21 (scipy's COO -> CSR per batch, one hash
pass per n) on the corpus here: Unicode letters and digits, punctuation, repeated and long words, whitespace runs,
an emoji, CJK. Equal bytes mean equal BM25 and character scores, so retrieval cannot move.

Lexicon version 8 stores chunk_grams more densely (kb.lexicon.GramCounts.packed): its rows are pinned anew, and
decoded and written again in version 7's format (kb.lexicon.pack_grams) they must give version 7's digest.
"""

from __future__ import annotations

import hashlib
import sqlite3

import numpy as np

from kb import KnowledgeBase, char_grams
from kb.lexicon import gram_counts, pack_grams, unpack_chunk_grams
from tests.helpers import sentence_document

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
# chunk_grams as version 8 stores it, and chunk_grams_v7 the version 7 bytes of its decoded rows.
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
            "chunk_grams": "SELECT chunk_id, grams FROM chunk_grams ORDER BY chunk_id",
            "lex_postings": "SELECT term, postings FROM lex_postings ORDER BY term, seg",
            "bm25_length": "SELECT value FROM meta WHERE key = 'bm25_length'",
        }
        out = {}
        for name, sql in tables.items():
            digest = hashlib.sha256()
            for row in con.execute(sql):
                digest.update(repr(row).encode())
            out[name] = digest.hexdigest()
        digest = hashlib.sha256()
        for cid, blob in con.execute("SELECT chunk_id, grams FROM chunk_grams ORDER BY chunk_id"):
            digest.update(repr((cid, pack_grams(*unpack_chunk_grams(blob)))).encode())
        out["chunk_grams_v7"] = digest.hexdigest()
    finally:
        con.close()
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


def test_chunk_grams_rows_decode_to_the_counts_they_were_given_empty_overflowing_and_clipped():
    # " ab" and "ab " 300 and 70,000 times: counts past a byte (the overflow) and past 65,535 (clipped, as in
    # version 7); an empty text and one of a single letter.
    texts = ["ab " * 300, "", "a", "ab " * 70_000 + SENTENCES[3], *SENTENCES]
    counted = gram_counts(texts)
    blobs = counted.packed()
    assert blobs[1] == b""
    for i, blob in enumerate(blobs):
        s, e = counted.indptr[i], counted.indptr[i + 1]
        buckets, counts = unpack_chunk_grams(blob)
        assert buckets.dtype == np.uint32 and counts.dtype == np.float32
        np.testing.assert_array_equal(buckets, counted.buckets[s:e])
        np.testing.assert_array_equal(counts, np.minimum(counted.counts[s:e], 65535).astype(np.float32))
        # 3 bytes an n-gram (version 7 took 6), 2 more each count past a byte, 128 for the groups
        assert len(blob) == (128 + 3 * (e - s) + 2 * int((counted.counts[s:e] >= 255).sum()) if e > s else 0)
    assert unpack_chunk_grams(blobs[0])[1].max() == 300
    assert unpack_chunk_grams(blobs[3])[1].max() == 65535


def test_a_version_7_kb_is_rebuilt_on_open_to_the_same_counts_and_character_cosines(tmp_path):
    from retriever.corpus import Corpus

    kb = _kb(tmp_path, n_docs=2)
    committed = _digests(kb)
    question = "pasword resett for the acount page"
    before = Corpus(kb=kb, snapshot=kb.snapshot()).char_at(question, np.arange(kb.snapshot().size))
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    with con:  # what version 7 stored: 6 bytes an n-gram
        rows = con.execute("SELECT chunk_id, grams FROM chunk_grams").fetchall()
        con.executemany(
            "UPDATE chunk_grams SET grams = ? WHERE chunk_id = ?", [(pack_grams(*unpack_chunk_grams(g)), c) for c, g in rows]
        )
        con.execute("UPDATE meta SET value = '7' WHERE key = 'lexicon_version'")
    con.close()
    reopened = KnowledgeBase(kb.dir)
    assert _digests(reopened) == committed
    after = Corpus(kb=reopened, snapshot=reopened.snapshot()).char_at(question, np.arange(reopened.snapshot().size))
    assert before.max() > 0.1
    np.testing.assert_array_equal(after, before)
