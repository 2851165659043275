"""Embedding models side by side: retrieval quality and ingest throughput of each packaged model, per labelled set.

    python -m eval.models --out eval_reports/models                      # covidfaq, sample, scifact
    python -m eval.models --sets covidfaq,sample --conditions clean      # a quick look

For each model (kb.PACKAGED_MODELS; --models to choose) and set, the set's documents are ingested into a KB
of that model (KB_ROOT/MODEL/SET, built once and reused; its first build's throughput is kept beside it),
then dense and hopfield are scored. A model with a query instruction (bge-small-en-v1.5) is scored twice on
the same KB: questions embedded as they are, and with the instruction before them. Writes models.md and
models.json to --out and prints the table: recall@1 / recall@10 / MRR@10 at document level.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from eval.ablation import labelled_sets
from eval.datasets import LabelledSet
from eval.runner import EvalConfig, run_eval
from ingest import IngestConfig, IngestReport, ingest, ingest_texts
from kb import DEFAULT_MODEL, PACKAGED_MODELS, EmbedderConfig, OnnxEmbedder, OnnxEmbeddingModel, TextEmbedder, load_embedder

SETS = ("covidfaq", "sample", "scifact")
METRICS = ("recall@1", "recall@10", "mrr@10")
RETRIEVERS = ("dense", "hopfield")
BUILD_INFO = "build.json"


def query_variants(embedder: TextEmbedder) -> list[tuple[str, TextEmbedder]]:
    """(label, embedder) for each way of embedding questions: as they are, and (an ONNX model with a
    recommended instruction) with it; both embed passages alike, so they share the model's KB."""
    spec = PACKAGED_MODELS.get(embedder.name)
    if not isinstance(spec, OnnxEmbeddingModel) or not spec.recommended_instruction:
        return [(embedder.name, embedder)]
    plain = OnnxEmbedder(embedder.config, replace(spec, query_instruction=""))
    instructed = OnnxEmbedder(embedder.config, replace(spec, query_instruction=spec.recommended_instruction))
    return [(f"{embedder.name}, no query instruction", plain), (f"{embedder.name}, query instruction", instructed)]


def build_kb(labelled: LabelledSet, kb_dir: Path, embedder: TextEmbedder) -> dict:
    """Ingest the set's documents into kb_dir (once) and return that first build's throughput."""
    info_path = kb_dir / BUILD_INFO
    if info_path.exists():
        return json.loads(info_path.read_text())
    from data import SAMPLE_DOCS

    config = IngestConfig(embedder=embedder.config)
    report: IngestReport = (
        ingest_texts(kb_dir, list(labelled.corpus), config, embedder=embedder)
        if labelled.corpus is not None
        else ingest(kb_dir, [SAMPLE_DOCS], config, embedder=embedder)
    )
    stages = dict(report.stage_seconds)
    info = {
        "chunks": report.chunks_embedded,
        "ingest_seconds": round(report.seconds, 1),
        "embed_seconds": round(stages.get("embed", 0.0), 1),
        "chunks_per_s": round(report.chunks_embedded / max(report.seconds, 1e-9), 1),
        "embedded_per_s": round(report.chunks_embedded / max(stages.get("embed", 0.0), 1e-9), 1),
    }
    info_path.write_text(json.dumps(info, indent=1))
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument(
        "--models", default=",".join([DEFAULT_MODEL] + sorted(m for m in PACKAGED_MODELS if m != DEFAULT_MODEL))
    )
    parser.add_argument("--out", type=Path, default=Path("eval_reports/models"))
    parser.add_argument("--kb-root", type=Path, default=None, help="KBs of the sets [default: OUT/kbs]")
    parser.add_argument("--conditions", default="clean,typo-20")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    kb_root = args.kb_root or args.out / "kbs"
    args.out.mkdir(parents=True, exist_ok=True)
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    lines = [
        "# Embedding models",
        "",
        "recall@1 / recall@10 / MRR@10 at document level, per condition; ingest: chunks per second of the "
        "whole first build (parse, embed, write) and of its embedding stage alone.",
        "",
    ]
    payload: dict = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        embedder = load_embedder(EmbedderConfig(model=model))
        for labelled, _ in labelled_sets(names, kb_root):
            kb_dir = kb_root / model / ("sample" if labelled.name.startswith("sample") else labelled.name)
            build = build_kb(labelled, kb_dir, embedder)
            for label, variant in query_variants(embedder):
                started = time.perf_counter()
                config = EvalConfig(
                    retrievers=RETRIEVERS,
                    conditions=conditions,
                    metrics=METRICS,
                    limit=args.limit,
                    cache_dir=args.out / "cache",
                )
                report = run_eval(labelled, kb_dir, config, embedder=variant)
                row = {
                    "model": label,
                    "set": labelled.name,
                    "questions": report.n_queries,
                    "chunks": report.meta["kb_chunks"],
                    "build": build,
                    "results": report.results,
                    "seconds": round(time.perf_counter() - started, 1),
                }
                payload.setdefault(labelled.name, []).append(row)
                print(
                    json.dumps({k: row[k] for k in ("model", "set", "questions", "chunks", "build", "seconds")}), flush=True
                )
    for name, rows in payload.items():
        lines += [
            f"## {name} ({rows[0]['questions']} questions)",
            "",
            "| model | chunks | ingest chunks/s (embed only) | retriever | " + " | ".join(conditions) + " |",
            "|---" * (4 + len(conditions)) + "|",
        ]
        for row in rows:
            b = row["build"]
            for r in RETRIEVERS:
                cells = [" / ".join(f"{row['results'][c][r][m]:.3f}" for m in METRICS) for c in conditions]
                lines.append(
                    f"| {row['model']} | {row['chunks']} | {b['chunks_per_s']} ({b['embedded_per_s']}) | {r} | "
                    + " | ".join(cells)
                    + " |"
                )
        lines.append("")
    (args.out / "models.md").write_text("\n".join(lines) + "\n")
    (args.out / "models.json").write_text(json.dumps(payload, indent=1))
    print("\n".join(lines))
    print(f"written: {args.out / 'models.md'}")


if __name__ == "__main__":
    main()
