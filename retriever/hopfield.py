"""The Hopfield reader: candidates become stored patterns, the query state settles on one.

Each candidate chunk c is stored as a pattern x_c = [dense_c ; w * char_c] / sqrt(1 + w^2):
its sentence embedding beside its character n-gram TF-IDF vector. The char half
is what a garbled query still shares with its passage, so the garbled cue starts
inside the right basin; the update xi <- X^T softmax(beta X xi) then pulls the
state onto the stored pattern. Passages are ranked by X xi* at the settled state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kb import KBError
from retriever.base import Ranked, Retriever, top_k
from retriever.baselines import candidate_positions, dense_candidates
from retriever.hopfield_math import entropy, iterate
from retriever.results import Diagnostics


@dataclass(frozen=True)
class HopfieldConfig:
    """beta: inverse temperature (unitless; larger = settle on one pattern). update_steps_max:
    most updates per query; update_steps_eps: stop when the state moves less (L2).
    char_weight: weight w of the char n-gram half of each pattern."""

    beta: float = 20.0
    update_steps_max: int = 3
    update_steps_eps: float = 1e-4
    char_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise KBError(f"beta must be > 0 (try 8 to 32), not {self.beta}")
        if self.update_steps_max < 0:
            raise KBError(f"update_steps_max must be >= 0, not {self.update_steps_max}")
        if self.update_steps_eps < 0:
            raise KBError(f"update_steps_eps must be >= 0, not {self.update_steps_eps}")
        if self.char_weight < 0:
            raise KBError(f"char_weight must be >= 0, not {self.char_weight}")


class HopfieldRetriever(Retriever):
    """Modern-Hopfield reranking over dense + char candidates; see the module docstring."""

    name = "hopfield"

    def __init__(self, *args, config: HopfieldConfig = HopfieldConfig(), **kwargs):
        super().__init__(*args, **kwargs)
        self.config = config

    def _rank(self, corpus, queries, qvecs, k):
        cfg = self.config
        dense_ids, _ = dense_candidates(corpus, qvecs, self.candidates)
        qchar = corpus.char_query(queries)
        char_all = np.asarray((qchar @ corpus.char_matrix.T).todense(), dtype=np.float32)
        out = []
        scale = 1.0 / np.sqrt(1.0 + cfg.char_weight**2)
        for b in range(len(queries)):
            pos = candidate_positions(corpus, dense_ids[b], char_all[b], self.candidates)
            cand_char = corpus.char_matrix[pos]
            cols = np.union1d(cand_char.indices, qchar[b].indices)
            patterns = np.hstack([np.asarray(corpus.snapshot.vectors[pos]),
                                  cfg.char_weight * cand_char[:, cols].toarray()]) * scale
            state = np.concatenate([qvecs[b], cfg.char_weight * qchar[b][:, cols].toarray()[0]]) * scale
            res = iterate(torch.from_numpy(state[None, :].astype(np.float32)),
                          torch.from_numpy(patterns[None, :, :].astype(np.float32)),
                          cfg.beta, cfg.update_steps_max, cfg.update_steps_eps)
            settled = (patterns @ res.state[0].numpy()).astype(np.float32)
            ids, scores = top_k(settled, corpus.ids[pos], k)
            diag = Diagnostics(beta=cfg.beta, steps=int(res.steps[0]), converged=bool(res.converged[0]),
                               energy=tuple(float(e) for e in res.energies[0]),
                               entropy=float(entropy(res.attention)[0]), candidates=len(pos))
            out.append(Ranked(ids, scores, diag))
        return out
