"""The reader's numpy Hopfield dynamics (retriever/hopfield_gram.py) against the torch reference (hopfield_math)."""

from __future__ import annotations

import numpy as np
import torch

from retriever import hopfield_gram, hopfield_math


def test_numpy_iterate_gram_equals_the_torch_one(rng):
    for b, k, beta, steps in ((1, 1, 4.0, 5), (3, 40, 2.0, 5), (5, 200, 8.0, 3), (2, 17, 0.5, 1)):
        x = rng.standard_normal((b, k, 24)).astype(np.float32)
        gram = np.einsum("bkd,bjd->bkj", x, x).astype(np.float32)
        cue = (beta * rng.standard_normal((b, k))).astype(np.float32)
        mask = np.ones((b, k), dtype=bool)
        mask[0, k // 2 + 1 :] = False  # a padded row, as the reader builds for a query with fewer candidates
        got = hopfield_gram.iterate_gram(cue, gram, beta, mask, steps, 1e-4)
        want = hopfield_math.iterate_gram(
            torch.from_numpy(cue), torch.from_numpy(gram), beta, torch.from_numpy(mask), steps, 1e-4
        )
        scale = np.abs(want.scores.numpy()).max()
        assert np.allclose(got.weights, want.weights.numpy(), atol=1e-5)
        assert np.allclose(got.scores, want.scores.numpy(), atol=1e-5 * scale)
        assert np.allclose(got.energies, want.energies.numpy(), rtol=1e-4, atol=1e-4)
        assert (got.steps == want.steps.numpy()).all() and (got.converged == want.converged.numpy()).all()
        assert np.allclose(hopfield_gram.entropy(got.weights), hopfield_math.entropy(want.weights).numpy(), atol=1e-5)
        assert got.weights.dtype == got.scores.dtype == np.float32
