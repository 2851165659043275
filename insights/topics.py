"""Grouping gap questions into topics: the project's Hopfield attractors, or scikit-learn's HDBSCAN.

Hopfield (the default): the stored patterns X (N, d) are the unit embeddings of the period's gap questions.
Each question's embedding is iterated `steps` times by the modern Hopfield update
xi <- X^T softmax(beta X xi) (retriever.hopfield_math.update; see hopfield_states) and the states that settle on the same
attractor (cosine >= `same_cosine` between final states) form one topic. beta (an inverse temperature on
cosines) sets the grain: small beta pulls everything to the mean, large beta leaves each question alone.
beta 40: on covidfaq's gap questions (python -m insights.measure) beta 20 merged unrelated questions into two
topics of 80 and 63 (top-10 purity 0.31), beta 40 kept them apart (largest 30, purity 0.33), each covering 4
removed entries; HDBSCAN covered 3 (purity 0.36). Neither met the issue's goals (see the measurement).

HDBSCAN: scikit-learn's density clustering on the same unit vectors (euclidean distance on unit vectors is
monotone in cosine), min_cluster_size questions at least; its noise points become topics of one.

Both return one integer label per question (0..T-1); topics are numbered by size, largest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kb import KBError

METHODS = ("hopfield", "hdbscan")


@dataclass(frozen=True)
class TopicConfig:
    """method: "hopfield" or "hdbscan". beta: inverse temperature of the Hopfield update over cosines;
    steps: Hopfield updates per question; same_cosine: final states at least this close share an attractor.
    min_cluster_size: HDBSCAN's smallest topic (questions)."""

    method: str = "hopfield"
    beta: float = 40.0
    steps: int = 8
    same_cosine: float = 0.95
    min_cluster_size: int = 3

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise KBError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not self.beta > 0:
            raise KBError(f"beta must be > 0, not {self.beta}")
        if self.steps < 1:
            raise KBError(f"steps must be at least 1, not {self.steps}")
        if not 0.0 < self.same_cosine <= 1.0:
            raise KBError(f"same_cosine must be in (0, 1], not {self.same_cosine}")
        if self.min_cluster_size < 2:
            raise KBError(f"min_cluster_size must be at least 2, not {self.min_cluster_size}")


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


EXACT_UP_TO = 1024  # distinct questions: above this, each update reads only its NEIGHBOURS nearest patterns
NEIGHBOURS = 48


