"""kb.gram_kernel's compiled n-gram hashing gives exactly the buckets and counts of kb.lexicon's numpy one, and a
rebuild or big commit that uses it stores the same lexical index."""

from __future__ import annotations

import numpy as np

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
    return [*SENTENCES, "", " ", "a", "ab", "abc", "  \t\n ", *random]


def test_the_compiled_hashing_counts_what_numpy_counts():
    texts = _texts()
    numpy_counts = gram_counts(texts)
    compiled = gram_counts(texts, compiled=True)
    assert len(numpy_counts.buckets) > 10_000
    for field in ("indptr", "buckets", "counts"):
        np.testing.assert_array_equal(getattr(compiled, field), getattr(numpy_counts, field))


def test_a_big_commit_hashed_by_the_kernel_stores_the_pinned_bytes(tmp_path, monkeypatch):
    import kb.lexical_index as lexical_index
    from tests.test_lexical_bytes import PINNED, _digests, _kb

    monkeypatch.setattr(lexical_index, "BATCH", 4)
    monkeypatch.setattr(lexical_index, "PARALLEL_FROM", 1)  # 9 chunks in batches of 4: those after the first compiled
    assert lexical_index.compiled_hashing()
    assert _digests(_kb(tmp_path, n_docs=3)) == PINNED
