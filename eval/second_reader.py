"""The cross-encoder (second reader): fit the answerability model, and measure what each use of it pays.

    python -m eval.second_reader --fit   # fit retriever/answers/answerability.py on the calibration questions
    python -m eval.second_reader         # ablations: abstention, quotes, rerank; cost per pair
    python -m eval.second_reader --scifact   # the rerank on SciFact too

Calibration questions only (never the reported ones): data/answerability_calibration.jsonl (48
answerable: 16 plain, 16 loose, 16 with typos; 48 not: near misses, generic support, other topics)
and data/unanswerable.jsonl (30 out-of-scope), about the sample KB. --fit prints the Answerability
literal to paste, its 5-fold out-of-fold figures, and the sentence-score weight w_cross chosen by
the key fact of quote [1] on the calibration set's answerable questions.

The ablations run on reported questions (data/questions.jsonl, data/unanswerable_holdout.jsonl,
covidfaq from ../shared when present): abstention and quotes with and without the cross-encoder
come from `python -m eval.answers`; here: the rerank of the reader's top n passages by a z-score
fusion with the cross-encoder's logits (recall@1), and the cost per pair.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from data import DATA_DIR, SAMPLE_DOCS, SAMPLE_QUESTIONS
from eval.answers import KEY_FACT_RECALL, SHARED, key_fact_recall, read_jsonl
from kb import KnowledgeBase, load_embedder, retrieval_text
from retriever import ANSWERABILITY, Answerability, AnswerConfig, answer, load_cross_encoder, make_retriever, zscore

CALIBRATION = DATA_DIR / "answerability_calibration.jsonl"


def calibration_questions() -> list[dict]:
    """The calibration set: its own questions plus data/unanswerable.jsonl (answerable False)."""
    extra = [dict(q, answerable=False) for q in read_jsonl(DATA_DIR / "unanswerable.jsonl")]
    return read_jsonl(CALIBRATION) + extra


def signals(retriever, questions: list[dict], config: AnswerConfig) -> np.ndarray:
    """(n, 2): each question's bi-encoder evidence score and best cross-encoder sentence logit."""
    out = []
    for q in questions:
        s = answer(q["question"], retriever, config).signals
        out.append((s["evidence_score"], s.get("cross", ANSWERABILITY.cross_low)))
    return np.array(out)


def fit(x: np.ndarray, y: np.ndarray, base: Answerability = ANSWERABILITY) -> Answerability:
    """Logistic regression on (evidence, clipped logit), threshold at the best balanced accuracy."""
    from sklearn.linear_model import LogisticRegression

    feats = np.c_[x[:, 0], np.clip(x[:, 1], base.cross_low, base.cross_high)]
    model = LogisticRegression(C=10.0, max_iter=1000).fit(feats, y)
    probe = Answerability(
        float(model.coef_[0, 0]), float(model.coef_[0, 1]), float(model.intercept_[0]), base.cross_low, base.cross_high, 0.5
    )
    p = np.array([probe.probability(e, c) for e, c in x])
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    balanced = [((p[y] >= t).mean() + (p[~y] < t).mean()) / 2 for t in grid]
    return Answerability(
        round(probe.w_evidence, 3),
        round(probe.w_cross, 4),
        round(probe.bias, 3),
        base.cross_low,
        base.cross_high,
        float(grid[int(np.argmax(balanced))]),
    )


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """(answered share of answerable, abstained share of the rest), each question judged by a model fitted without it."""
    order = np.random.default_rng(seed).permutation(len(y))
    decided = np.zeros(len(y), dtype=bool)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        m = fit(x[train], y[train])
        decided[test] = [m.probability(e, c) >= m.threshold for e, c in x[test]]
    return float(decided[y].mean()), float((~decided[~y]).mean())


def choose_w_cross(retriever, questions: list[dict]) -> dict[float, float]:
    """Key fact in quote [1] on the answerable calibration questions, per sentence-score weight of the logit."""
    out = {}
    for w in (0.0, 0.05, 0.1, 0.2, 0.4):
        config = AnswerConfig(w_cross=w, min_evidence=0.0)  # judge every question's quote
        ok = [
            key_fact_recall(answer(q["question"], retriever, config).citations[0].quote, q["answer"]) >= KEY_FACT_RECALL
            for q in questions
        ]
        out[w] = float(np.mean(ok))
    return out


