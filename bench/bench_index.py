"""Index choice on a real-vector KB: recall@10 against exact search, latency, build time, bytes.

Runs in its own process (python -m bench.bench_index --kb-dir DIR) on the snapshot vectors of a
KB (the synthetic 100k / 1M KBs are SciFact's real chunk vectors plus noise, see bench/kbs.py).
Queries are real: SciFact's claims embedded with the KB's model (--queries of them). Exact
ground truth is faiss.IndexFlatIP over the same vectors. Every variant is built the way the KB
builds it (kb.vector_index.build_index with an IndexConfig), so the figures are the shipped code's.

    auto        IndexConfig() as shipped: exact up to flat_max, IVF above (the KB's choice)
    nprobe=...  the same IVF searched with other nprobe values (the tuning curve)
    fp16 / sq8  IndexConfig(storage=...): the compact options, with their recall cost
    hnsw        IndexConfig(kind="hnsw") when --hnsw is given (its build is slow on 2 cores)

Latency: one query at a time, FAISS on one thread, p50 and p95 over --latency-queries queries.
Bytes: the serialised index size (what the index holds in memory), per vector.
Prints one JSON object: {"n", "exact": {...}, "variants": [{...}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of the exact top-k ids that the index returned in its top k."""
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def single_query_latency(index, queries: np.ndarray, k: int = 10) -> tuple[float, float]:
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        times = []
        for q in queries:
            t = time.perf_counter()
            index.search(q[None, :], k)
            times.append(time.perf_counter() - t)
    finally:
        faiss.omp_set_num_threads(threads)
    return float(np.median(times)), float(np.percentile(times, 95))


def index_bytes(index) -> int:
    import faiss

    return int(faiss.serialize_index(index).size)


def describe(index) -> str:
    import faiss

    try:
        ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))  # the IVF subclass, nlist and nprobe
        if isinstance(ivf, faiss.IndexIVFScalarQuantizer):
            inner = {faiss.ScalarQuantizer.QT_fp16: "IVF-fp16", faiss.ScalarQuantizer.QT_8bit: "IVF-SQ8"}.get(
                ivf.sq.qtype, "IVF-SQ"
            )
        else:
            inner = "IVF-flat"
        return f"{inner} nlist {ivf.nlist} nprobe {ivf.nprobe}"
    except RuntimeError:
        flat = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
        return type(flat).__name__.replace("Index", "")


def measure(
    kb_dir: Path, n_queries: int, n_latency: int, nprobes: list[int], hnsw: bool, storages: tuple[str, ...] = ("fp16", "sq8")
) -> dict:
    import faiss

    from bench.common import scifact_queries
    from kb import IndexConfig, KnowledgeBase, load_embedder
    from kb.vector_index import build_index

    snap = KnowledgeBase(kb_dir).snapshot()
    ids = np.asarray(snap.ids)
    vectors = np.ascontiguousarray(np.asarray(snap.vectors, dtype=np.float32))
    n = len(ids)
    queries = load_embedder().encode(scifact_queries()[3][:n_queries])
    lat_q = queries[:n_latency]

    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    flat.add_with_ids(vectors, ids)
    t = time.perf_counter()
    _, truth = flat.search(queries, 100)
    exact = {"batch_search_s": time.perf_counter() - t, "bytes_per_vector": index_bytes(flat) / n}
    exact["p50_s"], exact["p95_s"] = single_query_latency(flat, lat_q)
    del flat

    def variant(name: str, config: IndexConfig, index=None) -> tuple[dict, Any]:
        build_s = None
        if index is None:
            t = time.perf_counter()
            index = build_index(ids, vectors, config)
            build_s = time.perf_counter() - t
        _, found = index.search(queries, 100)
        p50, p95 = single_query_latency(index, lat_q)
        return (
            {
                "name": name,
                "index": describe(index),
                "build_s": build_s,
                "recall@10": recall(found, truth, 10),
                "recall@100": recall(found, truth, 100),
                "p50_s": p50,
                "p95_s": p95,
                "bytes_per_vector": index_bytes(index) / n,
            },
            index,
        )

    shipped = IndexConfig()
    out = []
    row, auto = variant("auto", shipped)
    out.append(row)
    try:
        ivf = faiss.extract_index_ivf(auto)
    except RuntimeError:
        ivf = None
    if ivf is not None:
        for nprobe in nprobes:
            if nprobe != shipped.nprobe:
                ivf.nprobe = nprobe
                out.append(variant(f"nprobe={nprobe}", shipped, auto)[0])
        ivf.nprobe = shipped.nprobe
    del auto, ivf
    for storage in storages:
        out.append(variant(storage, replace(shipped, storage=storage))[0])
    if hnsw:
        out.append(variant("hnsw", replace(shipped, kind="hnsw"))[0])
    return {"n": n, "queries": len(queries), "exact": exact, "variants": out, "flat_max": shipped.flat_max}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=600, help="SciFact queries for recall (default 600)")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--nprobe", default="64,96,192", help="extra nprobe values to try on the auto IVF")
    parser.add_argument("--hnsw", action="store_true", help="also build HNSW (slow)")
    parser.add_argument("--storages", default="fp16,sq8", help="compact storage options to build and measure")
    args = parser.parse_args()
    nprobes = [int(x) for x in args.nprobe.split(",") if x]
    storages = tuple(x for x in args.storages.split(",") if x)
    print(json.dumps(measure(args.kb_dir, args.queries, args.latency_queries, nprobes, args.hnsw, storages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
