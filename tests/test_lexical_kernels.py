"""kb.lexical_kernels's compiled functions give exactly what their numpy counterparts give (the n-gram buckets and
counts, the chunks per bucket, postings grouped by term), and a big commit that uses them stores the same bytes."""

from __future__ import annotations

import numpy as np

from kb import lexical_kernels
from kb.lexicon import gram_counts
from tests.test_lexical_bytes import SENTENCES


def _texts() -> list[str]:
    rng = np.random.default_rng(3)
    # Random code points from ASCII to the astral planes (uint64 codes past 2^16 and 2^17), words of 1 to 12.
    alphabet = [chr(c) for c in [*range(32, 127), *range(0x391, 0x3C9), *range(0x4E00, 0x4E40), *range(0x1F600, 0x1F620)]]
    random = [
        " ".join("".join(rng.choice(alphabet, size=rng.integers(1, 13))) for _ in range(rng.integers(0, 60)))
        for _ in range(200)
    ]
    # Every kind of whitespace str.split cuts at, between words and at a text's ends; a letter that lower-cases to two.
    spaces = "a\x1cb\x1dc\x1ed\x1ff\x85g\xa0h\u1680i\u2000j\u200ak\u2028l\u2029m\u202fn\u205fo\u3000p\u200bq \u3000"
    return [*SENTENCES, "", " ", "a", "ab", "abc", "  \t\n ", spaces, "\u3000\x85İstanbul ΣΑΣ", *random]


def test_no_code_point_past_u3000_is_whitespace():  # what kb.lexicon's table for the compiled counting assumes
    assert chr(0x3000).isspace() and not any(chr(c).isspace() for c in range(0x3001, 0x110000))


def test_the_compiled_hashing_counts_what_numpy_counts():
    texts = _texts()
    numpy_counts = gram_counts(texts)
    compiled = gram_counts(texts, compiled=True)
    assert len(numpy_counts.buckets) > 10_000
    for field in ("indptr", "buckets", "counts"):
        np.testing.assert_array_equal(getattr(compiled, field), getattr(numpy_counts, field))


def test_the_compiled_analysis_cuts_and_counts_what_the_regular_expression_and_numpy_do():
    from kb.lexical_index import analyse, compiled_hashing
    from kb.lexicon import GRAM_BUCKETS, GramTally

    assert compiled_hashing()
    # Word characters at the edges of \\w: underscores, digits of other scripts, combining marks, ligatures, a
    # titlecase letter, superscripts and fractions (numeric, not decimal), enclosed and mathematical digits.
    edges = "snake_case __init__ a_b _ __ x1 ١٢٣ é e\u0301t ǅungla ß ﬁ ⅷ ² ½ ㈠ 𝟘𝟙 a-b a.b"
    texts = [*_texts(), edges, edges.upper()]
    regex, compiled = analyse(texts), analyse(texts, compiled=True)
    assert len(regex.terms) > 5_000
    assert compiled.terms == regex.terms
    for field in ("term", "row", "tf", "lengths", "occurrences", "gram_buckets"):
        np.testing.assert_array_equal(getattr(compiled, field), getattr(regex, field))
    # Counted into a rebuild worker's tally instead: each text's buckets once, twice over two calls.
    expected = np.zeros(GRAM_BUCKETS, dtype=np.int64)
    np.add.at(expected, regex.gram_buckets.astype(np.intp), 1)
    numpy_tally, compiled_tally = GramTally.zeros(), GramTally.zeros()
    assert not len(analyse(texts, tally=numpy_tally).gram_buckets)
    for _ in range(2):
        analyse(texts, compiled=True, tally=compiled_tally)
    np.testing.assert_array_equal(numpy_tally.counts, expected)
    np.testing.assert_array_equal(compiled_tally.counts, 2 * expected)
    # Stamps that would wrap start again from zero, and the counts go on.
    compiled_tally._stamp = (1 << 32) - 2
    analyse(texts, compiled=True, tally=compiled_tally)
    np.testing.assert_array_equal(compiled_tally.counts, 3 * expected)


def test_a_big_commit_hashed_by_the_kernel_stores_the_pinned_bytes(tmp_path, monkeypatch):
    import kb.lexical_index as lexical_index
    from tests.test_lexical_bytes import PINNED, _digests, _kb

    monkeypatch.setattr(lexical_index, "BATCH", 4)
    monkeypatch.setattr(lexical_index, "COMPILED_FROM", 1)  # 9 chunks in batches of 4: those after the first compiled
    assert lexical_index.compiled_hashing()
    assert _digests(_kb(tmp_path, n_docs=3)) == PINNED


def test_the_compiled_counts_and_grouping_equal_numpys():
    rng = np.random.default_rng(5)
    buckets = rng.integers(0, 1 << 22, 100_000).astype(np.uint32)
    counts, expected = np.zeros(1 << 22, dtype=np.int64), np.zeros(1 << 22, dtype=np.int64)
    lexical_kernels.count_buckets(counts, buckets)
    np.add.at(expected, buckets.astype(np.intp), 1)
    np.testing.assert_array_equal(counts, expected)
    codes = (rng.zipf(1.5, 50_000) % 3_000).astype(np.int64)  # codes 0..2999, some never used, with many repeats
    order, bounds = lexical_kernels.group_by_code(codes, 3_000)
    np.testing.assert_array_equal(order, np.argsort(codes, kind="stable"))
    np.testing.assert_array_equal(bounds, np.r_[0, np.cumsum(np.bincount(codes, minlength=3_000))])


def test_a_small_commit_and_a_questions_character_cosines_never_import_numba(tmp_path):
    import subprocess
    import sys

    script = """
import sys
import numpy as np
from kb import KnowledgeBase
from retriever.corpus import Corpus
from tests.test_lexical_bytes import _kb
from pathlib import Path
kb = _kb(Path(sys.argv[1]), n_docs=2)
scores = Corpus(kb=kb, snapshot=kb.snapshot()).char_at("pasword reset", np.arange(kb.snapshot().size))
assert scores.max() > 0.1, scores
print("numba" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_a_big_removal_counted_by_the_kernel_leaves_what_a_rebuild_leaves(tmp_path, monkeypatch):
    import kb.lexical_index as lexical_index
    from tests.test_lexical_bytes import DIM, MODEL, _kb

    kb = _kb(tmp_path, n_docs=3)
    before = kb.char_df()
    monkeypatch.setattr(lexical_index, "BATCH", 2)
    monkeypatch.setattr(lexical_index, "COMPILED_FROM", 1)  # 8 chunks removed in batches of 2: counted compiled
    with kb.writer(model=MODEL, dim=DIM) as w:
        w.remove_document("/virtual/doc1")
    removed = kb.char_df()
    assert kb.n_chunks() == 16 and kb.check().ok and (removed < before).any()
    kb.repair()
    np.testing.assert_array_equal(removed, kb.char_df())
