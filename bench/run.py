"""The benchmark suite in one command: every stage, ours against what a user would otherwise use.

    python -m bench.run                      # all sections (bash scripts/bench.sh sets up and runs this)
    python -m bench.run --only query,index   # some sections
    python -m bench.run --quick              # 100k only, 1,000-document sync: a smoke run

Each section runs its script in a fresh process (no shared warm caches, threads or memory) and
adds rows to one table: stage | ours | alternative | ratio (> 1 = ours better). The KBs the
sections need (sample, SciFact, synthetic 100k / 1M from SciFact's real vectors, see bench/kbs.py)
are built on first use under --workdir and reused while their build recipe is unchanged; build
times are printed separately and are not part of the suite's own time.

Sections:
    ingest   embedding throughput vs sentence-transformers encode (same model, same 500 chunks),
             and each ingest stage's share of a real ingest (SciFact texts; the sample docs with PDFs)
    formats  a whole sync per format (PDF, DOCX, HTML, scans, the crawler), lexical index on, in chunks/s
             vs sentence-transformers' encode of the same texts (bench/bench_ingest_formats.py)
    query    question -> top-10 latency, p50 / p95, on SciFact, 100k and 1M chunks, vs embedding +
             plain faiss.IndexFlatIP; resident memory per chunk vs plain FAISS + bm25s
    index    recall@10 of the index the KB chooses vs exact search, and the compact fp16 / SQ8 options
    eval     300 SciFact queries x 4 conditions through run_eval (goal: under 30 s)
    sync     1% re-sync vs full ingest of a --sync-docs document folder (goal: under 3%)
    views    the lexical index on SciFact, 100k and 1M: rebuild time vs the vector index's, Hopfield latency
             and resident memory per chunk, and the first question after another process synced 10
             changed documents vs the warm median (bench/bench_views.py)
    startup  the app (real Chromium) and `kb ask` answering the first question after start (goal: 5 s),
             and `kb ask` on SciFact (goal: 2.5 s; bench/bench_first_answer.py compares before/after)
    answer   answer composition time against retrieval time, warm path, no per-question cache (goal: 1.5x)
    conversation  a follow-up against the same turn alone on doc2dial-dev, search and answer (goal: 1.3x)
    api      the HTTP API under 32 concurrent clients, steady and while 10 documents change (sample, SciFact)

Needs ../shared/datasets/scifact for ingest, formats, query (beyond the sample KB), index and eval; those
sections say so and are skipped when it is absent. The figures and the table are also written
to WORKDIR/results.json and WORKDIR/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.common import (
    Row,
    build_kbs,
    default_workdir,
    have_scifact,
    machine,
    print_table,
)
from bench.sections import (
    SECTIONS,
    section_answer,
    section_api,
    section_conversation,
    section_eval,
    section_formats,
    section_index,
    section_ingest,
    section_query,
    section_startup,
    section_sync,
    section_views,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help=f"KBs and results [default: {default_workdir()}]")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections, comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--sizes", default="100000,1000000", help="synthetic KB sizes in chunks")
    parser.add_argument(
        "--sync-docs",
        type=int,
        default=3_000,
        help="documents in the sync benchmark (bench/bench_sync.py -n 10000 for the 10k figure)",
    )
    parser.add_argument("--api-seconds", type=float, default=60.0, help="seconds per load phase of the api section")
    parser.add_argument("--quick", action="store_true", help="sizes 100000, sync 1000 documents, 15 s API phases")
    args = parser.parse_args()
    workdir = args.workdir or default_workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    sync_docs = 1_000 if args.quick else args.sync_docs
    if args.quick:
        args.api_seconds = min(args.api_seconds, 15.0)

    print(f"machine: {machine()}", flush=True)
    scifact = have_scifact()
    if not scifact:
        print(
            "../shared/datasets/scifact is absent: ingest, index and eval are skipped, query runs on the sample KB only",
            flush=True,
        )
    t = time.perf_counter()
    need_big = scifact and bool({"ingest", "query", "views", "index", "eval", "startup", "api"} & set(only))
    kbs = build_kbs(workdir, sizes if {"query", "views", "index"} & set(only) else [], need_big)
    for name, (d, info) in kbs.items():
        how = "reused" if info.get("reused") else f"built in {info['seconds']:.0f} s"
        print(f"KB {name}: {info['chunks']:,} chunks at {d} ({how})", flush=True)
    print(f"KBs ready in {time.perf_counter() - t:.0f} s (not counted below)\n", flush=True)

    started = time.perf_counter()
    runners: dict[str, Callable[[], list[Row]]] = {
        "ingest": lambda: section_ingest(kbs),
        "formats": lambda: section_formats(args.quick),
        "query": lambda: section_query(kbs),
        "views": lambda: section_views(kbs),
        "index": lambda: section_index(kbs),
        "eval": lambda: section_eval(kbs),
        "sync": lambda: section_sync(sync_docs),
        "startup": lambda: section_startup(kbs),
        "answer": lambda: section_answer(kbs),
        "conversation": section_conversation,
        "api": lambda: section_api(kbs, args.api_seconds),
    }
    needs_scifact = {"ingest", "formats", "index", "eval"}
    rows: list[Row] = []
    timings = {}
    for name in only:
        if name in needs_scifact and not scifact:
            continue
        t = time.perf_counter()
        try:
            new = runners[name]()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            # One broken section must not hide the others' figures; the table says what failed.
            new = [Row(f"{name}: FAILED", "not measured", note=str(exc).strip().splitlines()[-1][:300])]
        timings[name] = time.perf_counter() - t
        print(f"## {name} ({timings[name]:.0f} s)", flush=True)
        print_table(new)
        print(flush=True)
        rows += new
    total = time.perf_counter() - started
    print(f"## all sections: {total:.0f} s on {machine()}\n")
    print_table(rows)
    print("\nnotes:")
    for r in rows:
        if r.note:
            print(f"- {r.stage}: {r.note}")
    with open(workdir / "results.md", "w") as fh:
        print_table(rows, out=fh)
    (workdir / "results.json").write_text(
        json.dumps(
            {"machine": machine(), "seconds": total, "section_seconds": timings, "rows": [r.__dict__ for r in rows]},
            indent=1,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
