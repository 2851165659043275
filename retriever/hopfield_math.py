"""Pure math of the modern Hopfield network (Ramsauer et al. 2020), batched in torch.

Names follow hopfield-layers: beta (inverse temperature), update_steps_max,
update_steps_eps. Shapes: patterns X is (B, K, d) -- K stored patterns per query --
and the state xi is (B, d). Nothing here knows about the knowledge base.
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