def rerank_recall(retriever, questions: list[tuple[str, set[str]]], n: int, weights=(0.0, 0.5, 1.0, 100.0)) -> dict:
    """recall@1 after fusing z(reader scores) + w * z(cross-encoder logits) over the reader's top n."""
    ce = load_cross_encoder()
    hits_at: dict[float, list[bool]] = {w: [] for w in weights}
    for question, relevant in questions:
        result = retriever.search(question, top_k=n)
        asked = result.diagnostics.query_used if result.diagnostics and result.diagnostics.query_used else question
        hits = result.hits
        reader = np.array([h.score for h in hits])
        logits = ce.score(asked, [retrieval_text(h.chunk.doc_title, h.chunk.section, h.chunk.text) for h in hits])
        for w in weights:
            fused = zscore(reader) + w * zscore(logits)
            hits_at[w].append(bool(hits) and hits[int(np.argmax(fused))].chunk.doc_source in relevant)
    return {w: round(float(np.mean(v)), 3) for w, v in hits_at.items()}


def rerank_beir(name: str, work: Path, embedder) -> None:
    """Print rerank_recall over a BEIR set of ../shared (its corpus ingested into work/name once)."""
    from eval.datasets import load_beir
    from eval.targets import prepare_kb

    labelled = load_beir(SHARED / name)
    prepare_kb(labelled, work / name, embedder)
    retriever = make_retriever("hopfield", KnowledgeBase(work / name), embedder, top_k=10)
    pairs = [(labelled.queries[q], set(labelled.qrels[q])) for q in labelled.qrels]
    for n in (3, 5, 10):
        print(
            f"rerank top {n}, {name} ({len(pairs)}): recall@1 by fusion weight {rerank_recall(retriever, pairs, n)}",
            flush=True,
        )


def pair_cost(passages: list[str], repeats: int = 5) -> float:
    """Milliseconds per (question, passage) pair, batched, cache bypassed by a fresh question each time."""
    ce = load_cross_encoder()
    started = time.perf_counter()
    for i in range(repeats):
        ce.score(f"how long do refunds take {i}", passages)
    return (time.perf_counter() - started) * 1000 / (repeats * len(passages))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("eval_reports/answers"), help="KBs (shared with eval.answers)")
    parser.add_argument("--fit", action="store_true", help="fit the answerability model on the calibration questions")
    parser.add_argument("--scifact", action="store_true", help="also the rerank on SciFact (embeds 5,183 abstracts once)")
    args = parser.parse_args(argv)
    embedder = load_embedder()
    sample_dir = args.work / "sample"
    if not (sample_dir / "kb.sqlite").exists():
        from ingest import IngestConfig, ingest

        ingest(sample_dir, [SAMPLE_DOCS], IngestConfig(), embedder=embedder)
    retriever = make_retriever("hopfield", KnowledgeBase(sample_dir), embedder, top_k=5)
    questions = calibration_questions()
    if args.fit:
        x = signals(retriever, questions, AnswerConfig(cross_abstention=True))
        y = np.array([bool(q["answerable"]) for q in questions])
        model = fit(x, y)
        print(f"calibration: {int(y.sum())} answerable, {int((~y).sum())} not")
        print(f"fitted: {model}")
        p = np.array([model.probability(e, c) for e, c in x])
        print(
            f"in-sample at {model.threshold}: answered {(p[y] >= model.threshold).mean():.3f}, "
            f"abstained {(p[~y] < model.threshold).mean():.3f}"
        )
        print("out-of-fold (5 folds): answered %.3f, abstained %.3f" % out_of_fold(x, y))
        print(f"w_cross -> key fact in quote [1]: {choose_w_cross(retriever, [q for q in questions if q['answerable']])}")
        return
    sample = [(q["question"], set(q["relevant"])) for q in read_jsonl(SAMPLE_QUESTIONS)]
    for n in (3, 5, 10):
        print(f"rerank top {n}, sample (60): recall@1 by fusion weight {rerank_recall(retriever, sample, n)}", flush=True)
    for name, wanted in (("covidfaq", True), ("scifact", args.scifact)):
        if wanted and (SHARED / name).is_dir():
            rerank_beir(name, args.work, embedder)
    hits = retriever.search("refund", top_k=8).hits
    texts = [retrieval_text(h.chunk.doc_title, h.chunk.section, h.chunk.text) for h in hits]
    sentences = [t.split(". ")[0][:200] for t in texts]
    print(
        f"cost: {pair_cost(texts):.1f} ms per (question, passage) pair, {pair_cost(sentences):.1f} ms per "
        f"(question, sentence) pair, batches of 8, 2 cores"
    )


if __name__ == "__main__":
    main()
