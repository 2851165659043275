"""Dense nDCG@10 on a BEIR set under MTEB's protocol next to the KB's, to explain any gap.

MTEB embeds each document whole as "title text", truncated to the model's 256 wordpieces,
in fp32. A hopfield-kb KB embeds chunks (180 cl100k tokens, 30 overlap) each under its
title ("title\\ntext"), in bf16 where the CPU has it, and eval counts a document at its best
chunk. This script scores the same queries four ways so each difference gets its share:

    kb        the KB's chunk vectors, best chunk per document (what `kb eval` reports for dense)
    whole     whole documents, MTEB's text and truncation, at the KB's precision
    whole32   the same in fp32 (MTEB's setting)
    kb32      the KB's chunk texts re-embedded in fp32 (only with --fp32-chunks: slow)

Usage (a few minutes on 2 cores; prints one line per variant):
    python -m eval.mteb_gap --dataset ../shared/datasets/scifact --kb-dir KB_DIR [--fp32-chunks]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from eval.datasets import load_beir
from eval.metrics import score
from eval.targets import chunk_documents, to_targets
from kb import EmbedderConfig, KnowledgeBase, load_embedder


def doc_rankings(qvecs: np.ndarray, dvecs: np.ndarray, doc_ids: list[str], qids: list[str], k: int = 100):
    """{query id: document ids best first} by exact inner product."""
    sims = qvecs @ dvecs.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return {q: [doc_ids[j] for j in row] for q, row in zip(qids, top)}


def chunk_rankings(qvecs, cvecs, chunk_ids, doc_of, qids, depth=300, cutoff=100):
    sims = qvecs @ cvecs.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :depth]
    return {q: to_targets(chunk_ids[row], doc_of, cutoff) for q, row in zip(qids, top)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="BEIR folder")
    ap.add_argument("--kb-dir", required=True, help="a KB holding the dataset's corpus (kb eval builds one)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--fp32-chunks", action="store_true", help="also re-embed the KB's chunk texts in fp32")
    args = ap.parse_args()

    labelled = load_beir(args.dataset, args.split)
    corpus = labelled.corpus or ()  # a BEIR folder always has one
    qids, qtexts = list(labelled.queries), list(labelled.queries.values())
    kb = KnowledgeBase(args.kb_dir)
    snap = kb.snapshot()
    doc_of = chunk_documents(kb)
    fast = load_embedder(EmbedderConfig())
    full = load_embedder(EmbedderConfig(precision="fp32"))
    metrics = ["ndcg@10", "recall@10", "recall@100"]

    def report(name: str, rankings, seconds: float) -> None:
        means, _ = score(labelled.qrels, rankings, metrics)
        print(f"{name:8s} " + "  ".join(f"{m} {means[m]:.4f}" for m in metrics) + f"  ({seconds:.0f} s)", flush=True)

    t = time.perf_counter()
    q_fast = fast.encode(qtexts)
    report("kb", chunk_rankings(q_fast, np.asarray(snap.vectors), snap.ids, doc_of, qids), time.perf_counter() - t)

    doc_ids = [r.source for r in corpus]
    # MTEB's document text for sentence-transformers models: title and text joined by a space.
    doc_texts = [f"{r.title} {r.text}".strip() for r in corpus]
    t = time.perf_counter()
    d_fast = fast.encode(doc_texts)
    report("whole", doc_rankings(q_fast, d_fast, doc_ids, qids), time.perf_counter() - t)

    t = time.perf_counter()
    q_full = full.encode(qtexts)
    d_full = full.encode(doc_texts)
    report("whole32", doc_rankings(q_full, d_full, doc_ids, qids), time.perf_counter() - t)

    if args.fp32_chunks:
        t = time.perf_counter()
        ids, texts = kb.chunk_texts()
        report("kb32", chunk_rankings(q_full, full.encode(texts), ids, doc_of, qids), time.perf_counter() - t)


if __name__ == "__main__":
    main()
