"""A first answer: a fresh `kb ask` process, question to printed answer, before and after (issue 31, goal 3).

Three ways of answering the same question in fresh processes, interleaved, median of --runs each:
  before   the tree at --before (git archive of that commit): torch for the question and the reader;
  torch    this tree with KB_QUERY_ENCODER=torch: the numpy reader, the torch embedder for questions;
  after    this tree as shipped: the numpy encoder (kb/numpy_encoder.py) and reader, no torch import.
Each child reports whether torch was loaded when it finished. Then the agreement of the question vectors:
the min cosine of the numpy encoder to torch (fp32, and the embedder the KB was built with) over real
questions (SciFact and covidfaq's, where ../shared/datasets holds them; the sample questions always).

The SciFact KB also gets --typo-question, whose misspelled words make query repair look them up.

Usage:
    python -m bench.bench_first_answer --kb-dir ../scratch/bench/kb_scifact [--sample-kb-dir KB] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, SHARED, TYPO_QUESTION, fmt_s, machine

BEFORE = "a078d0f"  # main before issue 31's goal 3
CHILD = (
    "import sys\n"
    "from ui.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    if e.code: raise\n"
    "print('TORCH_LOADED', 'torch' in sys.modules, file=sys.stderr)\n"
)


def _tree_at(ref: str, dest: Path) -> Path:
    """The repository's files at ref, unpacked into dest."""
    archive = dest / "tree.tar"
    subprocess.run(["git", "archive", "-o", str(archive), ref], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest / "tree", filter="data")
    return dest / "tree"


def _ask(root: Path, kb_dir: Path, question: str, env: dict[str, str]) -> tuple[float, bool]:
    """Seconds of one fresh `kb ask` run from root, and whether torch was loaded at its end."""
    child_env = {**os.environ, "PYTHONPATH": str(root), **env}
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "ask", question, "--kb-dir", str(kb_dir)],
        cwd=root,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"kb ask failed under {root}:\n{proc.stderr[-2000:]}")
    return seconds, "TORCH_LOADED True" in proc.stderr


def first_answer(kb_dir: Path, question: str, before_root: Path, runs: int) -> dict:
    ways = {
        "before": (before_root, {"KB_QUERY_ENCODER": "auto"}),
        "torch": (ROOT, {"KB_QUERY_ENCODER": "torch"}),
        "after": (ROOT, {"KB_QUERY_ENCODER": "auto"}),
    }
    times: dict[str, list[float]] = {w: [] for w in ways}
    torch_loaded: dict[str, bool] = {}
    _ask(ROOT, kb_dir, question, {})  # the page cache holds the KB and the libraries for every way alike
    for _ in range(runs):
        for way, (root, env) in ways.items():
            seconds, loaded = _ask(root, kb_dir, question, env)
            times[way].append(seconds)
            torch_loaded[way] = loaded
    out: dict[str, Any] = {
        w: {"median_s": statistics.median(t), "runs_s": t, "torch_loaded": torch_loaded[w]} for w, t in times.items()
    }
    out["speedup"] = out["before"]["median_s"] / out["after"]["median_s"]
    return out


def _questions(datasets: Path) -> dict[str, list[str]]:
    from data import SAMPLE_QUESTIONS

    sets = {"sample": [json.loads(line)["question"] for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]}
    for name in ("scifact", "covidfaq"):
        path = datasets / name / "queries.jsonl"
        if path.exists():
            sets[name] = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    return sets


def agreement(datasets: Path) -> dict:
    """Min / mean cosine of the numpy encoder's question vectors to torch's, per question set."""
    import numpy as np

    from kb import DEFAULT_MODEL, Embedder, EmbedderConfig, NumpyEncoder, load_embedder, resolve_model_path

    ours = NumpyEncoder(EmbedderConfig(), resolve_model_path(DEFAULT_MODEL))
    built = load_embedder()  # what builds KBs here (bf16 where the CPU has it)
    fp32 = Embedder(EmbedderConfig(precision="fp32"))
    out: dict[str, Any] = {"kb_embedder_precision": built.precision}
    for name, qs in _questions(datasets).items():
        v = ours.encode_queries(qs)
        to_fp32 = (v * fp32.encode_queries(qs)).sum(1)
        to_built = (v * built.encode_queries(qs)).sum(1)
        out[name] = {
            "questions": len(qs),
            "min_cos_fp32": float(to_fp32.min()),
            "min_cos_kb_embedder": float(to_built.min()),
            "mean_cos_kb_embedder": float(np.mean(to_built)),
        }
    return out


