"""The reader's Hopfield dynamics over a Gram matrix in numpy: hopfield_math.iterate_gram without torch.

The reader runs these (float32, as the torch functions do), so answering a question never imports torch
(~1 s of a fresh `kb ask`); retriever.hopfield_math keeps the torch originals, the reference that
tests/test_hopfield_gram.py holds these equal to (1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GramRetrieval:
    """iterate_gram's result: final weights a (B, K) with state xi = X^T a, scores X xi = G a (B, K),
    energies (B, steps+1) of xi_1 = X^T softmax(cue) and each later state, steps (B,), converged (B,)."""

    weights: np.ndarray
    scores: np.ndarray
    energies: np.ndarray
    steps: np.ndarray
    converged: np.ndarray


def _masked_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits, -np.inf)
    z = np.exp(z - z.max(-1, keepdims=True))
    out: np.ndarray = z / z.sum(-1, keepdims=True)
    return out


def _logsumexp(z: np.ndarray) -> np.ndarray:
    top = z.max(-1)
    out: np.ndarray = top + np.log(np.exp(z - top[:, None]).sum(-1))
    return out


def energy_gram(weights: np.ndarray, gram: np.ndarray, beta: float, mask: np.ndarray) -> np.ndarray:
    """Energy of the state xi = X^T weights from the Gram matrix alone: (B,) (hopfield_math.energy_gram)."""
    beta32 = np.float32(beta)
    scores = np.einsum("bkj,bj->bk", gram, weights)
    lse = _logsumexp(np.where(mask, beta32 * scores, -np.inf)) / beta32
    sq = np.einsum("bk,bk->b", weights, scores)
    k = mask.sum(-1).astype(gram.dtype)
    big_m2 = np.where(mask, np.diagonal(gram, axis1=-2, axis2=-1), 0).max(-1)
    out: np.ndarray = -lse + np.float32(0.5) * sq + np.log(k) / beta32 + np.float32(0.5) * big_m2
    return out


def iterate_gram(
    cue: np.ndarray,
    gram: np.ndarray,
    beta: float,
    mask: np.ndarray | None = None,
    update_steps_max: int = 5,
    update_steps_eps: float = 1e-4,
) -> GramRetrieval:
    """Hopfield dynamics from a cue given as attention logits over the K patterns (see hopfield_math.iterate_gram).

    cue: (B, K) float32; gram: (B, K, K) = X X^T float32; mask: (B, K) True for real patterns.
    """
    mask = np.ones(cue.shape, dtype=bool) if mask is None else mask
    beta32 = np.float32(beta)
    weights = _masked_softmax(cue, mask)
    energies = [energy_gram(weights, gram, beta, mask)]
    b = cue.shape[0]
    steps = np.ones(b, dtype=np.int64)
    done = np.zeros(b, dtype=bool)
    for _ in range(max(update_steps_max - 1, 0)):
        scores = np.einsum("bkj,bj->bk", gram, weights)
        new = _masked_softmax(beta32 * scores, mask)
        diff = new - weights
        moved = np.sqrt(np.maximum(np.einsum("bk,bkj,bj->b", diff, gram, diff), 0))
        weights = np.where(done[:, None], weights, new)
        steps = steps + (~done).astype(np.int64)
        done = done | (moved < update_steps_eps)
        energies.append(energy_gram(weights, gram, beta, mask))
        if bool(done.all()):
            break
    scores = np.einsum("bkj,bj->bk", gram, weights)
    return GramRetrieval(weights=weights, scores=scores, energies=np.stack(energies, axis=1), steps=steps, converged=done)


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of p: (B,)."""
    out: np.ndarray = -(p * np.log(np.maximum(p, np.float32(1e-30)))).sum(-1)
    return out
