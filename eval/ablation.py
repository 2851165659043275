"""The reader's ablation: dense, the default Hopfield reader and one variant per design choice, on every labelled set.

    python -m eval.ablation --out eval_reports/ablation            # all sets found
    python -m eval.ablation --sets covidfaq,sample --limit 200     # a quick look

Sets: `covidfaq` and `scifact` (../shared/datasets, skipped when absent; each ingested once
into KB_ROOT/NAME and reused), `sample` (data/questions.jsonl on the sample docs) and
`sample-loose` (its 15 paraphrased questions). Rows: dense (the baseline of every p-value),
the default reader, and the default with one thing changed. Writes ablation.md and
ablation.json to --out and prints the table: recall@1 / recall@10, * where the row differs
from dense at p < 0.05 (paired randomisation test).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from eval.datasets import LabelledSet, from_records, load_dataset
from eval.runner import EvalConfig, EvalReport, RetrieverSpec, run_eval
from retriever import HopfieldConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CONDITIONS = ("clean", "typo-10", "typo-20", "truncate-50", "drop-20")
HEAD = ("recall@1", "recall@10")


def variants(base: HopfieldConfig = HopfieldConfig()) -> list[RetrieverSpec]:
    """dense, the default reader, and the default with one design choice undone."""
    return [
        RetrieverSpec("dense", "dense"),
        RetrieverSpec("hopfield", "hopfield", base),
        RetrieverSpec("char view always on (no gate)", "hopfield", replace(base, gated=False)),
        RetrieverSpec("gate by garble only (no rare-word term)", "hopfield", replace(base, rare_idf=99.0)),
        RetrieverSpec("no BM25", "hopfield", replace(base, bm25_weight=0.0)),
        RetrieverSpec("no settled state (evidence only)", "hopfield", replace(base, settled_weight=0.0)),
        RetrieverSpec("no query repair", "hopfield", replace(base, repair=False)),
    ]


def sample_set(style: str | None = None) -> LabelledSet:
    rows = [json.loads(line) for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if style is None or r.get("style") == style]
    return from_records(rows, "sample" if style is None else f"sample-{style}")


def labelled_sets(names: list[str], kb_root: Path) -> list[tuple[LabelledSet, Path]]:
    """(set, KB directory) for each name that can run here; shared sets are skipped when absent."""
    out = []
    for name in names:
        if name in ("covidfaq", "scifact"):
            folder = SHARED / name
            if not folder.is_dir():
                print(f"skipped {name}: {folder} is absent")
                continue
            out.append((load_dataset(folder), kb_root / name))
        elif name in ("sample", "sample-loose"):
            out.append((sample_set(None if name == "sample" else "loose"), kb_root / "sample"))
        else:
            raise SystemExit(f"unknown set {name!r}; choose from covidfaq, sample, sample-loose, scifact")
    return out


def ensure_sample_kb(kb_dir: Path) -> None:
    if not (kb_dir / "kb.sqlite").exists():
        from ingest import IngestConfig, ingest

        ingest(kb_dir, [SAMPLE_DOCS], IngestConfig())


def table(report: EvalReport) -> list[str]:
    """Markdown rows: one per variant, recall@1 / recall@10 per condition, * for p < 0.05 against dense."""
    lines = ["| reader | " + " | ".join(report.conditions) + " |", "|---" * (len(report.conditions) + 1) + "|"]
    for r in report.retrievers:
        cells = []
        for c in report.conditions:
            marks = []
            for m in HEAD:
                p = report.pvalues[c].get(r, {}).get(m)
                marks.append(f"{report.results[c][r][m]:.3f}{'*' if p is not None and p < 0.05 else ''}")
            cells.append(" / ".join(marks))
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="covidfaq,sample,sample-loose,scifact")
    parser.add_argument("--out", type=Path, default=Path("eval_reports/ablation"))
    parser.add_argument("--kb-root", type=Path, default=None, help="KBs of the sets [default: OUT/kbs]")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    args = parser.parse_args(argv)
    kb_root = args.kb_root or args.out / "kbs"
    args.out.mkdir(parents=True, exist_ok=True)
    specs = variants()
    lines = [
        "# Hopfield reader ablation",
        "",
        "recall@1 / recall@10 at document level; * differs from dense at p < 0.05 "
        "(paired randomisation test, 10,000 resamples, seed 0).",
        "",
    ]
    payload = {}
    for labelled, kb_dir in labelled_sets([s.strip() for s in args.sets.split(",") if s.strip()], kb_root):
        if labelled.corpus is None:
            ensure_sample_kb(kb_dir)
        started = time.perf_counter()
        config = EvalConfig(
            conditions=tuple(args.conditions.split(",")),
            limit=args.limit,
            cache_dir=args.out / "cache",
            metrics=("recall@1", "recall@10", "mrr@10", "ndcg@10"),
        )
        report = run_eval(labelled, kb_dir, config, specs=specs)
        lines += (
            [
                f"## {labelled.name} ({report.n_queries} questions, {report.meta['kb_chunks']} chunks, "
                f"{time.perf_counter() - started:.0f} s)",
                "",
            ]
            + table(report)
            + [""]
        )
        payload[labelled.name] = {
            "results": report.results,
            "pvalues": report.pvalues,
            "ms_per_query": report.ms_per_query,
            "n_queries": report.n_queries,
        }
        print("\n".join(lines[-(len(report.retrievers) + 5) :]), flush=True)
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n")
    (args.out / "ablation.json").write_text(json.dumps(payload, indent=1))
    print(f"written: {args.out / 'ablation.md'}")


if __name__ == "__main__":
    main()
