"""Eval throughput: SciFact's 300 test queries under every garbling condition, once the corpus is ingested.

Runs in its own process (python -m bench.bench_eval --kb-dir DIR) on a KB that already holds the
SciFact corpus (bench/kbs.py builds it; run_eval finds every document unchanged, so no embedding
of the corpus is counted). Query embeddings are NOT cached (cache_dir=None): every garbled query
is embedded inside the timed run, as on a first `kb eval`.

    hopfield  run_eval with retrievers=("hopfield",) and the four conditions
    all four  dense, bm25, hybrid, hopfield in one run (what `kb eval` does by default)

Prints one JSON object: {"queries", "conditions", "hopfield_s", "all_s", "hopfield_recall@10",
"all_recall@10"}, the recalls as {condition: {retriever: value}}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.common import CONDITIONS, SCIFACT


def measure(kb_dir: Path) -> dict:
    from eval import EvalConfig, load_beir, run_eval
    from kb import load_embedder

    labelled = load_beir(SCIFACT, "test")
    embedder = load_embedder()
    embedder.encode(["warm up"])
    out: dict = {"conditions": list(CONDITIONS)}
    for key, retrievers in (("hopfield", ("hopfield",)), ("all", ("dense", "bm25", "hybrid", "hopfield"))):
        t = time.perf_counter()
        report = run_eval(labelled, kb_dir, EvalConfig(retrievers=retrievers, conditions=CONDITIONS), embedder)
        out[f"{key}_s"] = time.perf_counter() - t
        out["queries"] = report.n_queries
        out[f"{key}_recall@10"] = {c: {r: report.results[c][r]["recall@10"] for r in retrievers} for c in CONDITIONS}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, required=True, help="KB holding the SciFact corpus")
    args = parser.parse_args()
    print(json.dumps(measure(args.kb_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
