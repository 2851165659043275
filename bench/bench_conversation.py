"""A follow-up's cost against a single-turn question, on the warm path (doc2dial-dev's real dialogues).

Warm path: the model is loaded, the KB's indexes are read, and the conversation's earlier turns were asked
before (as in a live chat, where each turn follows the last: their hits are cached per conversation
prefix). No per-question cache helps the timed turn: the query-embedding and sentence caches are emptied
before each call. For each follow-up, the same turn is timed alone (what the product did before) and with
its history, through search (retrieval) and answer (the cited answer); medians, p95 and their ratios
(goal: follow-up <= 1.3x single turn) come from one run.

Usage:
    .venv/bin/python -m bench.bench_conversation [--kb-dir KB] [--turns 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.bench_answer import clear_caches
from bench.common import ROOT
from eval import load_conversations
from eval.targets import prepare_kb
from kb import KnowledgeBase, load_embedder
from retriever import answer, make_retriever

DATASET = ROOT.parent / "shared" / "datasets" / "doc2dial-dev"


def timed(fn) -> float:
    clear_caches()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb-dir", type=Path, default=Path("/tmp/bench-doc2dial-kb"))
    parser.add_argument("--turns", type=int, default=200, help="follow-ups timed (the first N of the set)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not DATASET.is_dir():
        raise SystemExit(f"{DATASET} is absent: this benchmark needs ../shared/datasets/doc2dial-dev")
    turns, labelled = load_conversations(DATASET)
    embedder = load_embedder()
    prepare_kb(labelled, args.kb_dir, embedder)
    reader = make_retriever("hopfield", KnowledgeBase(args.kb_dir), embedder, top_k=5, memory=None)
    follow = [t for t in turns if t.history][: args.turns]
    for t in follow:  # the live chat asked every earlier turn before this one: warm their cached hits
        reader.search(t.question, history=t.history)
    times: dict[str, list[float]] = {"search alone": [], "search follow-up": [], "answer alone": [], "answer follow-up": []}
    for t in follow:
        times["search alone"].append(timed(lambda: reader.search(t.question)))
        times["search follow-up"].append(timed(lambda: reader.search(t.question, history=t.history)))
        times["answer alone"].append(timed(lambda: answer(t.question, reader)))
        times["answer follow-up"].append(timed(lambda: answer(t.question, reader, history=t.history)))
    out: dict[str, Any] = {
        k: {"median_ms": round(1000 * statistics.median(v), 2), "p95_ms": round(1000 * float(np.percentile(v, 95)), 2)}
        for k, v in times.items()
    }
    out["ratio_search"] = round(out["search follow-up"]["median_ms"] / out["search alone"]["median_ms"], 3)
    out["ratio_answer"] = round(out["answer follow-up"]["median_ms"] / out["answer alone"]["median_ms"], 3)
    out["turns"] = len(follow)
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k:18s} {v}")


if __name__ == "__main__":
    main()
