"""Embedding throughput: our Embedder against sentence-transformers `encode`, same model, same chunks.

Runs in its own process (python -m bench.bench_ingest --kb-dir DIR) so neither side inherits the
other's warm caches or thread settings. The chunks are --chunks real SciFact chunk texts (the KB's
retrieval texts, seeded sample), the kind ingest embeds.

    ours        kb.load_embedder(): length-sorted batches of 32, bf16 weights where the CPU has native
                bf16 (else fp32), mean pooling, L2-normalised
    ours fp32   the same in fp32 (shows how much of the gain is precision)
    alt         sentence_transformers.SentenceTransformer(model folder).encode(texts, batch_size=32,
                normalize_embeddings=True), max_seq_length 256 like ours (it also sorts by length)

Agreement: cosine of our vectors to sentence-transformers' for each chunk (min and mean).
Prints one JSON object: {"chunks", "precision", "ours_s", "ours_fp32_s", "alt_s", "cos_min", "cos_mean", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np


def sample_texts(kb_dir: Path, n: int, seed: int = 0) -> list[str]:
    from kb import KnowledgeBase

    _, texts = KnowledgeBase(kb_dir).chunk_texts()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(texts), size=min(n, len(texts)), replace=False)
    return [texts[i] for i in pick]


def timed(fn, texts: list[str]) -> tuple[np.ndarray, float]:
    fn(texts[:8])  # warm-up: first-call allocations and kernels
    t = time.perf_counter()
    out = fn(texts)
    return np.asarray(out, dtype=np.float32), time.perf_counter() - t


def measure(kb_dir: Path, n: int) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from kb import Embedder, EmbedderConfig, load_embedder
    from kb.embedder import resolve_model_path

    texts = sample_texts(kb_dir, n)
    ours = load_embedder()
    assert isinstance(ours, Embedder)  # the default model is a torch one, which sentence-transformers loads too
    ours_fp32 = load_embedder(EmbedderConfig(precision="fp32"))
    st = SentenceTransformer(str(resolve_model_path(ours.name)), device="cpu")
    st.max_seq_length = ours.config.max_tokens
    n_tokens = [len(ours.tokenizer(t, truncation=True, max_length=ours.config.max_tokens)["input_ids"]) for t in texts]

    alt_vecs, alt_s = timed(
        lambda ts: st.encode(ts, batch_size=32, normalize_embeddings=True, show_progress_bar=False), texts
    )
    our_vecs, ours_s = timed(ours.encode, texts)
    fp32_vecs, fp32_s = timed(ours_fp32.encode, texts)
    cos = (our_vecs * alt_vecs).sum(1)
    cos32 = (fp32_vecs * alt_vecs).sum(1)
    return {
        "chunks": len(texts),
        "mean_wordpieces": float(np.mean(n_tokens)),
        "precision": ours.precision,
        "ours_s": ours_s,
        "ours_fp32_s": fp32_s,
        "alt_s": alt_s,
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
        "cos32_min": float(cos32.min()),
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, required=True, help="KB whose chunk texts are embedded (SciFact)")
    parser.add_argument("--chunks", type=int, default=800, help="chunks to embed per variant (default 800)")
    args = parser.parse_args()
    print(json.dumps(measure(args.kb_dir, args.chunks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