def recall(datasets: Path, workdir: Path) -> dict:
    """recall@10 / MRR@10 of hopfield and dense, clean questions, with the torch embedder's question vectors
    and with the numpy encoder's, on the same KB (built under workdir with the KB embedder if absent)."""
    from eval import EvalConfig, load_dataset, run_eval
    from kb import DEFAULT_MODEL, EmbedderConfig, NumpyEncoder, load_embedder, resolve_model_path

    built = load_embedder()
    ours = NumpyEncoder(EmbedderConfig(), resolve_model_path(DEFAULT_MODEL))
    config = EvalConfig(retrievers=("hopfield", "dense"), conditions=("clean",))
    out: dict = {}
    for name in ("scifact", "covidfaq"):
        if not (datasets / name).is_dir():
            continue
        labelled = load_dataset(datasets / name)
        kb_dir = workdir / f"eval_{name}"
        run_eval(labelled, kb_dir, config, embedder=built)  # builds the KB once, with torch
        out[name] = {}
        for label, embedder in (("torch", built), ("numpy", ours)):
            report = run_eval(labelled, kb_dir, config, embedder=embedder)
            out[name][label] = {
                r: {m: report.results["clean"][r][m] for m in ("recall@10", "mrr@10")} for r in report.retrievers
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, required=True, help="a SciFact KB (bench/kbs.py scifact_kb)")
    parser.add_argument("--sample-kb-dir", type=Path, help="the sample KB too (bench/kbs.py sample_kb)")
    parser.add_argument("--question", default="What does vitamin D do for bone health?")
    parser.add_argument(
        "--typo-question",
        default=TYPO_QUESTION,
        help="also asked on the SciFact KB: its unknown words run query repair ('' to skip)",
    )
    parser.add_argument("--sample-question", default="How do I reset a forgotten password?")
    parser.add_argument("--before", default=BEFORE, help="the commit to compare against")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--datasets", type=Path, default=SHARED / "datasets", help="holds scifact/, covidfaq/")
    parser.add_argument("--no-agreement", action="store_true", help="skip the cosine check (~1 min)")
    parser.add_argument("--recall-dir", type=Path, help="also compare recall@10 (eval KBs built here if absent)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict = {"machine": machine(), "load_at_start": os.getloadavg()[0], "before": args.before}
    with tempfile.TemporaryDirectory() as tmp:
        before_root = _tree_at(args.before, Path(tmp))
        result["scifact"] = first_answer(args.kb_dir, args.question, before_root, args.runs)
        if args.typo_question:
            result["scifact, typos"] = first_answer(args.kb_dir, args.typo_question, before_root, args.runs)
        if args.sample_kb_dir:
            result["sample"] = first_answer(args.sample_kb_dir, args.sample_question, before_root, args.runs)
    result["load_at_end"] = os.getloadavg()[0]
    if not args.no_agreement:
        result["agreement"] = agreement(args.datasets)
    if args.recall_dir:
        result["recall"] = recall(args.datasets, args.recall_dir)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}; load {result['load_at_start']:.2f} -> {result['load_at_end']:.2f}")
    for kb in ("scifact", "scifact, typos", "sample"):
        if kb not in result:
            continue
        r = result[kb]
        asked = f" ({args.typo_question!r})" if kb == "scifact, typos" else ""
        print(f"\nfresh `kb ask` on the {kb} KB{asked}, median of {args.runs} (goal < 2.5 s on SciFact):")
        for way in ("before", "torch", "after"):
            f = r[way]
            runs = ", ".join(f"{s:.2f}" for s in f["runs_s"])
            print(f"  {way:7s} {fmt_s(f['median_s']):>7s}  torch loaded: {f['torch_loaded']}  ({runs})")
        print(f"  before / after: {r['speedup']:.2f}x")
    if "agreement" in result:
        a = result["agreement"]
        print(f"\nquestion vectors, numpy encoder vs torch (the KB's embedder runs {a['kb_embedder_precision']}):")
        for name, f in a.items():
            if isinstance(f, dict):
                print(
                    f"  {name:9s} {f['questions']:5d} questions: min cos to fp32 {f['min_cos_fp32']:.6f}, "
                    f"to the KB's embedder {f['min_cos_kb_embedder']:.6f} (mean {f['mean_cos_kb_embedder']:.6f})"
                )
    for name, by in result.get("recall", {}).items():
        print(f"\n{name}, clean questions, question vectors from torch vs numpy:")
        for r in by["torch"]:
            t, n = by["torch"][r], by["numpy"][r]
            print(
                f"  {r:9s} recall@10 {t['recall@10']:.4f} vs {n['recall@10']:.4f} "
                f"(diff {n['recall@10'] - t['recall@10']:+.4f}); MRR@10 {t['mrr@10']:.4f} vs {n['mrr@10']:.4f}"
            )


if __name__ == "__main__":
    main()
