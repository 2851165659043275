"""The BM25 top-k of a large KB: numpy against the compiled kernel (retriever/postings_kernel.py), on one KB.

    python -m bench.bench_bm25_top --kb-dir KB_1M [-n 200] [-k 100]

The claims the reader benchmarks ask (SciFact's, or the sample questions without ../shared), each ranked by
Corpus.bm25_top over every chunk through both paths in turn (the corpus constant KERNEL_MIN_CHUNKS picks the
path), after each question's postings are in memory: what is timed is the scoring and selection alone. Also times
the postings' decoding (every claim's terms read from kb.sqlite into rows and contributions) both ways. Prints one
JSON object: p50/p95/max ms per path, their ratios, the machine's load, and the questions whose ranking or scores
differ between the paths (0: the kernel is exact).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import retriever.corpus as corpus_module
from bench.common import have_scifact, load_now, p50_p95, sample_questions, scifact_queries
from kb import KnowledgeBase
from retriever.corpus import Corpus

NUMPY, COMPILED = 10**12, 0  # KERNEL_MIN_CHUNKS for each path


def figures(seconds: list[float]) -> dict:
    p50, p95 = p50_p95(np.array(seconds))
    return {"p50_ms": 1e3 * p50, "p95_ms": 1e3 * p95, "max_ms": 1e3 * max(seconds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, required=True)
    parser.add_argument("-n", type=int, default=200, help="questions (default 200)")
    parser.add_argument("-k", type=int, default=100, help="top-k (default 100: the reader's candidates)")
    args = parser.parse_args()
    questions = list(dict.fromkeys(scifact_queries()[3] if have_scifact() else sample_questions()))[: args.n]
    kb = KnowledgeBase(args.kb_dir)
    load = [load_now()]
    # Decoding: a fresh Corpus per path keeps no postings between them (every term read and decoded once).
    corpus_module.COMMON_TERM_POSTINGS = 10**12  # nothing kept across questions: each read is a full decode
    decode: dict[str, list[float]] = {"numpy": [], "compiled": []}
    by = {"numpy": Corpus(kb=kb, snapshot=kb.snapshot()), "compiled": Corpus(kb=kb, snapshot=kb.snapshot())}
    for path, kernel_from in (("compiled", COMPILED), ("numpy", NUMPY)):  # compiled first: its warm-up below
        corpus_module.KERNEL_MIN_CHUNKS = kernel_from
        by[path].bm25_top(questions[0], args.k)  # _row_of, numba's import and load, not timed
    paths = (("numpy", NUMPY), ("compiled", COMPILED))
    for i, q in enumerate(questions):
        for path, kernel_from in paths[:: 1 if i % 2 else -1]:  # alternate who reads kb.sqlite's pages first
            corpus_module.KERNEL_MIN_CHUNKS = kernel_from
            t = time.perf_counter()
            by[path].bm25_at(q, np.zeros(1, dtype=np.int64))  # reads and decodes q's postings (kept per question)
            decode[path].append(time.perf_counter() - t)
    # Scoring and selection, the postings of each question already in memory (CACHED_QUESTIONS of them).
    top: dict[str, list[float]] = {"numpy": [], "compiled": []}
    differ = 0
    for i, q in enumerate(questions):
        got = {}
        for path, kernel_from in paths[:: 1 if i % 2 else -1]:
            corpus_module.KERNEL_MIN_CHUNKS = kernel_from
            by[path].bm25_at(q, np.zeros(1, dtype=np.int64))
            t = time.perf_counter()
            got[path] = by[path].bm25_top(q, args.k)
            top[path].append(time.perf_counter() - t)
        same = all(np.array_equal(a, b) for a, b in zip(got["numpy"], got["compiled"]))
        differ += not same
    load.append(load_now())
    out = {
        "chunks": by["numpy"].snapshot.size,
        "questions": len(questions),
        "k": args.k,
        "bm25_top": {path: figures(s) for path, s in top.items()},
        "decode": {path: figures(s) for path, s in decode.items()},
        "ratio_bm25_top_p50": float(np.median(top["numpy"]) / np.median(top["compiled"])),
        "ratio_bm25_top_p95": float(np.percentile(top["numpy"], 95) / np.percentile(top["compiled"], 95)),
        "ratio_decode_p50": float(np.median(decode["numpy"]) / np.median(decode["compiled"])),
        "questions_differing": differ,
        "load": load,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
