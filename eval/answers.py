"""Answer quality: does the reader answer what the KB holds, abstain on what it does not, and quote the fact?

    python -m eval.answers                       # sample set (+ covidfaq and PolicyQA when ../shared has them)
    python -m eval.answers --policyqa-limit 300  # fewer PolicyQA questions

Measured, on the sample docs:
- answered-when-answerable: data/questions.jsonl (60), and abstained-when-unanswerable:
  data/unanswerable_holdout.jsonl (36 out-of-scope questions never used for calibration) and
  data/unanswerable.jsonl (30, part of the calibration set of eval.second_reader --fit, shown apart);
- key fact: the first quoted sentence holds the labelled answer, i.e. it contains at least
  KEY_FACT_RECALL of the labelled answer's content words (typos and inflection allowed).
On covidfaq (../shared): answered rate of 1,073 real questions, and how often citation [1]
comes from a relevant FAQ entry. On doc2dial-dev (../shared): a seeded sample of user turns answered
with their conversation, and the share of answered turns whose quotes overlap the gold grounding
span. Each set is run with the default answer layer (the cross-encoder chooses quote [1]), without the
cross-encoder, and with its abstention too (ablation).
On PolicyQA dev (../shared, one KB per policy, a seeded sample
of questions): share of answered questions whose quotes contain the gold answer span, for the
default reader and for a dense-only retriever under the same answer layer.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data import DATA_DIR, SAMPLE_DOCS, SAMPLE_QUESTIONS
from kb import KnowledgeBase, load_embedder
from retriever import AnswerConfig, answer, content_tokens, lexical_overlap, make_retriever

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
KEY_FACT_RECALL = 0.6


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def key_fact_recall(quote: str, gold: str) -> float:
    """Share (0..1) of the gold answer's content words found in quote, typos and inflection allowed."""
    wanted = content_tokens(gold)
    return lexical_overlap(wanted, content_tokens(quote)) if wanted else 0.0


def flat(text: str) -> str:
    return " ".join(re.sub(r"[^\w%$.,]+", " ", text.lower()).split())


@dataclass(frozen=True)
class SampleReport:
    answered: float
    abstained_holdout: float
    abstained_calibration: float
    key_fact: float
    answered_by_style: dict[str, str]
    missed: tuple[str, ...]
    leaked: tuple[str, ...]


def sample_report(
    kb: KnowledgeBase, retriever_name: str = "hopfield", config: AnswerConfig = AnswerConfig(), embedder=None
) -> SampleReport:
    """The sample-set figures (see the module docstring) for one retriever and answer config."""
    retriever = make_retriever(retriever_name, kb, embedder, top_k=5)
    answerable = read_jsonl(SAMPLE_QUESTIONS)
    answer(answerable[0]["question"], retriever, config)  # warm: model, lexical views, word statistics
    answered, key = [], []
    by_style: dict[str, list[int]] = {}
    for q in answerable:
        ans = answer(q["question"], retriever, config)
        ok = not ans.abstained
        answered.append(ok)
        by_style.setdefault(q["style"], []).append(int(ok))
        if ok:
            key.append(key_fact_recall(ans.citations[0].quote, q["answer"]) >= KEY_FACT_RECALL)
    holdout = read_jsonl(DATA_DIR / "unanswerable_holdout.jsonl")
    calibration = read_jsonl(DATA_DIR / "unanswerable.jsonl")
    abst_h = [answer(q["question"], retriever, config).abstained for q in holdout]
    abst_c = [answer(q["question"], retriever, config).abstained for q in calibration]
    return SampleReport(
        answered=sum(answered) / len(answered),
        abstained_holdout=sum(abst_h) / len(abst_h),
        abstained_calibration=sum(abst_c) / len(abst_c),
        key_fact=sum(key) / max(len(key), 1),
        answered_by_style={s: f"{sum(v)}/{len(v)}" for s, v in by_style.items()},
        missed=tuple(q["id"] for q, a in zip(answerable, answered) if not a),
        leaked=tuple(q["id"] for q, a in zip(holdout + calibration, abst_h + abst_c) if not a),
    )


def covid_report(kb_dir: Path, config: AnswerConfig = AnswerConfig(), limit: int | None = None, embedder=None) -> dict:
    """covidfaq: answered rate and citation [1] from a relevant entry, real questions, hopfield reader."""
    from eval.datasets import load_beir
    from eval.targets import prepare_kb

    labelled = load_beir(SHARED / "covidfaq")
    embedder = embedder or load_embedder()
    prepare_kb(labelled, kb_dir, embedder)
    retriever = make_retriever("hopfield", KnowledgeBase(kb_dir), embedder, top_k=5)
    qids = list(labelled.queries)[:limit]
    answered = right = 0
    for q in qids:
        ans = answer(labelled.queries[q], retriever, config)
        if not ans.abstained:
            answered += 1
            right += ans.citations[0].doc_source in labelled.qrels[q]
    return {"questions": len(qids), "answered": answered / len(qids), "first_citation_relevant": right / max(answered, 1)}


