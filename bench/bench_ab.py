"""Before / after latency of the Hopfield reader on a busy machine: two source trees, question by question.

    python -m bench.bench_ab --before-tree ../main --before-kb KB_OLD --after-kb KB_NEW [-n 200]
    python -m bench.bench_ab --alone --after-kb KB [-n 200]      # this tree alone, in one worker

Each tree answers in a long-lived worker process of its own (the tree's code, on its own copy of the KB: a
KB a newer lexicon version upgrades on open is not shared). Every SciFact claim (the sample questions without
../shared) goes to both workers in alternating order, so both see the same load, which on a shared 2-core
machine moves a run's median by 2x from minute to minute. Each worker first fills its retriever's cache of
question vectors, so retrieval is what is timed (--with-embedding: the question's embedding too, as every
figure before 2026-12-05 did by mistake). 20 warm-up questions, then -n measured ones.
Prints one JSON object: {"before": {"p50_ms", "p95_ms", "cpu_p50_ms", "cpu_p95_ms", "n"}, "after": {...}, "same_top10",
"ratio_p50"} (--alone: "after" only); cpu_p50_ms is the worker's CPU time (all threads), which a busy machine
inflates far less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from bench.common import ROOT

WARM = 20
QUESTIONS_CACHED = 500  # within the retriever's cache of question vectors (retriever.base, 512)


def worker(kb_dir: Path, with_embedding: bool = False) -> int:
    """Answer question numbers read from stdin, one JSON line each: [seconds, CPU seconds, top-10 chunk ids]."""
    from bench.common import have_scifact, sample_questions, scifact_queries
    from kb import KnowledgeBase, load_embedder
    from retriever import make_retriever

    source = "scifact" if have_scifact() else "sample"
    questions = list(dict.fromkeys(scifact_queries()[3] if source == "scifact" else sample_questions()))
    embedder = load_embedder()
    hop = make_retriever("hopfield", KnowledgeBase(kb_dir), embedder, top_k=10)
    if not with_embedding:
        # The retriever's own cache of question vectors (it holds 512; until 2026-12-05 this embedded the questions
        # into no cache at all, so every timed question also paid ~10 ms of embedding).
        for q in questions[:QUESTIONS_CACHED]:
            hop.embed_queries([q])
    print("ready", source, flush=True)  # a tree that finds no ../shared asks other questions: measure() refuses
    for line in sys.stdin:
        question = questions[int(line) % len(questions)]
        t, cpu = time.perf_counter(), time.process_time()
        result = hop.search(question, 10)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(json.dumps([wall, cpu, [h.chunk.id for h in result.hits]]), flush=True)
    return 0


def measure(trees: dict[str, tuple[Path, Path]], n: int, with_embedding: bool = False) -> dict:
    if WARM + n > QUESTIONS_CACHED and not with_embedding:
        raise SystemExit(f"-n {n}: at most {QUESTIONS_CACHED - WARM} questions fit the question-vector cache")
    procs = {
        name: subprocess.Popen(
            # This file run as a script: the tree before may not hold it; its kb and retriever come from PYTHONPATH.
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(kb)]
            + (["--with-embedding"] if with_embedding else []),
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, (tree, kb) in trees.items()
    }
    times: dict[str, list[float]] = {name: [] for name in procs}
    cpus: dict[str, list[float]] = {name: [] for name in procs}
    same = 0
    try:
        sources = {}
        for name, p in procs.items():
            assert p.stdout is not None
            ready, _, sources[name] = p.stdout.readline().strip().partition(" ")
            assert ready == "ready", f"the {name} worker failed to start"
        if len(set(sources.values())) > 1:
            raise SystemExit(
                f"the workers would ask different questions ({sources}): each tree reads ../shared/datasets beside "
                "itself; link the project's ../shared beside the tree that lacks it"
            )
        for i in range(WARM + n):
            got = {}
            for name in sorted(procs, reverse=bool(i % 2)):  # alternate who goes first
                p = procs[name]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write(f"{i}\n")
                p.stdin.flush()
                got[name] = json.loads(p.stdout.readline())
            if i >= WARM:
                for name in procs:
                    times[name].append(got[name][0])
                    cpus[name].append(got[name][1])
                same += len(got) == 2 and got["before"][2] == got["after"][2]
    finally:
        for p in procs.values():
            if p.stdin is not None:
                p.stdin.close()
        for p in procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    out: dict = {
        name: {
            "p50_ms": 1e3 * float(np.median(t)),
            "p95_ms": 1e3 * float(np.percentile(t, 95)),
            # CPU time of the worker's every thread: what the question costs whatever else the machine runs.
            "cpu_p50_ms": 1e3 * float(np.median(cpus[name])),
            "cpu_p95_ms": 1e3 * float(np.percentile(cpus[name], 95)),
            "n": len(t),
        }
        for name, t in times.items()
    }
    if len(procs) == 2:
        out["same_top10"] = same / n
        out["ratio_p50"] = out["before"]["p50_ms"] / out["after"]["p50_ms"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--before-tree", type=Path, help="the source tree before (a checkout or worktree)")
    parser.add_argument("--before-kb", type=Path, help="its copy of the KB")
    parser.add_argument("--after-tree", type=Path, default=ROOT, help="the tree after [default: this one]")
    parser.add_argument("--after-kb", type=Path, help="its copy of the KB")
    parser.add_argument("-n", type=int, default=200, help="measured questions (default 200)")
    parser.add_argument(
        "--with-embedding", action="store_true", help="time each question's embedding too (by default it is cached)"
    )
    parser.add_argument("--alone", action="store_true", help="only the tree after, in one worker (as a server runs)")
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.with_embedding)
    if args.alone and args.after_kb:
        trees = {"after": (args.after_tree.resolve(), args.after_kb)}
    elif args.before_tree and args.before_kb and args.after_kb:
        trees = {"before": (args.before_tree.resolve(), args.before_kb), "after": (args.after_tree.resolve(), args.after_kb)}
    else:
        parser.error("--before-tree, --before-kb and --after-kb are required (--alone: --after-kb)")
    print(json.dumps(measure(trees, args.n, args.with_embedding)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
