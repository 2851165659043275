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
Prints the figures as JSON; --reuse keeps the KB and log of a previous run in --work (steps 1-2).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ingest import IngestConfig, TextRecord, ingest_texts
from insights.gaps import GapTopic, InsightsConfig, embed_questions, gap_questions, gap_topics
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
    ap.add_argument("--work", type=Path, default=Path("/tmp/insights-measure"))
    ap.add_argument("--reuse", action="store_true", help="keep the KB and log of a previous run in --work")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    records, queries, qrels = load_faq(args.dataset)
    removed = set(random.Random(args.seed).sample(sorted(r.source for r in records), args.removed))
    kb_dir = args.work / "kb"
    embedder = load_embedder()
    log_ok = args.reuse and kb_dir.exists() and len(QuestionLog(KnowledgeBase(kb_dir))) == len(queries)
    if not log_ok:
        shutil.rmtree(args.work, ignore_errors=True)
        ingest_texts(kb_dir, [r for r in records if r.source not in removed], IngestConfig(mirror=True), embedder=embedder)
        kb = KnowledgeBase(kb_dir)
        retriever = make_retriever("hopfield", kb, embedder=embedder)
        now = time.time()
        for i, (qid, text) in enumerate(sorted(queries.items())):
            log_answer(kb, answer(text, retriever, AnswerConfig()), config=QuestionLogConfig(redact=False), now=now + i)
    kb = KnowledgeBase(kb_dir)
    entries = QuestionLog(kb).entries()
    gaps = gap_questions(entries, [])
    label_of = {text: qrels[qid] for qid, text in queries.items()}
    vectors = embed_questions(kb, [g.question for g in gaps], embedder)
    out: dict = {
        "dataset": str(args.dataset),
        "removed": sorted(removed),
        "questions": len(entries),
        "abstained": len(gaps),
        "abstained_from_removed": sum(label_of.get(g.question) in removed for g in gaps),
        "questions_of_removed": sum(qrels[q] in removed for q in queries),
    }
    methods = {
        "hopfield": TopicConfig(method="hopfield"),
        "hdbscan": TopicConfig(method="hdbscan"),
    }
    topics_by: dict[str, list[GapTopic]] = {}
    for name, tc in methods.items():
        t0 = time.perf_counter()
        topics_by[name] = gap_topics(kb, gaps, InsightsConfig(topics=tc), embedder, vectors=vectors)
        out[name] = {**topic_figures(topics_by[name], label_of, removed), "seconds": round(time.perf_counter() - t0, 2)}
    # After the fix: every entry back in the KB, every gap question asked again.
    ingest_texts(kb_dir, records, IngestConfig(mirror=True), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    again = replay(topics_by["hopfield"], make_retriever("hopfield", kb, embedder=embedder))
    out["replay_answered"] = round(again.share, 3)
    out["replay_top10_answered"] = round(
        sum(r.answered for r in again.topics[:10]) / max(sum(r.asked for r in again.topics[:10]), 1), 3
    )
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["command"] = "python -m insights.measure " + " ".join(argv or [])
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