def _distinct(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct rows in order of first appearance, how often each appears, each row's index into them)."""
    _, first, inverse, counts = np.unique(x, axis=0, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return x[first[order]], counts[order], rank[np.asarray(inverse).reshape(-1)]


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """The k nearest rows of each row by cosine (itself included): (N, k) row numbers, by FAISS's exact
    inner-product search (one blocked product; measured faster here than building an HNSW graph at 12k rows)."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, ids = index.search(x, k)
    return np.where(ids < 0, np.arange(len(x))[:, None], ids)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _distinct_states(
    x: np.ndarray, counts: np.ndarray, beta: float, steps: int, batch: int, exact_up_to: int, neighbours: int
) -> np.ndarray:
    """The update over distinct patterns, each weighted by its count: softmax(beta X xi + log count) equals the
    softmax over the repeated rows, so the states are those of the full update. Above exact_up_to patterns,
    each question's updates read only its `neighbours` nearest patterns (a top-k sparse softmax: at beta 40 a
    pattern 0.2 of cosine further than the nearest weighs e^-8 of it), in numpy (torch's batched small
    products were 8x slower here)."""
    logc = np.log(counts).astype(np.float32)
    if len(x) > exact_up_to:
        near = _neighbours(x, min(neighbours, len(x)))
        out = []
        for start in range(0, len(x), 512):  # (512, neighbours, d) gathered patterns: bounded memory
            rows = near[start : start + 512]
            patterns, weights, xi = x[rows], logc[rows], x[start : start + 512]
            for _ in range(steps):
                p = _softmax(beta * np.einsum("bkd,bd->bk", patterns, xi) + weights)
                xi = np.einsum("bk,bkd->bd", p, patterns)
            out.append(xi)
        return np.concatenate(out).astype(np.float32)
    import torch  # here, not at the top: `kb ask` imports this package with the CLI and must not load torch

    u, logc_t = torch.from_numpy(x), torch.from_numpy(logc)
    states = []
    for start in range(0, len(u), batch):
        state = u[start : start + batch]
        for _ in range(steps):
            state = torch.softmax(beta * (state @ u.T) + logc_t, dim=-1) @ u
        states.append(state)
    return torch.cat(states).numpy()


def hopfield_states(
    vectors: np.ndarray,
    beta: float,
    steps: int,
    batch: int = 1024,
    exact_up_to: int = EXACT_UP_TO,
    neighbours: int = NEIGHBOURS,
) -> np.ndarray:
    """Each row of vectors iterated `steps` Hopfield updates over all rows as the stored patterns: (N, d).

    The update of retriever.hopfield_math.update, xi <- X^T softmax(beta X xi), written as two matrix products
    over the one shared X (hopfield_math takes a (B, K, d) copy of the patterns per query), computed once per
    distinct row (repeats weigh in by their count): memory batch x distinct rows."""
    x = unit(vectors)
    if len(x) == 0:
        return np.zeros_like(x)
    distinct, counts, row = _distinct(x)
    return _distinct_states(distinct, counts, beta, steps, batch, exact_up_to, neighbours)[row]


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel so that topic 0 is the largest (ties: the one whose first question comes first)."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(len(uniq)), key=lambda i: (-counts[i], first[i]))
    mapping = np.empty(int(uniq.max()) + 1, np.int64)
    mapping[uniq[order]] = np.arange(len(order))
    return mapping[labels]


def _attractors(states: np.ndarray, same_cosine: float, block: int = 512) -> np.ndarray:
    """Greedy over the states in order: a state joins the first attractor (anchor) it is within same_cosine of,
    the closest when several are (ties: the older), else it becomes a new anchor. Blocks of states are compared
    with the anchors so far in one product; only a block's own new anchors are compared one by one."""
    labels = np.empty(len(states), np.int64)
    anchors = np.empty_like(states)
    n = 0
    for start in range(0, len(states), block):
        part = states[start : start + block]
        old = part @ anchors[:n].T if n else np.full((len(part), 1), -np.inf, np.float32)
        old_best, old_sim = old.argmax(axis=1), old.max(axis=1)
        first_new = n
        for i, s in enumerate(part):
            j, sim = int(old_best[i]), float(old_sim[i])
            if n > first_new:
                new = anchors[first_new:n] @ s
                k = int(np.argmax(new))
                if new[k] > sim:
                    j, sim = first_new + k, float(new[k])
            if sim >= same_cosine:
                labels[start + i] = j
            else:
                labels[start + i] = n
                anchors[n] = s
                n += 1
    return labels


def hopfield_labels(vectors: np.ndarray, config: TopicConfig) -> np.ndarray:
    """Topics as shared attractors of the Hopfield update (see the module's docstring); repeats of a question
    share its topic."""
    x = unit(vectors)
    if len(x) == 0:
        return np.zeros(0, np.int64)
    distinct, counts, row = _distinct(x)
    states = unit(_distinct_states(distinct, counts, config.beta, config.steps, 1024, EXACT_UP_TO, NEIGHBOURS))
    return _by_size(_attractors(states, config.same_cosine)[row])


def hdbscan_labels(vectors: np.ndarray, config: TopicConfig) -> np.ndarray:
    """Topics by scikit-learn's HDBSCAN; noise points are topics of one."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    if n < config.min_cluster_size:
        return _by_size(np.arange(n))
    from sklearn.cluster import HDBSCAN

    raw = HDBSCAN(min_cluster_size=config.min_cluster_size, copy=True).fit(unit(vectors)).labels_
    labels = np.array(raw, dtype=np.int64)
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return _by_size(labels)


def topic_labels(vectors: np.ndarray, config: TopicConfig | None = None) -> np.ndarray:
    """One topic label per row of vectors (0: the largest topic), by config.method."""
    config = config or TopicConfig()
    return hopfield_labels(vectors, config) if config.method == "hopfield" else hdbscan_labels(vectors, config)
