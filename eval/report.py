"""Writing a run to a report folder: results.md, results.json, per_query.json and PNG plots."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from eval.errors import EvalError, MissingExtra
from eval.garble import parse_condition
from eval.runner import EvalReport

ALPHA = 0.05


def headline_metric(report: EvalReport) -> str:
    """recall@10 when it was measured, else the first metric: what the summary table and plots show."""
    return "recall@10" if "recall@10" in report.metrics else report.metrics[0]


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def markdown(report: EvalReport, command: str | None = None) -> str:
    """The report as Markdown: a summary across conditions, then one table per condition."""
    m = report.meta
    head = headline_metric(report)
    base = report.baseline
    test = {"fisher": "paired randomisation test", "student": "paired t-test", "tukey": "Tukey HSD"}.get(
        m.get("stat_test", ""), m.get("stat_test", "")
    )
    lines = [f"# Retrieval evaluation: {report.dataset}", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    level = "document level (each document counted once, at its best chunk)" if report.level == "doc" else "chunk level"
    kb_docs = f"{m['kb_documents']} documents, " if m.get("kb_documents") is not None else ""
    lines += [
        f"{report.n_queries} questions, {level}. KB `{m.get('kb_dir')}` ({kb_docs}{m.get('kb_chunks')} chunks), "
        f"model {m.get('model')} ({m.get('precision')}), garbling seed {m.get('seed')}, "
        f"{m.get('depth')} chunks ranked per query, {m.get('cutoff')} targets scored, first-stage K={m.get('candidates')}. "
        f"Run time {m.get('seconds')} s.",
        "",
        f"## {head} by condition",
        "",
        "| retriever | " + " | ".join(report.conditions) + " |",
        "|---|" + "---|" * len(report.conditions),
    ]
    for r in report.retrievers:
        cells = []
        for c in report.conditions:
            value = _fmt(report.results[c][r][head])
            p = report.pvalues.get(c, {}).get(r, {}).get(head)
            cells.append(value + ("*" if p is not None and p < ALPHA else ""))
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"\\* differs from {base} at p < {ALPHA} ({test}, per condition, not corrected for the "
        "number of comparisons). Every p-value is in results.json; per-query scores in per_query.json.",
        "",
    ]
    shown_p = [x for x in ("recall@10", "ndcg@10") if x in report.metrics]
    for c in report.conditions:
        lines += [
            f"## {c}",
            "",
            "| retriever | " + " | ".join(report.metrics) + " | " + "".join(f"p({x}) | " for x in shown_p) + "ms/query |",
            "|---|" + "---|" * (len(report.metrics) + len(shown_p) + 1),
        ]
        for r in report.retrievers:
            pvalues = report.pvalues.get(c, {}).get(r, {})
            cells = [_fmt(report.results[c][r][x]) for x in report.metrics]
            cells += [_p(pvalues.get(x)) if r != base else "base" for x in shown_p]
            cells.append(f"{report.ms_per_query[c][r]:.1f}")
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines.append("")
    embedding_seconds = {k: round(v, 2) for k, v in m.get("query_embedding_seconds", {}).items()}
    lines += [
        "ms/query: ranking only; query embeddings are computed once per condition and shared "
        f"(embedding seconds per condition: {json.dumps(embedding_seconds)}).",
        "",
    ]
    if report.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in report.warnings] + [""]
    return "\n".join(lines)


def _plot_recall_curves(report: EvalReport, path: Path) -> bool:
    import matplotlib.pyplot as plt

    ks = sorted((int(x.split("@")[1]), x) for x in report.metrics if x.startswith("recall@"))
    if len(ks) < 2:
        return False
    n = len(report.conditions)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    for ax, c in zip(axes.flat, report.conditions):
        for r in report.retrievers:
            ax.plot([k for k, _ in ks], [report.results[c][r][x] for _, x in ks], marker="o", label=r)
        ax.set_xscale("log")
        ax.set_xticks([k for k, _ in ks], [str(k) for k, _ in ks])
        ax.set_title(c)
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes[0][0].set_ylabel("recall@k")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{report.dataset}: recall@k per condition")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_beta(report: EvalReport, path: Path, metric: str) -> bool:
    import matplotlib.pyplot as plt

    rows = sorted(report.betas.items(), key=lambda kv: kv[1])
    if not rows:
        return False
    base = next((r for r in report.retrievers if r not in report.betas), None)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, c in enumerate(report.conditions):
        color = f"C{i % 10}"
        ax.plot(
            [b for _, b in rows],
            [report.results[c][r][metric] for r, _ in rows],
            marker="o",
            color=color,
            label=f"hopfield, {c}",
        )
        if base is not None:
            ax.axhline(report.results[c][base][metric], color=color, linestyle=":", linewidth=1, label=f"{base}, {c}")
    ax.set_xscale("log", base=2)
    ax.set_xticks([b for _, b in rows], [f"{b:g}" for _, b in rows])
    ax.set_xlabel("beta")
    ax.set_ylabel(metric)
    ax.set_title(f"{report.dataset}: {metric} against Hopfield beta")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_typo(report: EvalReport, path: Path, metric: str) -> bool:
    import matplotlib.pyplot as plt

    points = []
    for c in report.conditions:
        cond = parse_condition(c)
        if cond.kind in ("clean", "typo"):
            points.append((cond.strength, c))
    points.sort()
    if not any(s > 0 for s, _ in points):
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in report.retrievers:
        ax.plot([s for s, _ in points], [report.results[c][r][metric] for _, c in points], marker="o", label=r)
    ax.set_xticks([s for s, _ in points], [f"{s}%" if s else "clean" for s, _ in points])
    ax.set_xlabel("typo strength (share of characters with a typing error)")
    ax.set_ylabel(metric)
    ax.set_title(f"{report.dataset}: {metric} against typo strength")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot(report: EvalReport, out_dir: Path) -> list[Path]:
    """PNG plots that the run has data for: recall@k curves, metric vs beta, metric vs typo strength."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtra("matplotlib", "the report's plots") from exc

    matplotlib.use("Agg")
    metric = headline_metric(report)
    made = []
    for name, func in (
        ("recall_at_k.png", lambda p: _plot_recall_curves(report, p)),
        ("recall10_vs_beta.png", lambda p: _plot_beta(report, p, metric)),
        ("recall10_vs_typo.png", lambda p: _plot_typo(report, p, metric)),
    ):
        if func(out_dir / name):
            made.append(out_dir / name)
    return made


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_report(report: EvalReport, out_dir: str | Path, command: str | None = None) -> list[Path]:
    """results.md, results.json (means, p-values, timings, warnings, settings), per_query.json
    (garbled queries, judgements, per-query scores and top targets) and the plots; returns the paths."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvalError(f"cannot create the report folder {out_dir}: {exc.strerror or exc}; pick another --out") from exc
    data = report.to_dict()
    summary = {k: v for k, v in data.items() if k not in ("per_query", "top", "queries", "qrels")}
    summary["command"] = command
    _write_json(out_dir / "results.json", summary)
    _write_json(out_dir / "per_query.json", {k: data[k] for k in ("queries", "qrels", "per_query", "top")})
    (out_dir / "results.md").write_text(markdown(report, command), encoding="utf-8")
    return [out_dir / "results.md", out_dir / "results.json", out_dir / "per_query.json"] + plot(report, out_dir)
