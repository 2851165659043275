"""retriever.char_kernel's unit weights are numpy's, bit for bit: counts past the clip, buckets of idf 0, a chunk
whose every n-gram weighs 0 and one with none."""

from __future__ import annotations

import numpy as np

from kb import GRAM_BUCKETS
from retriever.char_kernel import unit_weights
from retriever.corpus import unit_weights as numpy_unit_weights


def test_the_compiled_unit_weights_are_numpys_to_the_bit():
    rng = np.random.default_rng(11)
    sizes = [*rng.integers(1, 3_000, 300), 0, 5]  # a chunk with no n-grams; the last one's buckets all of idf 0
    indptr = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    buckets = rng.integers(0, GRAM_BUCKETS, indptr[-1]).astype(np.uint32)
    counts = rng.zipf(1.7, indptr[-1]).astype(np.uint32)
    counts[:50] = [70_000, 65_535, 65_536, *rng.integers(60_000, 200_000, 47)]  # around the clip
    idf = (rng.random(GRAM_BUCKETS) * 9).astype(np.float32)
    idf[rng.random(GRAM_BUCKETS) < 0.2] = 0.0  # too rare to count
    idf[buckets[indptr[-2] :]] = 0.0
    got, expected = unit_weights(indptr, buckets, counts, idf), numpy_unit_weights(indptr, buckets, counts, idf)
    assert len(expected[1]) > 200_000 and expected[0][-1] == expected[0][-2]
    for compiled, numpy in zip(got, expected):
        assert compiled.dtype == numpy.dtype or compiled.dtype.kind == numpy.dtype.kind == "i"
        np.testing.assert_array_equal(compiled, numpy)
