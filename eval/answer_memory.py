"""Answers that learn from use, measured: does a confirmed question's paraphrase get answered, and nothing else?

    python -m eval.answer_memory [--seeds 0 1] [--work DIR]

AnswerConfig.memory_evidence lets the question memory's recall count as evidence for abstention. Two checks,
neither fitted on anything reported:

1. covidfaq (real questions, 67 FAQ entries): each entry's questions are split in half by a seeded shuffle
   (eval.memory_replay.split_history); the first half is replayed as confirmations of its entry
   (eval.history.replay_history: a thumbs up on the entry's passage closest in meaning), the second half is
   answered three ways: without a memory, with the memory but not as evidence, and with it as evidence. Per
   way: the share answered, and the share of answered whose citation [1] is from a relevant entry. Then again
   with 20% of the replayed pairs pointing at a wrong entry (seeded): the memory must not answer more wrongly.
2. The sample KB: the calibration set's answerable questions (data/answerability_calibration.jsonl, never
   reported) replayed as confirmations of their documents; then the reported sample questions
   (data/questions.jsonl) and the held-out out-of-scope ones (data/unanswerable_holdout.jsonl) answered with
   and without the memory as evidence: out-of-scope questions must not start to be answered.
Prints one JSON object per check as it finishes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data import DATA_DIR, SAMPLE_DOCS, SAMPLE_QUESTIONS
from eval.answers import SHARED, read_jsonl
from eval.datasets import LabelledSet, load_beir
from eval.history import replay_history
from eval.memory_replay import history_set, split_history
from eval.second_reader import calibration_questions
from eval.targets import prepare_kb
from kb import KnowledgeBase, load_embedder
from retriever import AnswerConfig, HopfieldConfig, answer, make_retriever

WAYS = ("no memory", "memory, not evidence", "memory as evidence")


def _answers(questions: list[tuple[str, set[str]]], plain, learned) -> dict:
    """{way: {"answered", "citation_relevant"}} over (question, relevant document sources) pairs."""
    runs = {
        WAYS[0]: (plain, AnswerConfig(memory_evidence=False)),
        WAYS[1]: (learned, AnswerConfig(memory_evidence=False)),
        WAYS[2]: (learned, AnswerConfig()),
    }
    out = {}
    for way, (retriever, config) in runs.items():
        answered = right = 0
        for text, relevant in questions:
            ans = answer(text, retriever, config)
            if not ans.abstained:
                answered += 1
                right += ans.citations[0].doc_source in relevant or ans.citations[0].doc_name in relevant
        out[way] = {
            "answered": round(answered / max(len(questions), 1), 3),
            "citation_relevant": round(right / max(answered, 1), 3),
        }
    return out


def covidfaq_check(work: Path, seed: int, wrong: float, embedder, reader: HopfieldConfig = HopfieldConfig()) -> dict:
    """Check 1 for one seed and share of wrong confirmations."""
    labelled = load_beir(SHARED / "covidfaq")
    kb_dir = work / "covidfaq"
    prepare_kb(labelled, kb_dir, embedder)
    kb = KnowledgeBase(kb_dir)
    history, scored = split_history(labelled, seed)
    replay = replay_history(history_set(labelled, history, 0.5, wrong, seed), kb, embedder)
    questions = [(labelled.queries[q], set(labelled.qrels[q])) for q in scored if not replay.holds(labelled.queries[q])]
    plain = make_retriever("hopfield", kb, embedder, hopfield=reader, memory=None)
    learned = make_retriever("hopfield", kb, embedder, hopfield=reader, memory=replay.memory)
    return {
        "check": "covidfaq",
        "seed": seed,
        "wrong": wrong,
        "pairs": replay.pairs,
        "scored": len(questions),
        **_answers(questions, plain, learned),
    }


def sample_check(work: Path, embedder, reader: HopfieldConfig = HopfieldConfig()) -> dict:
    """Check 2: calibration questions learned; reported answerable and held-out out-of-scope answered."""
    from ingest import IngestConfig, ingest

    kb_dir = work / "sample"
    ingest(kb_dir, [SAMPLE_DOCS], IngestConfig(), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    calibration = [q for q in calibration_questions() if q["answerable"]]
    learned_set = LabelledSet(
        "calibration (answerable)",
        {q["id"]: q["question"] for q in calibration},
        {q["id"]: {r: 1 for r in q["relevant"]} for q in calibration},
    )
    replay = replay_history(learned_set, kb, embedder)
    plain = make_retriever("hopfield", kb, embedder, hopfield=reader, memory=None)
    learned = make_retriever("hopfield", kb, embedder, hopfield=reader, memory=replay.memory)
    answerable = [(q["question"], set(q["relevant"])) for q in read_jsonl(SAMPLE_QUESTIONS)]
    out_of_scope: list[tuple[str, set[str]]] = [
        (q["question"], set()) for q in read_jsonl(DATA_DIR / "unanswerable_holdout.jsonl")
    ]
    inside, outside = _answers(answerable, plain, learned), _answers(out_of_scope, plain, learned)
    return {
        "check": "sample",
        "pairs": replay.pairs,
        **{
            way: {
                "answerable_answered": inside[way]["answered"],
                "citation_relevant": inside[way]["citation_relevant"],
                "out_of_scope_abstained": round(1 - outside[way]["answered"], 3),
            }
            for way in WAYS
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--work", type=Path, default=Path("/tmp/answer-memory"))
    ap.add_argument(
        "--memory-threshold",
        type=float,
        default=HopfieldConfig().memory_threshold,
        help="the reader's HopfieldConfig.memory_threshold (the recall's null-pattern similarity)",
    )
    ap.add_argument("--skip-sample", action="store_true", help="only the covidfaq check")
    args = ap.parse_args(argv)
    embedder = load_embedder()
    reader = HopfieldConfig(memory_threshold=args.memory_threshold)
    if not args.skip_sample:
        print(json.dumps(sample_check(args.work, embedder, reader)), flush=True)
    if not (SHARED / "covidfaq").exists():
        print(json.dumps({"check": "covidfaq", "skipped": f"{SHARED / 'covidfaq'} is absent"}), flush=True)
        return
    for seed in args.seeds:
        for wrong in (0.0, 0.2):
            print(json.dumps(covidfaq_check(args.work, seed, wrong, embedder, reader)), flush=True)


if __name__ == "__main__":
    main()
