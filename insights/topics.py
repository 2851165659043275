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


def hopfield_states(vectors: np.ndarray, beta: float, steps: int, batch: int = 1024) -> np.ndarray:
    """Each row of vectors iterated `steps` Hopfield updates over all rows as the stored patterns: (N, d).

    The update of retriever.hopfield_math.update, xi <- X^T softmax(beta X xi), written as two matrix products
    over the one shared X (hopfield_math takes a (B, K, d) copy of the patterns per query): memory B x N."""
    import torch  # here, not at the top: `kb ask` imports this package with the CLI and must not load torch

    x = torch.from_numpy(unit(vectors))
    out = []
    for start in range(0, len(x), batch):
        xi = x[start : start + batch]
        for _ in range(steps):
            xi = torch.softmax(beta * (xi @ x.T), dim=-1) @ x
        out.append(xi)
    return torch.cat(out).numpy() if out else np.zeros_like(vectors, dtype=np.float32)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel so that topic 0 is the largest (ties: the one whose first question comes first)."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(len(uniq)), key=lambda i: (-counts[i], first[i]))
    mapping = {int(uniq[i]): rank for rank, i in enumerate(order)}
    return np.array([mapping[int(v)] for v in labels], dtype=np.int64)


def hopfield_labels(vectors: np.ndarray, config: TopicConfig) -> np.ndarray:
    """Topics as shared attractors of the Hopfield update (see the module's docstring)."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    states = unit(hopfield_states(vectors, config.beta, config.steps))
    labels = -np.ones(n, np.int64)
    anchors: list[np.ndarray] = []
    # Greedy over the states, most settled first: a state joins the first attractor it is within same_cosine of.
    for i in range(n):
        if anchors:
            sims = np.stack(anchors) @ states[i]
            j = int(np.argmax(sims))
            if sims[j] >= config.same_cosine:
                labels[i] = j
                continue
        labels[i] = len(anchors)
        anchors.append(states[i])
    return _by_size(labels)


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
