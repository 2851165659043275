"""Learning from use, measured: replay half of a FAQ set's real questions as thumbs up, score the other half.

    python -m eval.memory_replay [--dataset ../shared/datasets/covidfaq] [--kb-dir DIR] [--seed 0]

Protocol (issue 16): the questions of each FAQ entry are split in half by a seeded shuffle; the first half
is the history, replayed as confirmations of its relevant entry (`kb eval --history`, eval.history); the
second half is scored, clean and at typo-20, by the Hopfield reader without memory and with it. Rows:
the share of all questions replayed (0, 10, 25, 50%: the first 0, 1/5, 1/2 or all of each entry's
history half), and 50% with 20% of the replayed pairs pointing at a wrong entry (seeded). Then the
memory lookup's cost: median added ms per question (one question at a time) with 10,000 associations.
Every number is recall@1 on the same scored questions (minus any whose text equals a replayed one).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from eval.datasets import LabelledSet, load_dataset
from eval.runner import EvalConfig, run_eval
from kb import KnowledgeBase, embedder_for

SHARES = (0.0, 0.10, 0.25, 0.50)
CONDITIONS = ("clean", "typo-20")


def split_history(labelled: LabelledSet, seed: int) -> tuple[dict[str, list[str]], list[str]]:
    """({entry: its history questions, in shuffled order}, scored question ids): each entry's questions
    shuffled with seed, the first half (rounded down) history, the rest scored."""
    by_entry: dict[str, list[str]] = {}
    for qid, targets in labelled.qrels.items():
        by_entry.setdefault(min(targets), []).append(qid)
    rng = random.Random(seed)
    history, scored = {}, []
    for entry in sorted(by_entry):
        qids = sorted(by_entry[entry])
        rng.shuffle(qids)
        half = len(qids) // 2
        history[entry] = qids[:half]
        scored += qids[half:]
    return history, scored


def history_set(labelled: LabelledSet, history: dict[str, list[str]], share: float, wrong: float, seed: int) -> LabelledSet:
    """The replayed pairs for share (of all questions: share / 0.5 of each entry's history half); a `wrong`
    fraction of them (seeded) point at another, random entry."""
    entries = sorted(history)
    rng = random.Random(seed + 1)
    queries, qrels = {}, {}
    for entry in entries:
        qids = history[entry]
        for qid in qids[: round(len(qids) * share / 0.5)]:
            target = entry
            if rng.random() < wrong:
                target = rng.choice([e for e in entries if e != entry])
            queries[qid] = labelled.queries[qid]
            qrels[qid] = {target: 1}
    return LabelledSet(name=f"history-{share:g}-wrong-{wrong:g}", queries=queries, qrels=qrels)


def scored_set(labelled: LabelledSet, scored: list[str]) -> LabelledSet:
    return replace(labelled, queries={q: labelled.queries[q] for q in scored}, qrels={q: labelled.qrels[q] for q in scored})


def measure(labelled, kb_dir: Path, cache: Path, seed: int, embedder) -> list[dict]:
    history, scored = split_history(labelled, seed)
    test = scored_set(labelled, scored)
    rows = []
    runs = [(s, 0.0) for s in SHARES if s > 0] + [(0.5, 0.2)]
    for share, wrong in runs:
        hist = history_set(labelled, history, share, wrong, seed)
        config = EvalConfig(
            retrievers=("hopfield",),
            conditions=CONDITIONS,
            metrics=("recall@1", "recall@5"),
            seed=seed,
            cache_dir=cache,
            history=hist,
        )
        report = run_eval(test, kb_dir, config, embedder=embedder)
        row = {"share": share, "wrong": wrong, "pairs": report.meta["history"]["pairs"], "scored": report.n_queries}
        for cond in CONDITIONS:
            res = report.results[cond]
            row[cond] = {
                "no memory": res["hopfield"]["recall@1"],
                "memory": res["hopfield+memory"]["recall@1"],
                "p": report.pvalues[cond]["hopfield+memory"]["recall@1"],
                "no memory r@5": res["hopfield"]["recall@5"],
                "memory r@5": res["hopfield+memory"]["recall@5"],
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def latency(labelled, kb_dir: Path, seed: int, embedder, n_assoc: int = 10_000, n_questions: int = 200) -> dict:
    """Median ms per question (one at a time) of the Hopfield reader with a memory of n_assoc associations,
    minus without: the history questions' real embeddings, topped up with perturbed copies (noise 0.05,
    renormalised; random entries) up to n_assoc."""
    from eval.history import replay_history
    from kb import QuestionMemory
    from retriever import HopfieldRetriever

    history, scored = split_history(labelled, seed)
    kb = KnowledgeBase(kb_dir)
    replay = replay_history(history_set(labelled, history, 0.5, 0.0, seed), kb, embedder)
    memory: QuestionMemory = replay.memory
    rng = np.random.default_rng(seed)
    base = memory.associations()
    chunk_ids = np.array([int(i) for i in kb.snapshot().ids])
    vecs = np.stack([memory.patterns().vectors[i % len(base)] for i in range(n_assoc - len(base))])
    vecs = vecs + rng.normal(0, 0.05, vecs.shape).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    words = [a.question for a in base]
    items = [(f"{words[i % len(words)]} #{i}", vecs[i], int(rng.choice(chunk_ids))) for i in range(len(vecs))]
    memory.learn(items, +1.0, origin="replay")
    n = len(memory.associations())
    questions = [labelled.queries[q] for q in scored[:n_questions]]
    qvecs = embedder.encode_queries(questions)
    plain = HopfieldRetriever(kb, embedder, memory=None)
    with_memory = HopfieldRetriever(kb, embedder, memory=memory)
    for r in (plain, with_memory):  # load the corpus views and the memory's patterns
        r.rank(questions[:2], query_vectors=qvecs[:2])
    added = []
    for q, v in zip(questions, qvecs):
        times = []
        for r in (plain, with_memory, plain, with_memory):
            t0 = time.perf_counter()
            r.rank([q], query_vectors=v[None, :])
            times.append(time.perf_counter() - t0)
        added.append(1000 * (min(times[1], times[3]) - min(times[0], times[2])))
    return {
        "associations": n,
        "questions": len(questions),
        "median_added_ms": round(statistics.median(added), 2),
        "p90_added_ms": round(float(np.percentile(added, 90)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="../shared/datasets/covidfaq")
    parser.add_argument("--kb-dir", default="eval_reports/memory_replay/kb-covidfaq")
    parser.add_argument("--cache-dir", default="eval_reports/memory_replay/cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    labelled = load_dataset(args.dataset)
    embedder = embedder_for(args.kb_dir)  # the KB's model; the default for a new one
    rows = measure(labelled, Path(args.kb_dir), Path(args.cache_dir), args.seed, embedder)
    print(f"\n{labelled.name}: recall@1 on the scored half (seed {args.seed}); memory = hopfield+memory")
    print(
        f"{'replayed':>10} {'wrong':>6} {'pairs':>6} {'scored':>6}"
        + "".join(f" {c + ' none':>12} {c + ' memory':>14} {'gain':>6}" for c in CONDITIONS)
    )
    base = rows[0]
    print(
        f"{'0%':>10} {'-':>6} {0:>6} {base['scored']:>6}"
        + "".join(f" {base[c]['no memory']:>12.3f} {base[c]['no memory']:>14.3f} {0:>+6.3f}" for c in CONDITIONS)
    )
    for r in rows:
        print(
            f"{r['share']:>10.0%} {r['wrong']:>6.0%} {r['pairs']:>6} {r['scored']:>6}"
            + "".join(
                f" {r[c]['no memory']:>12.3f} {r[c]['memory']:>14.3f} {r[c]['memory'] - r[c]['no memory']:>+6.3f}"
                for c in CONDITIONS
            )
        )
    if not args.no_latency:
        print("\nlookup:", json.dumps(latency(labelled, Path(args.kb_dir), args.seed, embedder)))


if __name__ == "__main__":
    main()
