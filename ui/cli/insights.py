"""`kb insights`: what the KB could not answer, which documents to fix; `--replay`: whether a fix worked.

Reads the KB's question log (filled by the app, the API and `kb ask --log`) and its feedback for the period
(--since 7d: the last seven days; also 24h, 2w or a date 2026-11-01; default: all that is kept); --json prints
the report as JSON, --csv the gap topics as CSV.
"""

from __future__ import annotations

import json

import click

from insights import (
    InsightsConfig,
    TopicConfig,
    build_insights,
    insights_csv,
    insights_dict,
    insights_text,
    parse_when,
    replay,
    replay_dict,
)
from kb import KnowledgeBase
from retriever import make_retriever
from ui.cli.options import JSON, KB_DIR
from ui.cli.terminal import safe_text


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """--since as Unix seconds (insights.parse_when: "7d", "24h", "2w" before now, or a UTC date); None for None."""
    if value is None:
        return None
    try:
        return parse_when(value, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("insights")
@KB_DIR
@click.option("--since", default=None, help="Period: 7d, 24h, 2w or a date (UTC); default: everything kept.")
@JSON
@click.option("--csv", "as_csv", is_flag=True, help="Print the gap topics as CSV.")
@click.option("--top", default=10, show_default=True, help="Gap topics shown.")
@click.option(
    "--method",
    type=click.Choice(["hopfield", "hdbscan"]),
    default="hopfield",
    show_default=True,
    help="How gap questions are grouped into topics.",
)
@click.option(
    "--weak-cosine",
    type=float,
    default=None,
    help="Count answered questions whose nearest passage is below this cosine as gaps too (e.g. 0.5; off by default).",
)
@click.option("--replay", "do_replay", is_flag=True, help="Re-ask the period's gap questions against the current KB.")
def insights(kb_dir, since, as_json, as_csv, top, method, weak_cosine, do_replay):
    """Gap topics (questions not answered or thumbed down), document health, and --replay after a fix."""
    kb = KnowledgeBase(kb_dir)
    config = InsightsConfig(topics=TopicConfig(method=method), top_topics=top, weak_cosine=weak_cosine)
    report = build_insights(kb, since=parse_since(since), config=config)
    if do_replay:
        again = replay(report.topics, make_retriever("hopfield", kb))
        if as_json:
            click.echo(json.dumps(replay_dict(again), indent=2))
            return
        click.echo(f"replayed {again.asked} gap question(s): {again.answered} answered now ({again.share:.0%})")
        for r in again.topics[:top]:
            click.echo(safe_text(f'  #{r.topic + 1} {r.answered}/{r.asked} answered  "{r.example}"'))
        return
    if as_json:
        click.echo(json.dumps(insights_dict(report, top), indent=2))
        return
    if as_csv:
        click.echo(insights_csv(report, top), nl=False)
        return
    click.echo("\n".join(safe_text(line) for line in insights_text(report, top).splitlines()))
