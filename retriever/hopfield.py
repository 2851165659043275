"""The Hopfield reader: a dense reader that leans on characters only as far as the question is garbled.

1. Query repair (retriever.vocabulary): words neither the KB nor an English dictionary
   knows are corrupted cues that settle on the KB's own words. Their share of the
   question is its garble level g (0 for a question typed correctly, however loosely
   worded; see Repair.garble).
2. Passage memory: the candidates (FAISS top-K of the repaired question united with its
   BM25 top-K) are stored as patterns, their dense
   embeddings x_c. The cue is the candidates' evidence, each view z-scored over them:
       z(dense of the repaired question) + bm25_weight * z(BM25 of the repaired question)
       + s * char_weight * z(char n-gram TF-IDF of the question as typed),
   with the gate s = min(1, max(g / garble_full, (rarest IDF - rare_idf) / rare_width)),
   and the state follows
   xi <- X^T softmax(beta X xi) until it stops moving: it settles on what the question
   means, a blend of the passages the evidence agrees on.
3. Ranking rule: z(evidence) + settled_weight * z(X xi*): the settled state lifts passages
   close in meaning to the ones the evidence agrees on.
4. Question memory (retriever.question_recall), when the KB has one: earlier questions confirmed to be
   answered by a passage are a second memory; the question recalls them by one Hopfield step, and each
   passage's recalled mass m_c (0..1) joins the candidates and the cue as + memory_weight * m_c.
   An empty memory changes nothing.

Why the gate: characters rescue a garbled question (its dense embedding is noise) but
mislead a clean one that is worded differently from the passage, pulling it toward a
sibling passage that shares more of its letters. Measured on real user questions
(covidfaq) and SciFact, a fixed character weight lost to plain dense search on clean,
truncated and shortened questions; gated by g it does not (README, "Retrieval quality";
`python -m eval.ablation` reproduces the ablation). The second term opens the gate for a
question naming a word rare enough that only a large KB holds it (SciFact's "chenodeoxycholic"):
there the characters helped even clean questions. BM25 over repaired words stays on: word
matches helped or tied on every set and condition at this weight.

beta is unitless: the evidence is z-scored and the Gram matrix X X^T divided by
its standard deviation over the candidates, so one default works across KBs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from kb import KBError, blas_for, one_blas_thread
from retriever.base import Ranked, Retriever, top_k
from retriever.baselines import candidate_positions, dense_candidates, zscore
from retriever.beside import beside
from retriever.conversation import Context, visited_recall
from retriever.hopfield_gram import entropy, iterate_gram
from retriever.question_recall import QuestionRecall, Recall
from retriever.results import Diagnostics
from retriever.vocabulary import Repair


@dataclass(frozen=True)
class HopfieldConfig:
    """beta: inverse temperature of the passage memory, in units of the candidates' spread
    (larger settles on fewer passages). update_steps_max: most updates per query;
    update_steps_eps: stop when the state moves less than this (L2).
    settled_weight: weight of the settled state's scores in the ranking (0 = evidence only).
    bm25_weight: weight of BM25 (repaired words) in the cue, relative to dense (1).
    char_weight: weight of the character n-gram view in the cue at full garble;
    garble_full: garble level (unknown words / words) at which it reaches its full weight;
    rare_idf, rare_width: the character view also opens, from 0 at IDF rare_idf to full at
    rare_idf + rare_width, when the question names a KB word that rare (IDF = ln((N+1)/(n+0.5)),
    n its occurrences in N chunks): only KBs of ~1,000+ chunks hold such words at all, and there a
    rare technical term is what the small embedding model blurs and the characters catch.
    gated: False turns the character view fully on for every question (the reader before the
    gate, kept for the ablation).
    repair: repair unknown words first; repair_beta, repair_prior, repair_min_similarity: the
    vocabulary memory's inverse temperature (over cosines in [0, 1]), log-frequency weight and
    the cosine a far repair must reach (see retriever.vocabulary).
    memory_weight: weight of the question memory's recalled mass in the cue (0 turns it off; the recall
    settings were chosen on covidfaq replays with split seed 1, reported with seed 0);
    memory_beta, memory_threshold: inverse temperature and null-pattern similarity of its recall step
    (memory_threshold 0.6 since 2026-12-05, was 0.5: chosen on the calibration questions, half replayed and
    half asked, where 0.5 let a question worded like a confirmed one borrow its passage; eval.answer_memory);
    memory_char_share: share of the character view in its similarity at full character gate
    (see retriever.question_recall)."""

    beta: float = 2.0
    update_steps_max: int = 5
    update_steps_eps: float = 1e-4
    settled_weight: float = 0.3
    bm25_weight: float = 0.25
    char_weight: float = 0.5
    garble_full: float = 0.25
    rare_idf: float = 6.0
    rare_width: float = 0.5
    gated: bool = True
    repair: bool = True
    repair_beta: float = 40.0
    repair_prior: float = 0.02
    repair_min_similarity: float = 0.6
    memory_weight: float = 8.0
    memory_beta: float = 20.0
    memory_threshold: float = 0.6
    memory_char_share: float = 0.25

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, (int, float)) and np.isfinite(self.beta) and self.beta > 0):
            raise KBError(f"beta must be a finite number > 0 (try 2 to 8), not {self.beta}")
        if self.update_steps_max < 1:
            raise KBError(f"update_steps_max must be >= 1, not {self.update_steps_max}")
        if self.update_steps_eps < 0:
            raise KBError(f"update_steps_eps must be >= 0, not {self.update_steps_eps}")
        for name in ("settled_weight", "bm25_weight", "char_weight", "memory_weight"):
            if not getattr(self, name) >= 0:
                raise KBError(f"{name} must be >= 0, not {getattr(self, name)}")
        if not 0 < self.garble_full <= 1:
            raise KBError(f"garble_full must be in (0, 1], not {self.garble_full}")
        if not self.repair_beta > 0:
            raise KBError(f"repair_beta must be > 0, not {self.repair_beta}")

    def gate(self, garble: float, rarest_idf: float = 0.0) -> float:
        """How far the character view is switched on (0..1) for a question of garble level g whose
        rarest KB word has IDF rarest_idf."""
        if not self.gated:
            return 1.0
        rare = (rarest_idf - self.rare_idf) / self.rare_width
        return float(min(1.0, max(garble / self.garble_full, rare, 0.0)))


@dataclass(frozen=True)
class _Cue:
    """One query's candidates (snapshot rows), z-scored evidence, and scaled Gram matrix."""

    positions: np.ndarray
    evidence: np.ndarray
    gram: np.ndarray


