"""`kb memory list|show|forget`: what the question memory learnt from feedback, and how strongly."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import asdict

import click

from kb import KBError, KnowledgeBase, QuestionMemory
from ui.cli.options import JSON, KB_DIR
from ui.cli.terminal import safe_text


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at).isoformat(timespec="seconds")


def _row(memory: QuestionMemory, a, now: float) -> dict:
    return {**asdict(a), "effective_strength": round(a.effective(memory.config, now), 4)}


@click.group("memory")
def memory() -> None:
    """The question memory: questions confirmed (thumbs up) to be answered by a passage."""


@memory.command("list")
@KB_DIR
@JSON
@click.option("--all", "include_retired", is_flag=True, help="Include retired associations (their passage changed).")
def list_cmd(kb_dir, as_json, include_retired):
    """Associations, strongest first: effective strength (decayed), confirmations / rejections, question, document."""
    mem = QuestionMemory(KnowledgeBase(kb_dir))
    mem.prune_if_stale()
    now = time.time()
    rows = sorted(
        (_row(mem, a, now) for a in mem.associations(include_retired)), key=lambda r: (-r["effective_strength"], r["id"])
    )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("the question memory is empty (thumbs up in the app or the API fill it)")
        return
    for r in rows:
        flag = " retired" if r["retired"] else ""
        user = f" by {r['user']}" if r["user"] else ""
        click.echo(
            safe_text(
                f"#{r['id']:<5} {r['effective_strength']:5.2f} (+{r['confirmations']}/-{r['rejections']})"
                f"{flag}{user}  {r['question'][:70]!r} -> {r['doc_source']} v{r['doc_version']}"
            )
        )


@memory.command("show")
@click.argument("association_id", type=int)
@KB_DIR
@JSON
def show_cmd(association_id, kb_dir, as_json):
    """One association: its question, passage, strength and full history."""
    kb = KnowledgeBase(kb_dir)
    mem = QuestionMemory(kb)
    mem.prune_if_stale()
    a = mem.get(association_id)
    events = mem.events(association_id)
    if a is None and not events:
        raise KBError(f"no association #{association_id}; `kb memory list` shows them")
    chunk = mem.current_chunk(a) if a is not None else None
    record = kb.chunks([chunk])[0] if chunk is not None else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "association": _row(mem, a, time.time()) if a else None,
                    "chunk_id": chunk,
                    "passage": record.text if record else None,
                    "events": [asdict(e) for e in events],
                },
                indent=2,
            )
        )
        return
    if a is None:
        click.echo(f"#{association_id} was removed; its history:")
    else:
        click.echo(safe_text(f"#{a.id}: {a.question!r}"))
        click.echo(
            safe_text(
                f"  passage: {a.doc_source} v{a.doc_version}, version {a.text_hash[:12]}, "
                + (f"now chunk {chunk}" if chunk is not None else "not in the KB now")
                + (f" (retired: {a.retired_reason})" if a.retired else "")
            )
        )
        click.echo(
            f"  strength {a.strength:.2f} at {_when(a.last_confirmed_at)}, now "
            f"{a.effective(mem.config):.2f} (half-life {mem.config.half_life_days:g} days); "
            f"+{a.confirmations}/-{a.rejections}" + (f"; by {safe_text(a.user)}" if a.user else "")
        )
        if record is not None:
            snippet = " ".join(record.text.split())
            click.echo(f"  {safe_text(snippet[:240])}{'...' if len(snippet) > 240 else ''}")
    for e in events:
        extra = " ".join(x for x in (f"{e.delta:+g}" if e.delta else "", e.origin, e.user, e.note) if x)
        click.echo(safe_text(f"  {_when(e.at)}  {e.event:<10} {extra}"))


@memory.command("forget")
@click.argument("association_id", type=int)
@KB_DIR
def forget_cmd(association_id, kb_dir):
    """Delete one association (its history stays)."""
    if not QuestionMemory(KnowledgeBase(kb_dir)).forget(association_id):
        click.echo(f"error: no association #{association_id}; `kb memory list` shows them", err=True)
        sys.exit(2)
    click.echo(f"forgot #{association_id}")
