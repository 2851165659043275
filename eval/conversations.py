"""Conversational sets: every user turn ranked with the conversation before it, first turns and follow-ups apart.

A conversational set is JSONL, one user turn a line: {"id", "question", "history": [{"role", "content"}, ...],
"relevant": [...], "dialogue"?: ..., "turn"?: ...} (doc2dial-dev's conversations.jsonl has this shape; a
line without "dialogue" belongs to the dialogue named by its id up to the last "_"). A BEIR folder holding
conversations.jsonl is read with its corpus, which is ingested first as for any BEIR set.

Rows (each a way to read the conversation; `python -m eval.conversations` or `kb eval --conversations`):
    turn alone              the Hopfield reader on the current turn (what a product without history does)
    + previous user turn    the previous user turn and the current one, concatenated
    whole conversation      every message concatenated, newest first (hopfield, and dense)
    dense, turn alone
    conversation memory     the reader with the conversation as Hopfield memory (retriever.conversation)
Scores: recall@1/@5/@10 and MRR@10 of the sections, for first turns and follow-ups separately, follow-ups by
turn (2, 3-5, 6+), the share of follow-ups whose top hit history made wrong (right alone, wrong with it), and
a paired randomisation test of each row against "turn alone".

The conversation memory's weights can be chosen here by cross-validation across dialogues (cross_validate):
each fold's weights are picked on the other folds' dialogues, and only held-out turns are reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from eval.datasets import LabelledSet, load_beir
from eval.errors import EvalError
from eval.metrics import paired_randomisation
from eval.targets import chunk_documents, prepare_kb, resolve_qrels, to_targets
from kb import KBError, KnowledgeBase, embedder_for
from retriever import DEFAULT_CANDIDATES, HistoryConfig, Turn, build_context, make_retriever, parse_history

FILE = "conversations.jsonl"
METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10")
BUCKETS = (("2", 2, 2), ("3-5", 3, 5), ("6+", 6, 10**9))


@dataclass(frozen=True)
class ConversationTurn:
    """One user turn: its id, dialogue, position (1 = first user turn), text, the messages before it, targets."""

    id: str
    dialogue: str
    turn: int
    question: str
    history: tuple[Turn, ...]
    relevant: tuple[str, ...]


def load_conversations(path: str | Path) -> tuple[list[ConversationTurn], LabelledSet | None]:
    """The turns of a conversational set, and the BEIR set (its corpus) when path is a BEIR folder.

    Raises EvalError naming the file and line for a line that is not a usable turn.
    """
    path = Path(path)
    labelled = None
    if path.is_dir():
        labelled = load_beir(path)
        path = path / FILE
    if not path.is_file():
        raise EvalError(f"{path}: no such conversational set (JSONL with question, history, relevant)")
    turns = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            history = parse_history(row.get("history"))
            question, relevant = row["question"], row["relevant"]
            if not isinstance(question, str) or not question.strip() or not relevant:
                raise ValueError("needs a question and at least one relevant target")
        except (KBError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EvalError(f"{path}:{n}: not a conversational turn ({exc})") from None
        qid = str(row.get("id", n))
        dialogue = str(row.get("dialogue", qid.rsplit("_", 1)[0]))
        turns.append(
            ConversationTurn(
                qid,
                dialogue,
                int(row.get("turn", 1 + sum(t.role == "user" for t in history))),
                question.strip(),
                history,
                tuple(str(r) for r in relevant),
            )
        )
    if not turns:
        raise EvalError(f"{path} holds no turns")
    return turns, labelled


def baseline_text(row: str, turn: ConversationTurn) -> str:
    """The question text a crude baseline row gives the reader."""
    if row == "+ previous user turn":
        users = [t.content for t in turn.history if t.role == "user"]
        return " ".join(users[-1:] + [turn.question])
    if row.startswith("whole conversation"):
        return " ".join(reversed([t.content for t in turn.history] + [turn.question]))
    return turn.question


def _scores(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    first = next((i for i, t in enumerate(ranked[:10]) if t in relevant), None)
    out = {f"recall@{k}": len(relevant & set(ranked[:k])) / len(relevant) for k in (1, 5, 10)}
    out["mrr@10"] = 0.0 if first is None else 1.0 / (first + 1)
    return out


class ConversationEval:
    """Ranks a conversational set's turns against one KB under each row; results per turn id."""

    def __init__(self, turns: Sequence[ConversationTurn], kb: KnowledgeBase, candidates: int = DEFAULT_CANDIDATES) -> None:
        self.turns = list(turns)
        self.kb = kb
        self.embedder = embedder_for(kb)
        self.hopfield = make_retriever("hopfield", kb, self.embedder, top_k=10, candidates=candidates, memory=None)
        self.dense = make_retriever("dense", kb, self.embedder, top_k=10, candidates=candidates)
        self.doc_of = chunk_documents(kb)

    def targets(self, ids) -> list[str]:
        return to_targets(ids, self.doc_of, 10)

    def run_row(self, row: str, config: HistoryConfig = HistoryConfig()) -> dict[str, list[str]]:
        """{turn id: targets best first} for one row."""
        retriever = self.dense if row.startswith("dense") or row.endswith("(dense)") else self.hopfield
        out = {}
        for t in self.turns:
            if row == "conversation memory":
                context = build_context(self.hopfield, t.question, t.history, config) if t.history else None
                ranked = self.hopfield.rank([t.question], k=30, contexts=[context])[0]
            else:
                ranked = retriever.rank([baseline_text(row, t)], k=30)[0]
            out[t.id] = self.targets(ranked.ids)
        return out


