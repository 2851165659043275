"""Metrics and paired significance through ranx, on rankings given as ordered lists of targets.

A ranking's order is the retriever's order: ranx receives scores n, n-1, ..., 1 so its own
sort cannot reorder ties. Queries a retriever returned nothing for count as zeros.
"""

from __future__ import annotations

import re
import warnings
from typing import Mapping, Sequence

import numpy as np

from eval.errors import EvalError, MissingExtra

METRICS = ("recall@1", "recall@5", "recall@10", "recall@20", "recall@100", "mrr@10", "ndcg@10", "hit_rate@10")
STAT_TESTS = ("fisher", "student", "tukey")
NOTHING = "\x00nothing"  # stands in for an empty ranking: ranx needs one entry per query
_NAMES = ("recall", "precision", "mrr", "ndcg", "hit_rate", "map", "f1", "r-precision")
_METRIC = re.compile(r"^(%s)@[1-9]\d*$" % "|".join(re.escape(n) for n in _NAMES))


def _ranx():
    # ranx is imported on first use: it pulls in numba, which costs a second or two at start-up.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import ranx
        except ImportError as exc:
            raise MissingExtra("ranx", "scoring a labelled set") from exc
    return ranx


def to_qrels(qrels: Mapping[str, Mapping[str, int]]):
    return _ranx().Qrels({q: {t: int(g) for t, g in rel.items()} for q, rel in qrels.items()})


def to_run(rankings: Mapping[str, Sequence[str]], name: str):
    """A ranx Run from {query id: targets best first}; an empty ranking becomes one never-relevant entry."""
    run = {q: ({t: float(len(ts) - i) for i, t in enumerate(ts)} if ts else {NOTHING: 1.0}) for q, ts in rankings.items()}
    return _ranx().Run(run, name=name)


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """The metric names, checked; EvalError for one this harness does not know."""
    out = []
    for m in metrics:
        if not _METRIC.match(m):
            raise EvalError(f"unknown metric {m!r}; use NAME@K with NAME one of {', '.join(_NAMES)} (e.g. recall@10)")
        out.append(m)
    return tuple(out)


def score(
    qrels: Mapping[str, Mapping[str, int]], rankings: Mapping[str, Sequence[str]], metrics: Sequence[str] = METRICS
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(mean of each metric, {query id: {metric: value}}) of rankings against qrels.

    Every query in qrels is scored; a query missing from rankings scores 0.
    """
    if not qrels:
        raise EvalError("nothing to score: the labelled set has no judged questions")
    ranx = _ranx()
    run = to_run({q: list(rankings.get(q, ())) for q in qrels}, "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's "unsafe cast" notes on uint64 counts
        ranx.evaluate(to_qrels(qrels), run, list(metrics), threads=1)
    means = {m: float(run.mean_scores[m]) for m in metrics}
    per_query = {q: {m: float(run.scores[m][q]) for m in metrics} for q in qrels}
    return means, per_query


def paired_randomisation(a: np.ndarray, b: np.ndarray, n_resamples: int = 10000, seed: int = 42) -> float:
    """Two-sided p-value of Fisher's paired randomisation test on per-query scores a and b.

    Swapping a query's pair of scores flips the sign of its difference, so each resample is the
    mean difference under seeded random signs; p = (resamples at least as extreme + 1) / (n_resamples + 1).
    The same inputs and seed always give the same p (ranx's version draws in parallel threads and
    does not; scipy.stats.permutation_test gives the same numbers ~40x slower).
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    observed = abs(diff.mean()) if len(diff) else 0.0
    if not len(diff) or not np.any(diff):
        return 1.0
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_resamples, 1000):
        signs = rng.integers(0, 2, size=(min(1000, n_resamples - start), len(diff)), dtype=np.int8) * 2 - 1
        extreme += int(np.count_nonzero(np.abs(signs @ diff) / len(diff) >= observed - 1e-12))
    return (extreme + 1) / (n_resamples + 1)


def significance(
    qrels: Mapping[str, Mapping[str, int]],
    baseline: tuple[str, Mapping[str, Sequence[str]]],
    others: Sequence[tuple[str, Mapping[str, Sequence[str]]]],
    metrics: Sequence[str] = METRICS,
    stat_test: str = "fisher",
    seed: int = 42,
) -> dict[str, dict[str, float]]:
    """Paired p-values of each other run against the baseline, per metric: {name: {metric: p}}.

    stat_test: "fisher" (paired randomisation test, 10,000 resamples, deterministic for a seed),
    "student" (paired t-test, scipy) or "tukey" (Tukey's HSD over all the runs together, ranx).
    The p-values are not corrected for the number of comparisons.
    """
    if stat_test not in STAT_TESTS:
        raise EvalError(f"unknown significance test {stat_test!r}; choose one of {', '.join(STAT_TESTS)}")
    if not others:
        return {}
    if stat_test == "tukey":
        ranx = _ranx()
        q = to_qrels(qrels)
        runs = [to_run({k: list(baseline[1].get(k, ())) for k in qrels}, baseline[0])]
        runs += [to_run({k: list(r.get(k, ())) for k in qrels}, name) for name, r in others]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = ranx.compare(q, runs, list(metrics), stat_test=stat_test, random_seed=seed, threads=1)
        table = report.to_dict()
        return {r.name: {m: float(table[baseline[0]]["comparisons"][r.name][m]) for m in metrics} for r in runs[1:]}
    order = list(qrels)
    _, base_pq = score(qrels, baseline[1], metrics)
    out: dict[str, dict[str, float]] = {}
    for name, rankings in others:
        _, pq = score(qrels, rankings, metrics)
        out[name] = {}
        for m in metrics:
            a = np.array([base_pq[q][m] for q in order])
            b = np.array([pq[q][m] for q in order])
            if stat_test == "fisher":
                out[name][m] = paired_randomisation(a, b, seed=seed)
            else:
                from scipy.stats import ttest_rel

                p = ttest_rel(a, b).pvalue if np.any(a != b) else 1.0
                out[name][m] = float(p) if np.isfinite(p) else 1.0
    return out


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0
