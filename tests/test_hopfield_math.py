"""The pure Hopfield math against float64 references and its textbook properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retriever.hopfield_math import energy, energy_gram, entropy, iterate, iterate_gram, update


def _unit(rng, *shape):
    x = rng.standard_normal(shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _reference_update(xi: np.ndarray, patterns: np.ndarray, beta: float) -> np.ndarray:
    """One update for a single query, written out in float64 numpy."""
    logits = beta * patterns @ xi
    p = np.exp(logits - logits.max())
    return patterns.T @ (p / p.sum())


def test_update_matches_float64_reference_on_random_data(rng):
    patterns = _unit(rng, 3, 40, 16)
    xi = _unit(rng, 3, 16)
    got = update(torch.tensor(xi, dtype=torch.float32), torch.tensor(patterns, dtype=torch.float32), 8.0).numpy()
    want = np.stack([_reference_update(xi[b], patterns[b], 8.0) for b in range(3)])
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("beta", [0.5, 4.0, 32.0])
def test_energy_never_increases_along_the_updates(rng, beta):
    patterns = torch.tensor(_unit(rng, 4, 30, 12))
    xi = torch.tensor(_unit(rng, 4, 12))
    res = iterate(xi, patterns, beta, update_steps_max=10, update_steps_eps=0.0)
    diffs = res.energies[:, 1:] - res.energies[:, :-1]
    assert (diffs <= 1e-9).all(), diffs


def test_perturbed_stored_pattern_converges_to_it_at_large_beta(rng):
    patterns = _unit(rng, 1, 50, 32)
    target = patterns[0, 7]
    cue = target + 0.15 * _unit(rng, 32)
    res = iterate(torch.tensor(cue[None]), torch.tensor(patterns), beta=64.0, update_steps_max=10)
    np.testing.assert_allclose(res.state[0].numpy(), target, atol=1e-4)
    assert bool(res.converged[0])
    assert int(res.attention[0].argmax()) == 7
    assert float(entropy(res.attention)[0]) < 0.01


def test_small_beta_settles_on_the_mean_of_the_patterns(rng):
    patterns = _unit(rng, 1, 25, 8)
    res = iterate(torch.tensor(_unit(rng, 1, 8)), torch.tensor(patterns), beta=1e-6, update_steps_max=3)
    np.testing.assert_allclose(res.state[0].numpy(), patterns[0].mean(axis=0), atol=1e-5)
    assert float(entropy(res.attention)[0]) == pytest.approx(np.log(25), abs=1e-4)


def test_batched_iteration_equals_one_query_at_a_time(rng):
    patterns = torch.tensor(_unit(rng, 5, 20, 10), dtype=torch.float32)
    xi = torch.tensor(_unit(rng, 5, 10), dtype=torch.float32)
    batched = iterate(xi, patterns, 6.0, update_steps_max=4)
    for b in range(5):
        single = iterate(xi[b : b + 1], patterns[b : b + 1], 6.0, update_steps_max=4)
        torch.testing.assert_close(single.state[0], batched.state[b])
        assert int(single.steps[0]) == int(batched.steps[b])


def test_gram_form_follows_the_same_states_as_the_explicit_update(rng):
    """After xi_1 = X^T softmax(cue), iterate_gram must track iterate() exactly, energies included."""
    x = torch.tensor(_unit(rng, 2, 15, 9))
    cue = torch.tensor(rng.standard_normal((2, 15)))
    gram = x @ x.transpose(1, 2)
    mask = torch.ones(2, 15, dtype=torch.bool)
    got = iterate_gram(cue, gram, 5.0, mask, update_steps_max=4, update_steps_eps=0.0)
    xi1 = torch.einsum("bk,bkd->bd", torch.softmax(cue, -1), x)
    want = iterate(xi1, x, 5.0, update_steps_max=3, update_steps_eps=0.0)
    state = torch.einsum("bk,bkd->bd", got.weights, x)
    torch.testing.assert_close(state, want.state)
    torch.testing.assert_close(got.energies, want.energies)
    torch.testing.assert_close(got.scores, torch.einsum("bkd,bd->bk", x, want.state))


def test_gram_form_ignores_padded_patterns(rng):
    x = torch.tensor(_unit(rng, 1, 6, 5))
    gram = x @ x.transpose(1, 2)
    cue = torch.tensor(rng.standard_normal((1, 6)))
    padded_gram = torch.zeros(1, 9, 9, dtype=gram.dtype)
    padded_gram[:, :6, :6] = gram
    padded_cue = torch.cat([cue, torch.full((1, 3), 50.0, dtype=cue.dtype)], dim=1)
    mask = torch.tensor([[True] * 6 + [False] * 3])
    padded = iterate_gram(padded_cue, padded_gram, 3.0, mask, update_steps_max=3)
    plain = iterate_gram(cue, gram, 3.0, None, update_steps_max=3)
    torch.testing.assert_close(padded.weights[:, :6], plain.weights)
    assert float(padded.weights[:, 6:].abs().sum()) == 0.0
    torch.testing.assert_close(padded.energies, plain.energies)


def test_energy_is_nonnegative_with_its_constants(rng):
    patterns = torch.tensor(_unit(rng, 3, 10, 6))
    xi = torch.tensor(rng.standard_normal((3, 6)))
    assert (energy(xi, patterns, 2.0) >= -1e-9).all()
    weights = torch.softmax(torch.tensor(rng.standard_normal((3, 10))), -1)
    gram = patterns @ patterns.transpose(1, 2)
    assert (energy_gram(weights, gram, 2.0, torch.ones(3, 10, dtype=torch.bool)) >= -1e-9).all()
