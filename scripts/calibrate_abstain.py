"""Calibrate the answer layer's abstention threshold (AnswerConfig.min_evidence).

Calibration data: data/questions.jsonl (60 answerable: clean / loose / typo) and
data/unanswerable.jsonl (30 out-of-scope support questions). data/unanswerable_holdout.jsonl
is never read here: it is kept for the reported figures (python -m eval.answers).

The evidence (see AnswerConfig) of every question is measured with the hopfield and dense
retrievers at top_k 5 and pooled. The threshold maximises balanced accuracy: the mean of the
share of answerable questions answered and the share of out-of-scope questions abstained.
Its out-of-fold figures come from 20 seeded 2-fold splits (fit on one half, scored on the
other), so the printed rates are not scored on the data that chose the threshold.

Usage:
    .venv/bin/python scripts/calibrate_abstain.py                   # temp KB from data/docs
    .venv/bin/python scripts/calibrate_abstain.py --kb-dir kb_data --grid
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import DATA_DIR, SAMPLE_DOCS, SAMPLE_QUESTIONS  # noqa: E402
from ingest import IngestConfig, ingest  # noqa: E402
from kb import KnowledgeBase, load_embedder  # noqa: E402
from retriever import AnswerConfig, make_retriever  # noqa: E402
from retriever.answer_evidence import coverage  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

THRESHOLDS = np.round(np.arange(0.10, 0.90, 0.005), 3)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def parts(question: str, retriever, config: AnswerConfig) -> tuple[float, float]:
    """(coverage, best sentence score) of one question: the two halves of its evidence."""
    from retriever.answer import score_sentences

    result = retriever.search(question)
    repaired = result.diagnostics.query_used if result.diagnostics else question
    scored = score_sentences(repaired, retriever, result.hits, config, retriever.embed_queries([repaired])[0])
    cov = max(coverage(question, retriever.kb, result.hits), coverage(repaired, retriever.kb, result.hits))
    return cov, scored[0].score if scored else 0.0


def best_threshold(pos: np.ndarray, neg: np.ndarray) -> float:
    """The threshold with the best balanced accuracy (ties: the lowest)."""
    scores = [((pos >= t).mean() + (neg < t).mean()) / 2 for t in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax(scores))])


def cross_fit(pos: np.ndarray, neg: np.ndarray, splits: int = 20) -> tuple[float, float]:
    """Out-of-fold (answered share, abstained share) over seeded 2-fold splits."""
    answered, abstained = [], []
    for seed in range(splits):
        rng = np.random.default_rng(seed)
        p, n = rng.permutation(len(pos)), rng.permutation(len(neg))
        for a, b in ((0, 1), (1, 0)):
            pf, nf = np.array_split(p, 2), np.array_split(n, 2)
            t = best_threshold(pos[pf[a]], neg[nf[a]])
            answered.append((pos[pf[b]] >= t).mean())
            abstained.append((neg[nf[b]] < t).mean())
    return float(np.mean(answered)), float(np.mean(abstained))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, default=None, help="KB built from data/docs (default: a temp one)")
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
    config = AnswerConfig()
    answerable = [q["question"] for q in read_jsonl(SAMPLE_QUESTIONS)]
    unanswerable = [q["question"] for q in read_jsonl(DATA_DIR / "unanswerable.jsonl")]
    measured_pos, measured_neg = [], []
    for name in ("hopfield", "dense"):
        retriever = make_retriever(name, kb, embedder=embedder, top_k=5)
        measured_pos += [parts(q, retriever, config) for q in answerable]
        measured_neg += [parts(q, retriever, config) for q in unanswerable]
    print(f"{len(answerable)} answerable, {len(unanswerable)} out-of-scope questions, hopfield and dense pooled")
    print("w_coverage  AUC    threshold  answered  abstained   (out-of-fold: answered  abstained)")
    for w in sorted({config.w_coverage, *((0.0, 0.25, 0.5, 0.75, 1.0) if args.grid else ())}):
        pos = np.array([w * c + (1 - w) * s for c, s in measured_pos])
        neg = np.array([w * c + (1 - w) * s for c, s in measured_neg])
        auc = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
        t = best_threshold(pos, neg)
        oof = cross_fit(pos, neg)
        print(f"{w:10.2f}  {auc:.3f}  {t:9.3f}  {(pos >= t).mean():8.3f}  {(neg < t).mean():9.3f}"
              f"   {oof[0]:22.3f}  {oof[1]:9.3f}")
    print(f"configured: w_coverage {config.w_coverage}, min_evidence {config.min_evidence}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
