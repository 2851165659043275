"""Does the gap report find what is missing? The measurement of issue 29 on a BEIR-style FAQ set.

    python -m insights.measure [--dataset ../shared/datasets/covidfaq] [--removed 10] [--seed 0]

1. Build a KB of the corpus without `removed` entries (a seeded choice), with the default embedding model.
2. Ask every question of queries.jsonl through retriever.answer (default AnswerConfig, Hopfield reader) and
   log each answer (retriever.log_answer), as the interfaces do.
3. Group the abstained questions into gap topics, by Hopfield attractors and by HDBSCAN, and report for each:
   coverage (how many removed entries are the majority entry of one of the 10 largest topics; goal >= 8 of
   10), purity (mean over those 10 topics of the share of its questions that belong to its most common
   removed entry; goal >= 0.80).
4. Add the removed entries back and replay every gap question: the share answered now (goal >= 0.70), and
   the share of the removed entries' own gap questions answered now.
Prints the figures as JSON. Gap questions are the abstained ones, and in a second variant also the answered
ones whose nearest passage is below --weak-cosine (InsightsConfig.weak_cosine).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ingest import IngestConfig, TextRecord, ingest_texts
from insights.gaps import GapTopic, InsightsConfig, embed_questions, gap_questions, gap_topics, weak_answers
from insights.replay import replay
from insights.topics import TopicConfig
from kb import KnowledgeBase, QuestionLog, QuestionLogConfig, load_embedder
from retriever import AnswerConfig, answer, log_answer, make_retriever

DEFAULT_DATASET = Path("../shared/datasets/covidfaq")  # from the repository root, as the other measurements


def load_faq(folder: Path) -> tuple[list[TextRecord], dict[str, str], dict[str, str]]:
    """(corpus records, {query id: text}, {query id: the corpus id it is labelled with}) of a BEIR folder."""
    records = []
    for line in (folder / "corpus.jsonl").read_text().splitlines():
        d = json.loads(line)
        records.append(TextRecord(source=d["_id"], title=d.get("title") or d["_id"], text=d["text"]))
    queries = {d["_id"]: d["text"] for d in map(json.loads, (folder / "queries.jsonl").read_text().splitlines())}
    qrels: dict[str, str] = {}
    for split in sorted((folder / "qrels").glob("*.tsv")):
        with split.open() as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if int(row["score"]) > 0:
                    qrels.setdefault(row["query-id"], row["corpus-id"])
    return records, {q: t for q, t in queries.items() if q in qrels}, qrels


def topic_figures(topics: list[GapTopic], label_of: dict[str, str], removed: set[str], top: int = 10) -> dict:
    """Coverage and purity of the `top` largest topics (see the module's docstring)."""
    covered: set[str] = set()
    purities = []
    for t in topics[:top]:
        labels = Counter(label_of.get(q, "?") for q in t.questions)
        majority = labels.most_common(1)[0][0]
        if majority in removed:
            covered.add(majority)
        best_removed = max((n for lab, n in labels.items() if lab in removed), default=0)
        purities.append(best_removed / len(t.questions))
    return {
        "topics": len(topics),
        "sizes": [t.size for t in topics[:top]],
        "removed_covered": len(covered),
        "purity": round(float(np.mean(purities)), 3) if purities else 0.0,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--removed", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--min-questions",
        type=int,
        default=5,
        help="remove only entries asked about at least this often (an entry nobody asks about is no gap)",
    )
    ap.add_argument("--weak-cosine", type=float, default=0.5, help="InsightsConfig.weak_cosine of the second variant")
    ap.add_argument("--work", type=Path, default=Path("/tmp/insights-measure"))
    args = ap.parse_args(argv)
    started = time.perf_counter()
    records, queries, qrels = load_faq(args.dataset)
    asked = Counter(qrels[q] for q in queries)
    eligible = sorted(r.source for r in records if asked[r.source] >= args.min_questions)
    removed = set(random.Random(args.seed).sample(eligible, args.removed))
    kb_dir = args.work / "kb"
    embedder = load_embedder()
    shutil.rmtree(args.work, ignore_errors=True)
    ingest_texts(kb_dir, [r for r in records if r.source not in removed], IngestConfig(mirror=True), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    retriever = make_retriever("hopfield", kb, embedder=embedder)
    now = time.time()
    for i, (qid, text) in enumerate(sorted(queries.items())):
        log_answer(kb, answer(text, retriever, AnswerConfig()), config=QuestionLogConfig(redact=False), now=now + i)
    kb = KnowledgeBase(kb_dir)
    entries = QuestionLog(kb).entries()
    label_of = {text: qrels[qid] for qid, text in queries.items()}
    out: dict = {
        "dataset": str(args.dataset),
        "removed": sorted(removed),
        "questions": len(entries),
        "questions_of_removed": sum(qrels[q] in removed for q in queries),
        "abstained": sum(e.abstained for e in entries),
        "abstained_of_removed": sum(e.abstained and label_of.get(e.question) in removed for e in entries),
    }
    # How well two "not covered" signals tell the removed entries' questions apart (ROC AUC, low = removed).
    from sklearn.metrics import roc_auc_score

    is_removed = np.array([label_of.get(e.question) in removed for e in entries])
    nearest = kb.snapshot().search(embed_questions(kb, [e.question for e in entries], embedder), 1)[0][:, 0]
    out["auc_evidence"] = round(float(roc_auc_score(is_removed, [-(e.evidence or 0.0) for e in entries])), 3)
    out["auc_nearest_cosine"] = round(float(roc_auc_score(is_removed, -nearest)), 3)
    variants = {
        "abstained": gap_questions(entries, []),
        f"abstained+weak<{args.weak_cosine}": gap_questions(entries, [])
        + weak_answers(kb, entries, args.weak_cosine, embedder),
    }
    methods = {
        "hopfield beta 20": TopicConfig(method="hopfield", beta=20.0),
        "hopfield beta 40 (default)": TopicConfig(method="hopfield"),
        "hdbscan": TopicConfig(method="hdbscan"),
    }
    kept: dict[str, list[GapTopic]] = {}
    for variant, gaps in variants.items():
        vectors = embed_questions(kb, [g.question for g in gaps], embedder)
        row: dict = {"gaps": len(gaps), "gaps_of_removed": sum(label_of.get(g.question) in removed for g in gaps)}
        for name, tc in methods.items():
            t0 = time.perf_counter()
            topics = gap_topics(kb, gaps, InsightsConfig(topics=tc), embedder, vectors=vectors)
            row[name] = {**topic_figures(topics, label_of, removed), "seconds": round(time.perf_counter() - t0, 2)}
            if tc == TopicConfig():
                kept[variant] = topics
        out[variant] = row
    # After the fix: every entry back in the KB, every gap question asked again (default topics).
    ingest_texts(kb_dir, records, IngestConfig(mirror=True), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    retriever = make_retriever("hopfield", kb, embedder=embedder)
    for variant, topics in kept.items():
        again = replay(topics, retriever)
        out[variant]["replay_answered"] = round(again.share, 3)
    removed_gaps = [g.question for g in variants["abstained"] if label_of.get(g.question) in removed]
    now_right = [answer(q, retriever, AnswerConfig()) for q in removed_gaps]
    out["removed_abstained_now_answered_citing_their_entry"] = round(
        sum((not a.abstained) and a.citations[0].doc_source == label_of[q] for q, a in zip(removed_gaps, now_right))
        / max(len(removed_gaps), 1),
        3,
    )
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["command"] = "python -m insights.measure " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
