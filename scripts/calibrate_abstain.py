"""Calibrate the answer layer's abstention threshold (AnswerConfig.min_evidence).

Answerable questions: data/questions.jsonl (60, clean / loose / typo). Out of scope:
data/unanswerable.jsonl (30 realistic support questions the Tallyo docs do not answer).
For each question the extractive reader scores the retrieved sentences; the evidence
is the best score. The evidence mixes the coverage of the question's words by the retrieved passages with
the best sentence score (see AnswerConfig). The script sweeps thresholds, picks the one
with the best abstention recall while at most --max-false-abstain (default 20%) of the
answerable questions abstain, over all four retrievers pooled, and prints
precision / recall of abstention (unanswerable = positive), per-style false abstentions
and how often the composed answer quotes the labelled answer.

Usage:
    .venv/bin/python scripts/calibrate_abstain.py                       # temp KB from data/docs, all retrievers
    .venv/bin/python scripts/calibrate_abstain.py --kb-dir kb_data --retriever hopfield
    .venv/bin/python scripts/calibrate_abstain.py --grid                # also try other coverage weights
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

# Before torch loads: spinning OpenMP workers crawl on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data import DATA_DIR, SAMPLE_DOCS, SAMPLE_QUESTIONS  # noqa: E402
from ingest import IngestConfig, ingest  # noqa: E402
from kb import KnowledgeBase, load_embedder  # noqa: E402
from retriever import RETRIEVERS, make_retriever  # noqa: E402
from retriever.answer import AnswerConfig, compose, coverage, score_sentences, select_sentences  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def flat(text: str) -> str:
    return " ".join(text.lower().split())


def quotes_gold(chosen, gold: str) -> bool:
    """The composed answer quotes the labelled answer span (or the span holds a quoted sentence)."""
    g = flat(gold)
    return any(g in flat(s.text) or flat(s.text) in g for s in chosen)


def measure(questions: list[str], retriever, config: AnswerConfig) -> list[tuple[list, float]]:
    """Per question: its scored sentences and its coverage (kept, to re-weight without re-embedding)."""
    out = []
    for q in questions:
        hits = retriever.search(q).hits
        out.append((score_sentences(q, retriever, hits, config), coverage(q, retriever.kb, hits)))
    return out


def evidence(measured: tuple[list, float], w_coverage: float) -> float:
    scored, cov = measured
    return w_coverage * cov + (1 - w_coverage) * (scored[0].score if scored else 0.0)


def operating_point(pos: np.ndarray, neg: np.ndarray, t: float) -> dict:
    """Abstention quality when abstaining below t (unanswerable = positive class)."""
    abstain_pos, abstain_neg = int((pos < t).sum()), int((neg < t).sum())
    precision = abstain_neg / max(abstain_pos + abstain_neg, 1)
    recall = abstain_neg / len(neg)
    return {"threshold": t, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-9), "false_abstain": abstain_pos / len(pos)}


def sweep(pos: np.ndarray, neg: np.ndarray, max_false: float) -> dict:
    """The threshold with the best abstention recall while false abstentions stay within max_false
    (ties: better precision, then the lower threshold)."""
    rows = [operating_point(pos, neg, float(t)) for t in np.round(np.arange(0.10, 0.90, 0.01), 2)]
    rows = [r for r in rows if r["false_abstain"] <= max_false + 1e-9] or rows[:1]
    return max(rows, key=lambda r: (r["recall"], r["precision"], -r["threshold"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, default=None, help="KB built from data/docs (default: a temp one)")
    parser.add_argument("--retriever", choices=RETRIEVERS, action="append", help="default: all of them")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--max-false-abstain", type=float, default=0.2,
                        help="share of answerable questions that may abstain (default 0.2)")
    parser.add_argument("--grid", action="store_true", help="also try other w_coverage values")
    args = parser.parse_args()

    embedder = load_embedder()
    tmp = None
    kb_dir = args.kb_dir
    if kb_dir is None:
        tmp = tempfile.TemporaryDirectory()
        kb_dir = Path(tmp.name) / "kb"
        ingest([SAMPLE_DOCS], kb_dir, IngestConfig(), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    answerable = read_jsonl(SAMPLE_QUESTIONS)
    unanswerable = read_jsonl(DATA_DIR / "unanswerable.jsonl")
    config = AnswerConfig()
    print(f"{len(answerable)} answerable, {len(unanswerable)} unanswerable questions; top_k {args.top_k}; "
          f"sentence weights {config.w_sentence} / {config.w_passage} / {config.w_lexical}")

    pooled: dict[float, tuple[list, list]] = {}
    for name in args.retriever or list(RETRIEVERS):
        retriever = make_retriever(name, kb, embedder=embedder, top_k=args.top_k)
        m_pos = measure([q["question"] for q in answerable], retriever, config)
        m_neg = measure([q["question"] for q in unanswerable], retriever, config)
        grid = sorted({config.w_coverage, *(np.round(np.arange(0, 1.01, 0.25), 2) if args.grid else ())})
        print(f"\n[{name}] w_coverage  AUC    threshold  precision  recall  false-abstain  (best recall within --max-false-abstain)")
        for w in grid:
            pos = np.array([evidence(m, w) for m in m_pos])
            neg = np.array([evidence(m, w) for m in m_neg])
            best = sweep(pos, neg, args.max_false_abstain)
            auc = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
            pooled.setdefault(w, ([], []))[0].extend(pos)
            pooled[w][1].extend(neg)
            print(f"[{name}] {w:10.2f}  {auc:.3f}  {best['threshold']:9.2f}  {best['precision']:9.3f}  "
                  f"{best['recall']:6.3f}  {best['false_abstain']:13.1%}")
        pos = np.array([evidence(m, config.w_coverage) for m in m_pos])
        neg = np.array([evidence(m, config.w_coverage) for m in m_neg])
        at = operating_point(pos, neg, config.min_evidence)
        print(f"[{name}] at the configured min_evidence {config.min_evidence}: abstention precision {at['precision']:.3f} "
              f"recall {at['recall']:.3f} F1 {at['f1']:.3f}; false abstentions {at['false_abstain']:.1%} "
              f"({int((pos < config.min_evidence).sum())}/{len(pos)})")
        styles = sorted({q["style"] for q in answerable})
        print(f"[{name}] false abstentions by style: " + ", ".join(
            f"{s} {sum(int(p < config.min_evidence) for p, q in zip(pos, answerable) if q['style'] == s)}/"
            f"{sum(q['style'] == s for q in answerable)}" for s in styles))
        quoted: dict[str, list[int]] = {s: [] for s in styles}
        top_doc: dict[str, list[int]] = {s: [] for s in styles}
        for (scored, _), q in zip(m_pos, answerable):
            chosen = select_sentences(scored, config)
            _, citations = compose(chosen, config)
            quoted[q["style"]].append(int(quotes_gold(chosen, q["answer"])))
            top_doc[q["style"]].append(int(bool(citations) and citations[0].doc_name in q["relevant"]))
        print(f"[{name}] answers quoting the labelled answer (if not abstaining): "
              + ", ".join(f"{s} {sum(v)}/{len(v)}" for s, v in quoted.items())
              + "; citation [1] from a relevant document: " + ", ".join(f"{s} {sum(v)}/{len(v)}" for s, v in top_doc.items()))
        missed = [q["id"] for p, q in zip(pos, answerable) if p < config.min_evidence]
        leaked = [q["id"] for n, q in zip(neg, unanswerable) if n >= config.min_evidence]
        print(f"[{name}] answerable abstained: {missed}; unanswerable answered: {leaked}")
    print(f"\n[all retrievers pooled] w_coverage  AUC    threshold  precision  recall  false-abstain")
    for w, (pos, neg) in sorted(pooled.items()):
        pos, neg = np.array(pos), np.array(neg)
        best = sweep(pos, neg, args.max_false_abstain)
        auc = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
        print(f"[all retrievers pooled] {w:10.2f}  {auc:.3f}  {best['threshold']:9.2f}  {best['precision']:9.3f}  "
              f"{best['recall']:6.3f}  {best['false_abstain']:13.1%}")
    pos, neg = (np.array(v) for v in pooled[config.w_coverage])
    best = sweep(pos, neg, args.max_false_abstain)
    print(f"chosen threshold (w_coverage {config.w_coverage}, best abstention recall with false abstentions <= {args.max_false_abstain:.0%}, all retrievers pooled): {best['threshold']:.2f}; "
          f"configured min_evidence: {config.min_evidence}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
