"""A question's embedding by the numpy encoder on a busy machine: one BLAS thread (shipped) against two.

kb/numpy_encoder.py embeds questions (and an answer's sentences) in numpy, whose OpenBLAS starts a thread per
core. When another process keeps a core busy, two BLAS threads wait on each other for it, so the encoder runs
small batches on one BLAS thread (kb/blas.py). This embeds --questions sample questions one at a time both
ways, alternating every 5, first on the machine as it is and then beside --busy processes that spin.

    python -m bench.bench_query_encoder [--questions 60] [--busy 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time

from bench.common import fmt_ms, machine, sample_questions


def _spin() -> None:
    while True:
        pass


def measure(questions: list[str]) -> dict[str, dict[str, float]]:
    """{way: {"p50_ms", "p95_ms"}}: one question per encode call, the two ways alternating every 5 questions."""
    from kb import EmbedderConfig, NumpyEncoder, query_encoder

    ways = {"one BLAS thread (shipped)": query_encoder(), "two BLAS threads": query_encoder(EmbedderConfig(threads=2))}
    times: dict[str, list[float]] = {way: [] for way in ways}
    for way, encoder in ways.items():
        assert isinstance(encoder, NumpyEncoder), "questions are embedded by the numpy encoder by default"
        encoder.encode(questions[:2])
    for i in range(0, len(questions), 5):
        for way, encoder in ways.items():
            for q in questions[i : i + 5]:
                started = time.perf_counter()
                encoder.encode([q])
                times[way].append(time.perf_counter() - started)
    return {
        way: {"p50_ms": 1000 * statistics.median(t), "p95_ms": 1000 * sorted(t)[int(0.95 * (len(t) - 1))]}
        for way, t in times.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--busy", type=int, default=1, help="processes spinning beside the second measurement")
    args = ap.parse_args()
    questions = sample_questions()[: args.questions]
    result: dict = {"questions": len(questions), "as is": measure(questions)}
    spinners = [mp.get_context("spawn").Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    try:
        result[f"{args.busy} busy"] = measure(questions)
    finally:
        for p in spinners:
            p.kill()
            p.join()
    result["machine"] = machine()  # after: it imports torch, and with torch loaded questions go to torch
    for condition in ("as is", f"{args.busy} busy"):
        for way, f in result[condition].items():
            print(f"{condition:>8} | {way:<26} | p50 {fmt_ms(f['p50_ms'] / 1000)} | p95 {fmt_ms(f['p95_ms'] / 1000)}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