ROWS = (
    "turn alone",
    "+ previous user turn",
    "whole conversation",
    "whole conversation (dense)",
    "dense, turn alone",
    "conversation memory",
)


@dataclass(frozen=True)
class ConversationReport:
    """Per row: mean metrics over first turns and follow-ups, follow-ups by turn bucket, p-values against
    "turn alone" (follow-ups), the share of follow-ups history made wrong at rank 1; and the configs used."""

    n_first: int
    n_follow: int
    table: dict[str, dict[str, dict[str, float]]]
    pvalues: dict[str, dict[str, float]]
    worse: dict[str, float]
    configs: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_turns": self.n_first,
            "follow_ups": self.n_follow,
            "table": self.table,
            "p_vs_turn_alone": self.pvalues,
            "history_made_top_hit_wrong": self.worse,
            "configs": self.configs,
        }


def summarise(
    turns: Sequence[ConversationTurn],
    rankings: dict[str, dict[str, list[str]]],
    configs: dict[str, Any] | None = None,
    seed: int = 0,
) -> ConversationReport:
    """Scores of each row's rankings: first turns, follow-ups, turn buckets; paired tests against turn alone."""
    per = {row: {t.id: _scores(r[t.id], set(t.relevant)) for t in turns} for row, r in rankings.items()}
    first = [t.id for t in turns if not t.history]
    follow = [t.id for t in turns if t.history]
    groups = {"first": first, "follow-up": follow}
    for name, lo, hi in BUCKETS:
        groups[f"turn {name}"] = [t.id for t in turns if t.history and lo <= t.turn <= hi]
    table = {
        row: {g: {m: float(np.mean([pq[q][m] for q in ids])) if ids else 0.0 for m in METRICS} for g, ids in groups.items()}
        for row, pq in per.items()
    }
    base = per.get("turn alone")
    pvalues, worse = {}, {}
    for row, pq in per.items():
        if base is None or row == "turn alone":
            continue
        pvalues[row] = {
            m: paired_randomisation(np.array([base[q][m] for q in follow]), np.array([pq[q][m] for q in follow]), seed=seed)
            for m in ("recall@1", "recall@5")
        }
        worse[row] = float(np.mean([base[q]["recall@1"] > pq[q]["recall@1"] for q in follow])) if follow else 0.0
    return ConversationReport(len(first), len(follow), table, pvalues, worse, configs or {})


# Small on purpose: each point is a full pass over the set (3-6 minutes for doc2dial-dev on a busy 2-core machine).
GRID = tuple(HistoryConfig(visited_weight=v) for v in (0.5, 0.7, 1.0))
# The context weight chosen per fold too (--wide-grid): 9 passes, about 30 minutes on doc2dial-dev.
WIDE_GRID = tuple(HistoryConfig(context_weight=c, visited_weight=v) for c in (0.3, 0.5, 0.8) for v in (0.5, 0.7, 1.0))