def policyqa_report(
    work: Path, limit: int = 600, seed: int = 0, config: AnswerConfig = AnswerConfig(), embedder=None
) -> dict:
    """PolicyQA dev, one KB per policy (its segments as documents): answered share, and the share of
    answered questions whose quotes contain the gold span, for hopfield and for dense retrieval."""
    from ingest import IngestConfig, TextRecord, ingest_texts

    data = json.loads((SHARED / "policyqa" / "dev.json").read_text())["data"]
    embedder = embedder or load_embedder()
    questions: list[tuple[str, str, str]] = []  # (policy slug, question, gold span)
    for policy in data:
        slug = re.sub(r"[^a-z0-9]+", "-", policy["title"].lower()).strip("-")
        records = [
            TextRecord(source=f"{slug}/{i}", title=policy["title"], text=p["context"])
            for i, p in enumerate(policy["paragraphs"])
        ]
        ingest_texts(work / slug, records, IngestConfig(mirror=True), embedder=embedder)
        for p in policy["paragraphs"]:
            for qa in p["qas"]:
                if qa.get("answers"):
                    questions.append((slug, qa["question"], qa["answers"][0]["text"]))
    random.Random(seed).shuffle(questions)
    questions = questions[:limit]
    out: dict[str, Any] = {"questions": len(questions)}
    for name in ("hopfield", "dense"):
        retrievers = {}
        answered = contains = 0
        for slug, question, gold in questions:
            if slug not in retrievers:
                retrievers[slug] = make_retriever(name, KnowledgeBase(work / slug), embedder, top_k=5)
            ans = answer(question, retrievers[slug], config)
            if ans.abstained:
                continue
            answered += 1
            contains += flat(gold) in flat(" ".join(c.quote for c in ans.citations))
        out[name] = {"answered": answered / len(questions), "quotes_contain_gold": contains / max(answered, 1)}
    return out


def span_overlap(quotes: str, gold: str) -> bool:
    """The quotes overlap the gold span: at least half of the shorter one's content words are in the other."""
    q, g = set(content_tokens(quotes)), set(content_tokens(gold))
    return bool(q and g) and len(q & g) >= 0.5 * min(len(q), len(g))


def doc2dial_report(
    kb_dir: Path, limit: int = 500, seed: int = 0, config: AnswerConfig = AnswerConfig(), embedder=None
) -> dict:
    """doc2dial-dev: a seeded sample of user turns answered with their conversation; the answered share and
    the share of answered turns whose quotes overlap the gold grounding span (span_overlap)."""
    from eval.datasets import load_beir
    from eval.targets import prepare_kb

    folder = SHARED / "doc2dial-dev"
    embedder = embedder or load_embedder()
    prepare_kb(load_beir(folder), kb_dir, embedder)
    retriever = make_retriever("hopfield", KnowledgeBase(kb_dir), embedder, top_k=5)
    rows = read_jsonl(folder / "conversations.jsonl")
    random.Random(seed).shuffle(rows)
    rows = rows[:limit]
    answered = overlap = 0
    for row in rows:
        ans = answer(row["question"], retriever, config, history=row["history"])
        if not ans.abstained:
            answered += 1
            overlap += span_overlap(" ".join(c.quote for c in ans.citations), row["answer"])
    return {"turns": len(rows), "answered": answered / len(rows), "quotes_overlap_gold": overlap / max(answered, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("eval_reports/answers"), help="KBs and the report")
    parser.add_argument("--policyqa-limit", type=int, default=600)
    parser.add_argument("--doc2dial-limit", type=int, default=500, help="user turns (seeded sample)")
    parser.add_argument("--skip-shared", action="store_true", help="sample set only")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    embedder = load_embedder()
    sample_dir = args.work / "sample"
    if not (sample_dir / "kb.sqlite").exists():
        from ingest import IngestConfig, ingest

        ingest(sample_dir, [SAMPLE_DOCS], IngestConfig(), embedder=embedder)
    started = time.perf_counter()
    report: dict = {"sample": {}}
    variants = {
        "hopfield": ("hopfield", AnswerConfig()),
        "dense": ("dense", AnswerConfig()),
        "hopfield, no cross-encoder": ("hopfield", AnswerConfig(cross_quotes=False)),
        "hopfield + cross-encoder abstention": ("hopfield", AnswerConfig(cross_abstention=True)),
    }
    for name, (retriever_name, config) in variants.items():
        r = sample_report(KnowledgeBase(sample_dir), retriever_name, config, embedder=embedder)
        report["sample"][name] = r.__dict__
        print(
            f"sample [{name}]: answered {r.answered:.3f} of answerable ({r.answered_by_style}); abstained "
            f"{r.abstained_holdout:.3f} of held-out unanswerable ({r.abstained_calibration:.3f} of the calibration "
            f"set); key fact in quote [1] {r.key_fact:.3f}",
            flush=True,
        )
        print(f"    answerable abstained: {', '.join(r.missed) or '-'}; unanswerable answered: {', '.join(r.leaked) or '-'}")
    ablation = {
        "default": AnswerConfig(),
        "no cross-encoder": AnswerConfig(cross_quotes=False),
        "+ cross-encoder abstention": AnswerConfig(cross_abstention=True),
    }
    for name, config in ablation.items():
        if not args.skip_shared and (SHARED / "covidfaq").is_dir():
            report[f"covidfaq, {name}"] = covid_report(args.work / "covidfaq", config, embedder=embedder)
            print(f"covidfaq [{name}]: {report[f'covidfaq, {name}']}", flush=True)
        if not args.skip_shared and (SHARED / "policyqa").is_dir():
            report[f"policyqa, {name}"] = policyqa_report(
                args.work / "policyqa", args.policyqa_limit, config=config, embedder=embedder
            )
            print(f"policyqa [{name}]: {report[f'policyqa, {name}']}", flush=True)
        if not args.skip_shared and (SHARED / "doc2dial-dev").is_dir():
            report[f"doc2dial, {name}"] = doc2dial_report(
                args.work / "doc2dial", args.doc2dial_limit, config=config, embedder=embedder
            )
            print(f"doc2dial-dev [{name}]: {report[f'doc2dial, {name}']}", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    (args.work / "answers.json").write_text(json.dumps(report, indent=1))
    print(f"written: {args.work / 'answers.json'} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
