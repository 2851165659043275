"""Answer composition time against retrieval time, per question, on the warm path.

Warm path: the model is loaded and the KB's indexes are built (one warm-up question), but
no per-question cache helps: before each question the query-embedding, sentence-vector and
cross-encoder caches are emptied, so every question pays for its own embeddings and pairs, as a
new question does. Prints the medians over the 60 sample questions and their ratio (goal:
composition <= 1.5x retrieval), for the default reader, for dense retrieval and for the default
reader without the cross-encoder, and the resident memory the cross-encoder adds.

Usage:
    .venv/bin/python -m bench.bench_answer [--kb-dir KB] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from ingest import IngestConfig, ingest
from kb import KnowledgeBase, load_embedder
from retriever import AnswerConfig, answer, load_cross_encoder, make_retriever
from retriever import clear_caches as clear_retriever_caches


def clear_caches() -> None:
    clear_retriever_caches()
    load_cross_encoder().clear_cache()


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(kb: KnowledgeBase, name: str, questions: list[str], embedder, config: AnswerConfig = AnswerConfig()) -> dict:
    retriever = make_retriever(name, kb, embedder, top_k=5)
    answer(questions[0], retriever, config)  # warm-up: indexes, word statistics
    search_ms, compose_ms = [], []
    for q in questions:
        clear_caches()
        t = time.perf_counter()
        ans = answer(q, retriever, config)
        total = time.perf_counter() - t
        search_ms.append(1000 * ans.search.seconds)
        compose_ms.append(1000 * (total - ans.search.seconds))
    s, c = statistics.median(search_ms), statistics.median(compose_ms)
    return {"retrieval_ms": round(s, 1), "compose_ms": round(c, 1), "ratio": round(c / s, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, default=None, help="KB built from data/docs (default: a temp one)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()
    embedder = load_embedder()
    tmp = None
    kb_dir = args.kb_dir
    if kb_dir is None:
        tmp = tempfile.TemporaryDirectory()
        kb_dir = Path(tmp.name) / "kb"
        ingest(kb_dir, [SAMPLE_DOCS], IngestConfig(), embedder=embedder)
    questions = [json.loads(line)["question"] for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]
    before = rss_mb()
    load_cross_encoder().score("warm", ["up"])
    added = rss_mb() - before
    variants = {
        "hopfield": ("hopfield", AnswerConfig()),
        "dense": ("dense", AnswerConfig()),
        "hopfield, no cross-encoder": ("hopfield", AnswerConfig(cross_quotes=False)),
    }
    out: dict = {name: measure(KnowledgeBase(kb_dir), r, questions, embedder, c) for name, (r, c) in variants.items()}
    for name, r in out.items():
        print(
            f"{name}: retrieval {r['retrieval_ms']} ms, composition {r['compose_ms']} ms (median of "
            f"{len(questions)}), composition / retrieval {r['ratio']}x (goal <= 1.5x)"
        )
    print(f"cross-encoder loaded and run once: +{added:.0f} MiB resident")
    out["cross_encoder_mb"] = round(added)
    if args.json:
        print(json.dumps(out))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
