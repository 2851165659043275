"""The Hopfield reader: two associative memories between a garbled question and its passage.

1. Query repair (retriever.vocabulary): the KB's words are stored patterns; each
   unknown query word is a corrupted cue that settles on a stored word.
2. Passage memory: the candidates (FAISS top-K of the repaired query united with
   the character n-gram top-K of the original) are stored as patterns
   x_c = [dense_c ; char_c] / sqrt(2), char_c count-sketched to 1024 dims (which
   keeps inner products, so the K x K Gram matrix is cheap). The cue is the
   candidates' evidence (cosine of the repaired and the original query embedding,
   character n-gram TF-IDF cosine of the original, BM25 of the repaired), each
   z-scored over the candidates, so a garbled query still starts in its passage's
   basin. The state then follows xi <- X^T softmax(beta X xi) until it stops moving.
3. Ranking rule: z(evidence) + settled_weight * z(X xi*), the evidence plus where
   the state settled. The settled state pulls up passages close to the ones the
   evidence agrees on, which is what recovers a passage whose own match to a
   garbled question is weak.

beta is unitless: the evidence is z-scored and the Gram matrix X X^T divided by
its standard deviation over the candidates, so one default works across KBs.
Defaults were measured on SciFact test (see README, "Retrieval quality").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kb import KBError
from retriever.base import Ranked, Retriever, top_k
from retriever.baselines import candidate_positions, dense_candidates, zscore
from retriever.hopfield_math import entropy, iterate_gram
from retriever.results import Diagnostics

# Weights of the z-scored evidence in the cue: repaired dense, original dense, char n-grams,
# BM25 of the repaired query. Measured on SciFact; the original dense view is kept at half
# weight because a repair can be wrong.
EVIDENCE_WEIGHTS = (1.0, 0.5, 1.0, 0.5)


@dataclass(frozen=True)
class HopfieldConfig:
    """beta: inverse temperature of the passage memory, in units of the candidates' spread
    (larger settles on fewer passages). update_steps_max: most updates per query;
    update_steps_eps: stop when the state moves less than this (L2).
    settled_weight: weight of the settled state's scores in the ranking (0 = evidence only).
    repair: repair unknown query words first; repair_beta, repair_prior: the vocabulary
    memory's inverse temperature (over cosines in [0, 1]) and log-frequency weight."""

    beta: float = 4.0
    update_steps_max: int = 5
    update_steps_eps: float = 1e-4
    settled_weight: float = 0.6
    repair: bool = True
    repair_beta: float = 40.0
    repair_prior: float = 0.02

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, (int, float)) and np.isfinite(self.beta) and self.beta > 0):
            raise KBError(f"beta must be a finite number > 0 (try 2 to 8), not {self.beta}")
        if self.update_steps_max < 1:
            raise KBError(f"update_steps_max must be >= 1, not {self.update_steps_max}")
        if self.update_steps_eps < 0:
            raise KBError(f"update_steps_eps must be >= 0, not {self.update_steps_eps}")
        if self.settled_weight < 0:
            raise KBError(f"settled_weight must be >= 0, not {self.settled_weight}")
        if not self.repair_beta > 0:
            raise KBError(f"repair_beta must be > 0, not {self.repair_beta}")


@dataclass(frozen=True)
class _Cue:
    """One query's candidates (snapshot rows), z-scored evidence, and scaled Gram matrix."""

    positions: np.ndarray
    evidence: np.ndarray
    gram: np.ndarray


class HopfieldRetriever(Retriever):
    """Modern-Hopfield reader over dense + lexical candidates; see the module docstring."""

    name = "hopfield"

    def __init__(self, *args, config: HopfieldConfig = HopfieldConfig(), **kwargs):
        super().__init__(*args, **kwargs)
        self.config = config

    def _repair(self, corpus, queries: list[str], qvecs: np.ndarray):
        """Repaired queries, their embeddings, and the (garbled, stored) word pairs per query."""
        cfg = self.config
        if not cfg.repair:
            return queries, qvecs, [()] * len(queries)
        repairs = [corpus.vocabulary.repair(q, cfg.repair_beta, cfg.repair_prior) for q in queries]
        texts = [r.text for r in repairs]
        changed = [i for i, r in enumerate(repairs) if r.changes]
        rvecs = qvecs.copy()
        if changed:
            rvecs[changed] = self.embed_queries([texts[i] for i in changed])
        return texts, rvecs, [r.changes for r in repairs]

    def _cue(self, corpus, b, dense_ids, qvec, rvec, char_row, bm25_row) -> _Cue:
        pos = candidate_positions(corpus, dense_ids, char_row, self.candidates)
        dense = np.asarray(corpus.snapshot.vectors[pos])
        views = (dense @ rvec, dense @ qvec, char_row[pos], bm25_row[pos])
        evidence = zscore(sum(w * zscore(v) for w, v in zip(EVIDENCE_WEIGHTS, views)))
        chars = corpus.char_sketch[pos]  # inner products of char_matrix rows, up to the sketch's noise
        gram = 0.5 * (dense @ dense.T) + 0.5 * (chars @ chars.T)
        spread = gram.std()
        return _Cue(pos, evidence.astype(np.float32), (gram / (spread if spread > 1e-9 else 1.0)).astype(np.float32))

    def _rank(self, corpus, queries, qvecs, k):
        cfg = self.config
        texts, rvecs, changes = self._repair(corpus, queries, qvecs)
        dense_ids, _ = dense_candidates(corpus, rvecs, self.candidates)
        char = corpus.char_scores(queries)
        cues = [self._cue(corpus, b, dense_ids[b], qvecs[b], rvecs[b], char[b], corpus.bm25_scores(texts[b]))
                for b in range(len(queries))]
        width = max(len(c.positions) for c in cues)
        cue_t = torch.zeros(len(cues), width)
        gram_t = torch.zeros(len(cues), width, width)
        mask = torch.zeros(len(cues), width, dtype=torch.bool)
        for b, c in enumerate(cues):
            n = len(c.positions)
            cue_t[b, :n] = torch.from_numpy(cfg.beta * c.evidence)
            gram_t[b, :n, :n] = torch.from_numpy(c.gram)
            mask[b, :n] = True
        res = iterate_gram(cue_t, gram_t, cfg.beta, mask, cfg.update_steps_max, cfg.update_steps_eps)
        ent = entropy(res.weights)
        out = []
        for b, c in enumerate(cues):
            n = len(c.positions)
            settled = res.scores[b, :n].numpy()
            score = c.evidence + cfg.settled_weight * zscore(settled)
            ids, scores = top_k(score, corpus.ids[c.positions], k)
            steps = int(res.steps[b])
            diag = Diagnostics(beta=cfg.beta, steps=steps, converged=bool(res.converged[b]),
                               energy=tuple(float(e) for e in res.energies[b, :steps]),
                               entropy=float(ent[b]), candidates=n, repairs=changes[b],
                               query_used=texts[b])
            out.append(Ranked(ids, scores, diag))
        return out
