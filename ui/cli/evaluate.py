"""`kb eval --dataset PATH`: every retriever under every garbling condition, with a report folder."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import click

from eval import STAT_TESTS, EvalConfig, EvalError, headline_metric, load_dataset, run_eval, write_report
from kb import DEFAULT_MODEL
from retriever import DEFAULT_CANDIDATES, RETRIEVERS


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _betas(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        return tuple(float(t) for t in _names(text))
    except ValueError:
        raise EvalError(f"--beta takes numbers separated by commas (e.g. 4,8,16), not {text!r}") from None


def _conversations(dataset_path: Path, kb_dir: Path | None, out_dir: Path | None, as_json: bool, limit: int | None) -> None:
    from eval import conversations_markdown as markdown
    from eval import run_conversations

    name = _slug(dataset_path.stem if dataset_path.is_file() else dataset_path.name)
    out_dir = out_dir or Path("eval_reports") / f"{name}-conversations"
    kb_dir = kb_dir or out_dir / "cache" / f"kb-{name}"
    report = run_conversations(dataset_path, kb_dir, limit=limit)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "conversations.json").write_text(json.dumps(report.to_dict(), indent=1))
    (out_dir / "conversations.md").write_text(markdown(report) + "\n")
    click.echo(json.dumps(report.to_dict(), indent=1) if as_json else markdown(report))
    if not as_json:
        click.echo(f"report: {out_dir} (conversations.md, conversations.json)")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "dataset"


@click.command("eval")
@click.option(
    "--dataset",
    "dataset_path",
    required=True,
    type=click.Path(path_type=Path),
    help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/), or a .jsonl / .csv labelled set.",
)
@click.option(
    "--retrievers",
    default="dense,bm25,hybrid,hopfield",
    show_default=True,
    help=f"Comma-separated, from {', '.join(RETRIEVERS)}; the first is the baseline of the p-values.",
)
@click.option(
    "--conditions",
    default="clean,typo-10,typo-20,truncate-50",
    show_default=True,
    help="Comma-separated: clean, typo-N, drop-N, truncate-N (N%), first-N (words), lower-nopunct.",
)
@click.option("--beta", "beta_text", default=None, help="Hopfield betas, comma-separated; one row each (e.g. 4,8,16).")
@click.option(
    "--kb-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="KB to evaluate. A BEIR corpus is ingested into it and reused on later runs "
    "[default: OUT/cache/kb-NAME for BEIR, ./kb_data otherwise].",
)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), default=None, help="Report folder [default: eval_reports/NAME]."
)
@click.option(
    "--cache-dir", type=click.Path(path_type=Path), default=None, help="Query-embedding cache [default: OUT/cache]."
)
@click.option("--json", "as_json", is_flag=True, help="Print {condition: {retriever: {metric: value}}} as JSON.")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N questions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Garbling seed.")
@click.option("--split", default="test", show_default=True, help="BEIR qrels split (qrels/SPLIT.tsv).")
@click.option(
    "--stat-test",
    type=click.Choice(STAT_TESTS),
    default="fisher",
    show_default=True,
    help="Paired significance test against the first retriever.",
)
@click.option(
    "--depth",
    type=int,
    default=300,
    show_default=True,
    help="Chunks ranked per query before documents are counted (document-level sets).",
)
@click.option(
    "--candidates",
    "-K",
    type=int,
    default=DEFAULT_CANDIDATES,
    show_default=True,
    help="First-stage candidates of hybrid and Hopfield.",
)
@click.option(
    "--history",
    "history",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Replay this labelled set (JSONL: question, relevant) as thumbs up into a scratch question memory "
    "first; each hopfield row gets a +memory twin, and replayed questions are not scored.",
)
@click.option(
    "--model",
    default=None,
    metavar="NAME",
    help="Embedding model of the KB (all-MiniLM-L6-v2 or bge-small-en-v1.5) [default: the KB's own; the "
    "default model for a new one]. A BEIR corpus gets a KB of its own per model.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars on stderr [default: when stderr is a terminal].")
@click.option(
    "--conversations",
    is_flag=True,
    help="A conversational set (conversations.jsonl in the BEIR folder, or a JSONL whose lines carry "
    "history): first turns and follow-ups as separate rows, each way of reading the conversation side "
    "by side, the conversation memory's weights cross-validated across dialogues; --limit counts "
    "dialogues.",
)
def eval_cmd(
    dataset_path,
    retrievers,
    conditions,
    beta_text,
    kb_dir,
    out_dir,
    cache_dir,
    as_json,
    limit,
    seed,
    split,
    stat_test,
    depth,
    candidates,
    history,
    model,
    progress,
    conversations,
):
    """Recall@k, MRR, nDCG and hit rate of each retriever on a labelled set, clean and garbled."""
    if conversations:
        _conversations(dataset_path, kb_dir, out_dir, as_json, limit)
        return
    labelled = load_dataset(dataset_path, split=split)
    name = _slug(labelled.name if not dataset_path.is_file() else dataset_path.stem)
    out_dir = out_dir or Path("eval_reports") / name
    cache_dir = cache_dir or out_dir / "cache"
    if kb_dir is None:
        # Another model than the default gets a KB of its own: a BEIR KB is built once per model and reused.
        suffix = f"-{_slug(model)}" if model and model != DEFAULT_MODEL else ""
        kb_dir = cache_dir / f"kb-{name}{suffix}" if labelled.corpus is not None else Path("kb_data")
    progress = sys.stderr.isatty() if progress is None else progress
    betas = _betas(beta_text)
    config = EvalConfig(
        retrievers=_names(retrievers),
        betas=betas,
        conditions=_names(conditions),
        seed=seed,
        limit=limit,
        depth=depth,
        candidates=candidates,
        stat_test=stat_test,
        cache_dir=cache_dir,
        progress=progress,
        history=history,
        model=model,
    )
    command = [
        "kb",
        "eval",
        "--dataset",
        str(dataset_path),
        "--retrievers",
        ",".join(config.retrievers),
        "--conditions",
        ",".join(config.conditions),
    ]
    command += ["--beta", ",".join(f"{b:g}" for b in betas)] if betas else []
    command += ["--kb-dir", str(kb_dir), "--out", str(out_dir)]
    command += ["--limit", str(limit)] if limit else []
    command += ["--seed", str(seed)] if seed else []
    command += ["--history", str(history)] if history else []
    command += ["--model", model] if model else []
    report = run_eval(labelled, kb_dir, config)
    written = write_report(report, out_dir, command=shlex.join(command))
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report.summary(), indent=2))
        return
    head = headline_metric(report)
    width = max(len(r) for r in report.retrievers)
    click.echo(
        f"{report.dataset}: {report.n_queries} questions, {head} "
        f"(* differs from {report.baseline} at p < 0.05, {report.meta['stat_test']})"
    )
    click.echo(" " * width + "".join(f"  {c:>13}" for c in report.conditions))
    for r in report.retrievers:
        cells = []
        for c in report.conditions:
            p = report.pvalues[c].get(r, {}).get(head)
            cells.append(f"{report.results[c][r][head]:.3f}{'*' if p is not None and p < 0.05 else ' '}")
        click.echo(f"{r:<{width}}" + "".join(f"  {cell:>13}" for cell in cells))
    click.echo(f"report: {out_dir} ({', '.join(p.name for p in written)}); {report.meta['seconds']} s")
