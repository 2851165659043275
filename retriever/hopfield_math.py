"""Pure math of the modern Hopfield network (Ramsauer et al. 2020), batched in torch.

Names follow hopfield-layers: beta (inverse temperature), update_steps_max,
update_steps_eps. Shapes: patterns X is (B, K, d) -- K stored patterns per query --
and the state xi is (B, d). Nothing here knows about the knowledge base.

The *_gram functions are the same dynamics written for a state that lies in the
span of the patterns, xi = X^T a: then X xi = G a and xi.xi = a^T G a with the
Gram matrix G = X X^T (B, K, K), so the update never needs the d-dimensional
vectors. After the first update every state has that form, which is what lets
the reader mix sparse character n-gram patterns with dense ones cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def attention(xi: torch.Tensor, patterns: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """softmax(beta * X xi) over the K patterns: (B, K)."""
    beta = torch.as_tensor(beta, dtype=xi.dtype).reshape(-1, 1) if not isinstance(beta, float) else beta
    return torch.softmax(beta * torch.einsum("bkd,bd->bk", patterns, xi), dim=-1)


def update(xi: torch.Tensor, patterns: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """One Hopfield update xi <- X^T softmax(beta * X xi): (B, d)."""
    return torch.einsum("bk,bkd->bd", attention(xi, patterns, beta), patterns)


def energy(xi: torch.Tensor, patterns: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """E(xi) = -lse(beta, X xi) + 0.5 xi.xi + log(K)/beta + 0.5 M^2, M = max pattern norm: (B,).

    The constants make E >= 0 and do not change its minima; the update never increases E.
    """
    beta_t = torch.as_tensor(beta, dtype=xi.dtype).reshape(-1)
    scores = torch.einsum("bkd,bd->bk", patterns, xi)
    k = patterns.shape[1]
    lse = torch.logsumexp(beta_t.reshape(-1, 1) * scores, dim=-1) / beta_t
    big_m = patterns.norm(dim=-1).amax(dim=-1)
    return -lse + 0.5 * (xi * xi).sum(-1) + torch.log(torch.tensor(float(k), dtype=xi.dtype)) / beta_t + 0.5 * big_m**2


@dataclass(frozen=True)
class Retrieval:
    """Result of iterate(): final state (B, d), attention (B, K), energies (B, steps+1),
    steps taken per query (B,), and whether each query converged (B,)."""

    state: torch.Tensor
    attention: torch.Tensor
    energies: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor


def iterate(
    xi: torch.Tensor,
    patterns: torch.Tensor,
    beta: torch.Tensor | float,
    update_steps_max: int = 3,
    update_steps_eps: float = 1e-4,
) -> Retrieval:
    """Apply update() until the state moves less than update_steps_eps (L2) or
    update_steps_max steps are done. Queries that converged stop moving."""
    b = xi.shape[0]
    energies = [energy(xi, patterns, beta)]
    steps = torch.zeros(b, dtype=torch.long)
    done = torch.zeros(b, dtype=torch.bool)
    for _ in range(update_steps_max):
        new = update(xi, patterns, beta)
        moved = (new - xi).norm(dim=-1)
        xi = torch.where(done.unsqueeze(-1), xi, new)
        steps = steps + (~done).long()
        done = done | (moved < update_steps_eps)
        energies.append(energy(xi, patterns, beta))
        if bool(done.all()):
            break
    return Retrieval(
        state=xi,
        attention=attention(xi, patterns, beta),
        energies=torch.stack(energies, dim=1),
        steps=steps,
        converged=done,
    )


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of each row of p: (B,)."""
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


@dataclass(frozen=True)
class GramRetrieval:
    """Result of iterate_gram(): final weights a (B, K) with state xi = X^T a, scores X xi = G a (B, K),
    energies (B, steps+1) of xi_1 = X^T softmax(cue) and each later state, steps (B,), converged (B,)."""

    weights: torch.Tensor
    scores: torch.Tensor
    energies: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)


def energy_gram(weights: torch.Tensor, gram: torch.Tensor, beta: float, mask: torch.Tensor) -> torch.Tensor:
    """energy() of the state xi = X^T weights, from the Gram matrix alone: (B,)."""
    scores = torch.einsum("bkj,bj->bk", gram, weights)
    lse = torch.logsumexp((beta * scores).masked_fill(~mask, float("-inf")), dim=-1) / beta
    sq = torch.einsum("bk,bk->b", weights, scores)
    k = mask.sum(-1).to(gram.dtype)
    big_m2 = torch.diagonal(gram, dim1=-2, dim2=-1).masked_fill(~mask, 0).amax(-1)
    return -lse + 0.5 * sq + torch.log(k) / beta + 0.5 * big_m2


def iterate_gram(
    cue: torch.Tensor,
    gram: torch.Tensor,
    beta: float,
    mask: torch.Tensor | None = None,
    update_steps_max: int = 5,
    update_steps_eps: float = 1e-4,
) -> GramRetrieval:
    """Hopfield dynamics from a cue given as attention logits over the K patterns.

    cue: (B, K) -- beta * X xi_0 for some query state xi_0, or any evidence on that scale.
    gram: (B, K, K) = X X^T; mask: (B, K) True for real patterns (rows padded with False are ignored).
    The first update gives xi_1 = X^T softmax(cue); then xi <- X^T softmax(beta X xi) until the
    state moves less than update_steps_eps (L2) or update_steps_max updates in all.
    """
    mask = torch.ones(cue.shape, dtype=torch.bool) if mask is None else mask
    weights = _masked_softmax(cue, mask)
    energies = [energy_gram(weights, gram, beta, mask)]
    b = cue.shape[0]
    steps = torch.ones(b, dtype=torch.long)
    done = torch.zeros(b, dtype=torch.bool)
    for _ in range(max(update_steps_max - 1, 0)):
        scores = torch.einsum("bkj,bj->bk", gram, weights)
        new = _masked_softmax(beta * scores, mask)
        diff = new - weights
        moved = torch.einsum("bk,bkj,bj->b", diff, gram, diff).clamp_min(0).sqrt()
        weights = torch.where(done.unsqueeze(-1), weights, new)
        steps = steps + (~done).long()
        done = done | (moved < update_steps_eps)
        energies.append(energy_gram(weights, gram, beta, mask))
        if bool(done.all()):
            break
    scores = torch.einsum("bkj,bj->bk", gram, weights)
    return GramRetrieval(weights=weights, scores=scores, energies=torch.stack(energies, dim=1), steps=steps, converged=done)