class HopfieldRetriever(Retriever):
    """Modern-Hopfield reader over dense + lexical candidates; see the module docstring."""

    name = "hopfield"
    reads_context = True

    def __init__(self, *args, config: HopfieldConfig = HopfieldConfig(), memory="kb", **kwargs):
        """memory: "kb" (the KB's own question memory), None (none), or a kb.QuestionMemory."""
        super().__init__(*args, **kwargs)
        self.config = config
        if memory == "kb":
            from kb import QuestionMemory

            memory = QuestionMemory(self.kb)
        self.recall = QuestionRecall(memory) if memory is not None and config.memory_weight > 0 else None

    def _repairs(self, corpus, queries: list[str]) -> list[Repair]:
        """Each query's Repair (unrepaired ones when config.repair is off)."""
        cfg = self.config
        if not cfg.repair:
            return [corpus.vocabulary.unrepaired(q) for q in queries]
        return [corpus.vocabulary.repair(q, cfg.repair_beta, cfg.repair_prior, cfg.repair_min_similarity) for q in queries]

    def _repaired_vectors(self, repairs: list[Repair], qvecs: np.ndarray) -> np.ndarray:
        """The embeddings of the repaired texts: qvecs, re-embedded only where a repair changed the text."""
        changed = [i for i, r in enumerate(repairs) if r.changes]
        if not changed:
            return qvecs
        rvecs = qvecs.copy()
        rvecs[changed] = self.embed_queries([repairs[i].text for i in changed])
        return rvecs

    def _lexical(self, corpus, repairs: list[Repair], allowed) -> Callable[[], list[np.ndarray]]:
        """A function giving each repaired query's BM25 top candidates (snapshot rows); on a large KB they are
        scored in the helper thread meanwhile (retriever.beside), while the repairs are embedded and FAISS searches."""
        return beside(lambda: [corpus.bm25_top(r.text, self.candidates, allowed)[0] for r in repairs], corpus.snapshot.size)

    def _cue(
        self, corpus, dense_ids, lexical, rvec, repair: Repair, query: str, gate: float, recall: Recall | None = None
    ) -> _Cue:
        cfg = self.config
        pos = candidate_positions(corpus, dense_ids, lexical)
        if recall is not None:  # the passages earlier questions like this one were answered by join the candidates
            recalled = corpus.snapshot.positions(recall.chunk_ids)
            pos = np.union1d(pos, recalled[recalled >= 0]).astype(np.int64)
        dense = np.asarray(corpus.snapshot.vectors[pos])
        evidence = zscore(dense @ rvec) + cfg.bm25_weight * zscore(corpus.bm25_at(repair.text, pos))
        if gate > 0:  # the character view costs a read of the candidates' n-grams: only when it counts
            evidence = evidence + gate * cfg.char_weight * zscore(corpus.char_at(query, pos))
        if recall is not None:
            evidence = evidence + cfg.memory_weight * _mass_at(corpus.ids[pos], recall)
        with one_blas_thread():
            gram = dense @ dense.T
        spread = gram.std()
        return _Cue(pos, zscore(evidence).astype(np.float32), (gram / (spread if spread > 1e-9 else 1.0)).astype(np.float32))

    def _rank(self, corpus, queries, qvecs, k, allowed=None, contexts=None):
        """Each query ranked alone, or, where it has a conversation Context, fused with the same reader's
        ranking of the turn in its context and the visited passages' recall (retriever.conversation)."""
        at = [b for b, c in enumerate(contexts or ()) if c is not None and c.views]
        if not at:
            return self._rank_alone(corpus, queries, qvecs, k, allowed)
        texts, vectors, slots = list(queries), [qvecs], {}
        for b in at:  # every reading of every turn goes through one batched pass of the reader
            slots[b] = list(range(len(texts), len(texts) + len(contexts[b].views)))
            texts += [text for text, _, _ in contexts[b].views]
            vectors.append(np.stack([vector for _, vector, _ in contexts[b].views]))
        ranked = self._rank_alone(corpus, texts, np.vstack(vectors), max(k, self.candidates), allowed)
        out = [Ranked(r.ids[:k], r.scores[:k], r.diagnostics) for r in ranked[: len(queries)]]
        for b in at:
            out[b] = self._with_context(corpus, ranked[b], [ranked[i] for i in slots[b]], contexts[b], k)
        return out

    @staticmethod
    def _with_context(corpus, alone: Ranked, views: list[Ranked], context: Context, k: int) -> Ranked:
        ids = np.union1d(alone.ids, np.concatenate([v.ids for v in views])).astype(np.int64)
        score = _scores_at(ids, alone)
        scale = context.switch_scale if context.novel and _margin(alone) >= context.switch_margin else 1.0
        for (_, _, weight), view in zip(context.views, views):
            score = score + scale * weight * _scores_at(ids, view)
        visited = corpus.snapshot.positions(context.visited)
        keep = visited >= 0
        if context.visited_weight > 0 and keep.any() and len(ids):
            rows = np.asarray(corpus.snapshot.vectors[corpus.snapshot.positions(ids)])
            patterns = np.asarray(corpus.snapshot.vectors[visited[keep]])
            recall = visited_recall(rows, patterns, context.visited_log_weights[keep], context.visited_beta)
            score = score + scale * context.visited_weight * zscore(recall)
        best, scores = top_k(score.astype(np.float32), ids, k)
        diag = replace(alone.diagnostics, history_scale=scale) if alone.diagnostics is not None else None
        return Ranked(best, scores, diag)

    def _rank_alone(self, corpus, queries, qvecs, k, allowed=None):
        with blas_for(len(queries)):  # a question's products are small: a second BLAS thread woken for each costs more
            return self._rank_each(corpus, queries, qvecs, k, allowed)

    def _rank_each(self, corpus, queries, qvecs, k, allowed=None):
        cfg = self.config
        repairs = self._repairs(corpus, queries)
        lexical = self._lexical(corpus, repairs, allowed)
        rvecs = self._repaired_vectors(repairs, qvecs)
        dense_ids, _ = dense_candidates(corpus, rvecs, self.candidates, allowed)
        tops = lexical()
        gates = [cfg.gate(r.garble, corpus.vocabulary.rarest_idf(r.text, corpus.snapshot.size)) for r in repairs]
        recalls = (
            self.recall.lookup(
                corpus.snapshot.token,
                rvecs,
                queries,
                gates,
                cfg.memory_beta,
                cfg.memory_threshold,
                cfg.memory_char_share,
                allowed,
            )
            if self.recall is not None
            else None
        ) or [None] * len(queries)
        cues = [
            self._cue(corpus, dense_ids[b], tops[b], rvecs[b], repairs[b], queries[b], gates[b], recalls[b])
            for b in range(len(queries))
        ]
        if not any(len(c.positions) for c in cues):
            return [Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32), None) for _ in cues]
        width = max(len(c.positions) for c in cues)
        cue_t = np.zeros((len(cues), width), dtype=np.float32)
        gram_t = np.zeros((len(cues), width, width), dtype=np.float32)
        mask = np.zeros((len(cues), width), dtype=bool)
        for b, c in enumerate(cues):
            n = len(c.positions)
            cue_t[b, :n] = cfg.beta * c.evidence
            gram_t[b, :n, :n] = c.gram
            mask[b, : max(n, 1)] = True  # a query a filter left without candidates gets a dummy row, dropped below
        res = iterate_gram(cue_t, gram_t, cfg.beta, mask, cfg.update_steps_max, cfg.update_steps_eps)
        ent = entropy(res.weights)
        out = []
        for b, c in enumerate(cues):
            n = len(c.positions)
            if n == 0:
                out.append(Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32), None))
                continue
            settled = res.scores[b, :n]
            score = c.evidence + cfg.settled_weight * zscore(settled)
            ids, scores = top_k(score, corpus.ids[c.positions], k)
            steps = int(res.steps[b])
            diag = Diagnostics(
                beta=cfg.beta,
                steps=steps,
                converged=bool(res.converged[b]),
                energy=tuple(float(e) for e in res.energies[b, :steps]),
                entropy=float(ent[b]),
                candidates=n,
                repairs=repairs[b].changes,
                query_used=repairs[b].text,
                garble=repairs[b].garble,
                char_gate=gates[b],
                memory=recalls[b].suggestions if recalls[b] is not None else (),
            )
            out.append(Ranked(ids, scores, diag))
        return out


def _margin(ranked: Ranked) -> float:
    """How far the best passage stands out: its z-score (over the ranked list) minus the second's."""
    if len(ranked.scores) < 2:
        return float("inf")
    z = zscore(ranked.scores.astype(np.float64))
    return float(z[0] - z[1])


def _scores_at(ids: np.ndarray, ranked: Ranked) -> np.ndarray:
    """ranked's scores z-scored over its own list, at ids (sorted); ids it lacks get its lowest."""
    z = zscore(ranked.scores.astype(np.float64)) if len(ranked.ids) else np.zeros(0)
    out = np.full(len(ids), z.min() if len(z) else 0.0)
    out[np.searchsorted(ids, ranked.ids)] = z
    return out


def _mass_at(chunk_ids: np.ndarray, recall: Recall) -> np.ndarray:
    """The recalled mass of each of chunk_ids (0 for chunks the memory did not suggest)."""
    mass = dict(zip(recall.chunk_ids.tolist(), recall.mass.tolist()))
    return np.array([mass.get(int(i), 0.0) for i in chunk_ids], dtype=np.float32)