def cross_validate(
    ev: ConversationEval,
    grid: Sequence[HistoryConfig] = GRID,
    folds: int = 5,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, list[str]], list[HistoryConfig]]:
    """The conversation memory's rankings with each dialogue's weights picked on the other folds' dialogues
    (objective: mean of follow-up recall@1 and recall@5), and the config each fold picked."""
    dialogues = sorted({t.dialogue for t in ev.turns})
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(dialogues), np.arange(len(dialogues)) % folds))
    runs = []
    for i, config in enumerate(grid):
        runs.append(ev.run_row("conversation memory", config))
        if progress is not None:
            progress(i + 1, len(grid))
    follow = [t for t in ev.turns if t.history]
    chosen, out = [], {}
    for f in range(folds):
        train = [t for t in follow if fold_of[t.dialogue] != f]

        def objective(run: dict[str, list[str]]) -> float:
            s = [_scores(run[t.id], set(t.relevant)) for t in train]
            return float(np.mean([x["recall@1"] + x["recall@5"] for x in s]))

        best = max(range(len(grid)), key=lambda i: objective(runs[i]))
        chosen.append(grid[best])
        out.update({t.id: runs[best][t.id] for t in ev.turns if fold_of[t.dialogue] == f})
    return out, chosen


def run_conversations(
    path: str | Path,
    kb_dir: str | Path,
    rows: Sequence[str] = ROWS,
    cv: bool = True,
    config: HistoryConfig = HistoryConfig(),
    limit: int | None = None,
    grid: Sequence[HistoryConfig] = GRID,
) -> ConversationReport:
    """The table of a conversational set (ingesting a BEIR folder's corpus into kb_dir first).

    cv: the conversation-memory row is cross-validated over grid (else config as given).
    """
    turns, labelled = load_conversations(path)
    kb_dir = Path(kb_dir)
    if labelled is not None:
        prepare_kb(labelled, kb_dir, embedder_for(kb_dir))  # the KB's model; the default for a new one
    kb = KnowledgeBase(kb_dir)
    relabelled = LabelledSet(
        name=str(path), queries={t.id: t.question for t in turns}, qrels={t.id: {r: 1 for r in t.relevant} for t in turns}
    )
    qrels, _ = resolve_qrels(relabelled, kb)
    turns = [replace(t, relevant=tuple(qrels[t.id])) for t in turns if t.id in qrels]
    if limit is not None:
        dialogues = list(dict.fromkeys(t.dialogue for t in turns))[:limit]
        turns = [t for t in turns if t.dialogue in set(dialogues)]
    ev = ConversationEval(turns, kb)
    rankings, configs = {}, {}
    for row in rows:
        if row == "conversation memory" and cv:
            rankings[row], chosen = cross_validate(ev, grid)
            configs[row] = [c.__dict__ for c in chosen]
        else:
            rankings[row] = ev.run_row(row, config)
    return summarise(turns, rankings, configs)


def markdown(report: ConversationReport) -> str:
    """The README's table: R@1 / R@5 for first turns and follow-ups, follow-ups by turn, worse-at-1 share."""
    lines = [
        f"| reading of the conversation | first turns R@1 / R@5 (n={report.n_first}) | follow-ups R@1 / R@5 "
        f"(n={report.n_follow}) | turn 2 | turns 3-5 | turns 6+ | p (R@1, R@5) vs turn alone | history made "
        "top hit wrong |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row, groups in report.table.items():

        def pair(g: str) -> str:
            return f"{groups[g]['recall@1']:.3f} / {groups[g]['recall@5']:.3f}"

        p = report.pvalues.get(row)
        ptxt = f"{p['recall@1']:.4f}, {p['recall@5']:.4f}" if p else "—"
        worse = f"{report.worse[row]:.3f}" if row in report.worse else "—"
        lines.append(
            f"| {row} | {pair('first')} | {pair('follow-up')} | {pair('turn 2')} | {pair('turn 3-5')} | "
            f"{pair('turn 6+')} | {ptxt} | {worse} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m eval.conversations", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a BEIR folder holding conversations.jsonl, or a conversations JSONL")
    parser.add_argument("--kb-dir", required=True, help="the KB to rank against (a BEIR corpus is ingested into it)")
    parser.add_argument("--no-cv", action="store_true", help="use the default weights instead of cross-validating")
    parser.add_argument("--limit", type=int, help="only the first N dialogues")
    parser.add_argument("--wide-grid", action="store_true", help="cross-validate the context weight too (9 passes)")
    parser.add_argument("--json", help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = run_conversations(
        args.dataset, args.kb_dir, cv=not args.no_cv, limit=args.limit, grid=WIDE_GRID if args.wide_grid else GRID
    )
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
