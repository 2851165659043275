"""Does the gap report find what is missing? The measurement of issue 29 on a BEIR-style FAQ set.

    python -m insights.measure [--dataset ../shared/datasets/covidfaq] [--removed 10] [--seed 0]
    python -m insights.measure --dataset ../shared/datasets/doc2dial-dev --removed-domain dmv

1. Build a KB of the corpus without `removed` entries (a seeded choice), with the default embedding model.
   On doc2dial-dev (sections of 101 documents in two domains) every section of one domain's documents is
   removed instead, and an "entry" is a document: a topic covers a removed document.
2. Ask every question of queries.jsonl (doc2dial: every user turn, with its conversation) through
   retriever.answer (default AnswerConfig, Hopfield reader) and log each answer (retriever.log_answer), as
   the interfaces do.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest import IngestConfig, TextRecord, ingest_texts
from insights.gaps import GapTopic, InsightsConfig, embed_questions, gap_questions, gap_topics, weak_answers
from insights.replay import replay
from insights.topics import TopicConfig
from kb import KnowledgeBase, QuestionLog, QuestionLogConfig, load_embedder
from retriever import AnswerConfig, answer, log_answer, make_retriever

DEFAULT_DATASET = Path("../shared/datasets/covidfaq")  # from the repository root, as the other measurements


@dataclass(frozen=True)
class Probe:
    """One question to ask: its text, the entry (document) it is labelled with, and the conversation before it."""

    text: str
    entry: str
    history: tuple[dict, ...] = ()


def entry_of(source: str) -> str:
    """The entry a KB source belongs to: a doc2dial section "<document>#s<k>" belongs to its document."""
    return source.rsplit("#s", 1)[0] if "#s" in source else source


def read_corpus(folder: Path) -> list[TextRecord]:
    """The BEIR corpus.jsonl of folder as in-memory documents (source: the corpus id)."""
    records = []
    for line in (folder / "corpus.jsonl").read_text().splitlines():
        d = json.loads(line)
        records.append(TextRecord(source=d["_id"], title=d.get("title") or d["_id"], text=d["text"]))
    return records


def load_faq(folder: Path) -> tuple[list[TextRecord], list[Probe]]:
    """(corpus records, one probe per labelled query) of a BEIR FAQ folder (queries.jsonl, qrels/*.tsv)."""
    queries = {d["_id"]: d["text"] for d in map(json.loads, (folder / "queries.jsonl").read_text().splitlines())}
    qrels: dict[str, str] = {}
    for split in sorted((folder / "qrels").glob("*.tsv")):
        with split.open() as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if int(row["score"]) > 0:
                    qrels.setdefault(row["query-id"], row["corpus-id"])
    probes = [Probe(text, qrels[qid]) for qid, text in sorted(queries.items()) if qid in qrels]
    return read_corpus(folder), probes


def load_dialogues(folder: Path) -> tuple[list[TextRecord], list[Probe], dict[str, str]]:
    """doc2dial-dev: (section records, one probe per user turn with its history, {document: domain})."""
    probes, domain_of = [], {}
    for line in (folder / "conversations.jsonl").read_text().splitlines():
        d = json.loads(line)
        doc = entry_of(d["relevant"][0])
        for rel in d["relevant"]:
            domain_of[entry_of(rel)] = d["domain"]
        probes.append(Probe(d["question"], doc, tuple(d["history"])))
    return read_corpus(folder), probes, domain_of


def removed_entries(args: argparse.Namespace) -> tuple[list[TextRecord], list[Probe], set[str]]:
    """The corpus, the probes and the entries to remove: a seeded draw of FAQ entries asked about at least
    --min-questions times, or every document of --removed-domain."""
    if args.removed_domain:
        records, probes, domain_of = load_dialogues(args.dataset)
        removed = {doc for doc, domain in domain_of.items() if domain == args.removed_domain}
        if not removed:
            raise SystemExit(f"--removed-domain {args.removed_domain!r}: no such domain in {args.dataset}")
        return records, probes, removed
    records, probes = load_faq(args.dataset)
    asked = Counter(p.entry for p in probes)
    eligible = sorted(r.source for r in records if asked[r.source] >= args.min_questions)
    return records, probes, set(random.Random(args.seed).sample(eligible, args.removed))


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
    ap.add_argument("--removed-domain", help="doc2dial-dev: remove every document of this domain (dmv, studentaid)")
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
    records, probes, removed = removed_entries(args)
    kb_dir = args.work / "kb"
    embedder = load_embedder()
    shutil.rmtree(args.work, ignore_errors=True)
    kept_records = [r for r in records if entry_of(r.source) not in removed]
    ingest_texts(kb_dir, kept_records, IngestConfig(mirror=True), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    retriever = make_retriever("hopfield", kb, embedder=embedder)
    now = time.time()
    for i, p in enumerate(probes):
        answered = answer(p.text, retriever, AnswerConfig(), history=list(p.history) or None)
        log_answer(kb, answered, config=QuestionLogConfig(redact=False), now=now + i)
    kb = KnowledgeBase(kb_dir)
    entries = QuestionLog(kb).entries()
    label_of: dict[str, str] = {}
    for p in probes:  # a text asked about two entries (doc2dial's "ok thanks") counts for the first
        label_of.setdefault(p.text, p.entry)
    out: dict = {
        "dataset": str(args.dataset),
        "removed": sorted(removed),
        "questions": len(entries),
        "questions_of_removed": sum(p.entry in removed for p in probes),
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
        sum(
            bool(a.citations) and entry_of(a.citations[0].doc_source) == label_of[q] for q, a in zip(removed_gaps, now_right)
        )
        / max(len(removed_gaps), 1),
        3,
    )
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["command"] = "python -m insights.measure " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
