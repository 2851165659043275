"""Query latency and memory on one KB, measured in a fresh process per KB (python -m bench.bench_query).

Question text -> ranked top-10, one query at a time (what a support agent typing does):

    ours: hopfield  HopfieldRetriever.search(q, 10): query embedding, vocabulary repair, FAISS candidates
                    (index chosen by kb.IndexConfig), char n-gram and BM25 evidence, the Hopfield rerank,
                    and the SQLite lookup of the 10 chunks
    ours: dense     DenseRetriever.search(q, 10): embedding + our FAISS index + chunk lookup
    alt: faiss-flat what a user would write: embed with the same model, faiss.IndexFlatIP search, top 10 ids
    alt: bm25s      bm25s over the same retrieval texts, tokenize + retrieve top 10

FAISS runs single-threaded for every single query (ours does that by design; the plain FAISS
alternative is given the same setting, its faster one on this machine). Every measured query is
distinct and none was seen during warm-up, so no cache answers it.

Memory: resident set (VmRSS) after the model loaded, after the snapshot loaded, and after the first
Hopfield answer (which reads the lexical index: nothing is built); per chunk = growth / chunks. The snapshot's vectors
file is memory-mapped, so only the pages queries touch count as resident.

Prints one JSON object (see measure()).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from bench.common import garble, have_scifact, latency, rss_bytes, sample_questions, scifact_queries

# Function names whose cumulative time makes up a Hopfield query (cProfile, per query).
PARTS = {
    "embed query": ("embedder.py", "encode"),
    "vocabulary repair": ("vocabulary.py", "repair"),
    "FAISS candidates": ("baselines.py", "dense_candidates"),
    "BM25 top-K over all chunks (postings)": ("corpus.py", "bm25_top"),
    "BM25 of the candidates": ("corpus.py", "bm25_at"),
    "char n-gram cosines of the candidates": ("corpus.py", "char_at"),
    "cue + Gram matrix": ("hopfield.py", "_cue"),
    "Hopfield iterations": ("hopfield_gram.py", "iterate_gram"),
    "chunk lookup (SQLite)": ("store.py", "chunks"),
}


def _profile(fn, queries) -> dict[str, float]:
    prof = cProfile.Profile()
    prof.enable()
    t = time.perf_counter()
    for q in queries:
        fn(q)
    total = time.perf_counter() - t
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]  # set by Stats, missing from typeshed's stub
    out = {"total (profiled)": total / len(queries)}
    for part, (file, func) in PARTS.items():
        cum = sum(v[3] for (f, _, name), v in stats.items() if f.endswith(file) and name == func)
        out[part] = cum / len(queries)
    return out


def query_pool(kind: str) -> list[str]:
    if kind == "scifact":
        return scifact_queries()[3]
    return sample_questions()


def distinct_queries(queries: list[str], need: int) -> list[str]:
    """need distinct queries: the pool, then seeded typo variants of it (a small pool, e.g. the sample set)."""
    out = list(dict.fromkeys(queries))
    seed = 1
    while len(out) < need:
        out = list(dict.fromkeys(out + garble(queries, "typo-10", seed)))
        seed += 1
    return out[:need]


def _time_bm25s(kb, queries: list[str], out: dict) -> None:
    """The plain-bm25s alternative over the KB's retrieval texts: build time, memory, latencies into out."""
    import bm25s

    _, texts = kb.chunk_texts()
    rss = rss_bytes()
    t = time.perf_counter()
    bm = bm25s.BM25()
    bm.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    out["bm25s_build_s"] = time.perf_counter() - t
    out["rss_plain_bm25s"] = rss_bytes() - rss
    del texts

    def bm25_query(q: str):
        return bm.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=10, show_progress=False)

    out["bm25s"] = latency(bm25_query, queries).tolist()


METHODS = ("hopfield", "dense", "faiss_flat", "bm25s")


def measure(kb_dir: Path, queries: list[str], n: int, profile: int, methods: tuple[str, ...] = METHODS) -> dict:
    """Latencies (seconds) per method, memory (bytes), lexical build time, profile breakdown.

    methods: which of METHODS to time (the rest are skipped, e.g. the lexical ones on a KB whose
    lexical views would not fit in memory)."""
    import faiss

    from kb import KnowledgeBase, load_embedder
    from retriever import make_retriever

    out: dict = {"kb_dir": str(kb_dir)}
    rss0 = rss_bytes()
    embedder = load_embedder()
    embedder.encode(["warm up the model"])
    out["rss_model"] = rss_bytes() - rss0
    rss_model = rss_bytes()

    t = time.perf_counter()
    kb = KnowledgeBase(kb_dir)
    snap = kb.snapshot()
    out["snapshot_load_s"] = time.perf_counter() - t
    out["chunks"] = snap.size
    out["index"] = type(snap.index).__name__ + _index_params(snap.index)
    out["rss_snapshot"] = rss_bytes() - rss_model

    # Disjoint query slices: the query-embedding cache must never answer a measured query.
    queries = distinct_queries(queries, 4 + 4 * n + profile)
    warm, rest = queries[1:4], queries[4:]
    sl = [rest[i * n : (i + 1) * n] for i in range(4)]
    if "hopfield" in methods:
        hop = make_retriever("hopfield", kb, embedder, top_k=10)
        t = time.perf_counter()
        hop.search(queries[0])
        out["first_hopfield_s"] = time.perf_counter() - t  # reads the n-gram frequencies, vocabulary on need
        out["rss_after_first_query"] = rss_bytes() - rss_model
        for q in warm:
            hop.search(q)
        out["hopfield"] = latency(lambda q: hop.search(q, 10), sl[0]).tolist()

    if "dense" in methods:
        dense = make_retriever("dense", kb, embedder, top_k=10)
        dense.search(warm[0] + " dense")
        out["dense"] = latency(lambda q: dense.search(q, 10), sl[1]).tolist()

    if "faiss_flat" in methods:
        vectors = np.ascontiguousarray(np.asarray(snap.vectors, dtype=np.float32))
        rss = rss_bytes()
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        out["rss_plain_flat"] = rss_bytes() - rss
        faiss.omp_set_num_threads(1)
        out["faiss_flat"] = latency(lambda q: flat.search(embedder.encode([q]), 10), sl[2]).tolist()
        del vectors, flat
    if "bm25s" in methods:
        _time_bm25s(kb, sl[3], out)

    if profile and "hopfield" in methods:
        out["profile"] = _profile(lambda q: hop.search(q, 10), rest[4 * n : 4 * n + profile])
    return out


def _index_params(index) -> str:
    import faiss

    try:
        ivf = faiss.extract_index_ivf(index)
        return f"(nlist {ivf.nlist}, nprobe {ivf.nprobe})"
    except RuntimeError:
        return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, required=True)
    parser.add_argument("--queries", choices=("scifact", "sample"), default="scifact" if have_scifact() else "sample")
    parser.add_argument("-n", type=int, default=100, help="measured queries per method (default 100)")
    parser.add_argument("--profile", type=int, default=30, help="extra Hopfield queries under cProfile (0: none)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    args = parser.parse_args()
    methods = tuple(m for m in args.methods.split(",") if m)
    if set(methods) - set(METHODS):
        parser.error(f"unknown methods {sorted(set(methods) - set(METHODS))}")
    result = measure(args.kb_dir, query_pool(args.queries), args.n, args.profile, methods)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
