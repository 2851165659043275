"""The whole warm path of the default answer against dense search's full answer, stage by stage.

Default path, as the app and the API run it: a follow-up question read with its conversation (the
previous question and its answer), the Hopfield reader, the cross-encoder choosing quotes, answer
composition, and the question log. Dense: the same question alone, dense search, the same composition
and log. Warm: the models and the KB's indexes are loaded (one warm-up question each), but every
per-question cache is emptied before each question, so each pays for its own embeddings and pairs.
Variants run interleaved, question by question, so machine load falls on both alike.

Prints per-stage medians (ms) and the ratio of the medians of the totals (issue 31, goal 4: <= 2.5x).
Stages: reader (with the conversation: the reader's own timing), conversation (the reader's extra time
with the conversation against the same question alone), cross-encoder (time inside its model runs),
composition (the rest of answer()), log (writing the log entry).

Usage:
    .venv/bin/python -m bench.bench_warm_path [--kb-dir KB] [--questions 100] [--json]
    (default KB: the SciFact KB of bench.kbs under the bench work directory, copied, since the log writes)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.common import default_workdir, have_scifact, load_now, machine, sample_questions, scifact_queries
from kb import KnowledgeBase, QuestionLogConfig, load_embedder
from retriever import AnswerConfig, answer, load_cross_encoder, log_answer, make_retriever
from retriever import clear_caches as clear_retriever_caches

STAGES = ("reader", "conversation", "cross-encoder", "composition", "log", "total")


def clear_caches() -> None:
    clear_retriever_caches()
    load_cross_encoder().clear_cache()


def cross_seconds() -> float:
    return load_cross_encoder().work_done()[1]


def one_answer(kb: KnowledgeBase, retriever, question: str, history: list[dict] | None) -> tuple[dict, str]:
    """(stage seconds, answer text) of one cold-cache question through answer() and log_answer()."""
    clear_caches()
    cross_before = cross_seconds()
    started = time.perf_counter()
    ans = answer(question, retriever, AnswerConfig(), history=history)
    answered = time.perf_counter()
    log_answer(kb, ans, config=QuestionLogConfig(), retriever=retriever)  # as the API and the app log
    done = time.perf_counter()
    cross = cross_seconds() - cross_before
    stages = {
        "reader": ans.search.seconds,
        "cross-encoder": cross,
        "composition": (answered - started) - ans.search.seconds - cross,
        "log": done - answered,
        "total": done - started,
    }
    return stages, ans.text


def run(kb_dir: Path, questions: list[str]) -> dict:
    embedder = load_embedder()
    kb = KnowledgeBase(kb_dir)
    hopfield = make_retriever("hopfield", kb, embedder)
    dense = make_retriever("dense", kb, embedder)
    for r in (hopfield, dense):
        answer(questions[0], r, AnswerConfig())  # warm-up: indexes, word statistics, the cross-encoder
    rows: dict[str, list[dict]] = {"default": [], "alone": [], "dense": []}
    previous: tuple[str, str] | None = None
    for q in questions[1:]:
        history = (
            [{"role": "user", "content": previous[0]}, {"role": "assistant", "content": previous[1]}] if previous else None
        )
        stages, text = one_answer(kb, hopfield, q, history)
        rows["default"].append(stages)
        rows["alone"].append(one_answer(kb, hopfield, q, None)[0])
        rows["dense"].append(one_answer(kb, dense, q, None)[0])
        previous = (q, text)
    med = {v: {s: 1000 * statistics.median(r[s] for r in rs) for s in rs[0]} for v, rs in rows.items()}
    med["default"]["conversation"] = med["default"]["reader"] - med["alone"]["reader"]
    return {
        "questions": len(questions) - 1,
        "ms": {v: {s: round(m[s], 1) for s in STAGES if s in m} for v, m in med.items()},
        "ratio_default_to_dense": round(med["default"]["total"] / med["dense"]["total"], 2),
        "cross_encoder_pairs": load_cross_encoder().work_done()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, default=None, help="a KB to copy (default: bench.kbs's SciFact KB)")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()
    if args.kb_dir is None:
        from bench.kbs import scifact_kb

        args.kb_dir = scifact_kb(default_workdir())[0]
    questions = scifact_queries()[1][: args.questions + 1] if have_scifact() else sample_questions()
    with tempfile.TemporaryDirectory() as tmp:
        kb_dir = Path(tmp) / "kb"
        shutil.copytree(args.kb_dir, kb_dir)
        load_before = load_now()
        out = run(kb_dir, questions)
    out["machine"] = machine()
    out["load"] = [round(load_before, 1), round(load_now(), 1)]
    print(f"{out['questions']} questions, medians in ms (load {out['load'][0]} -> {out['load'][1]}):")
    print(f"{'stage':<15}" + "".join(f"{v:>22}" for v in ("default (follow-up)", "same, asked alone", "dense")))
    for s in STAGES:
        print(f"{s:<15}" + "".join(f"{out['ms'][v].get(s, float('nan')):>22.1f}" for v in ("default", "alone", "dense")))
    print(f"default / dense total: {out['ratio_default_to_dense']}x (goal <= 2.5x)")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
