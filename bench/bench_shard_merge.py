"""What merging shards' top k by score costs in quality: the same chunks asked whole and sharded.

    python -m bench.bench_shard_merge --workdir ../scratch/shards --source KB_SCIFACT [--shards 4 -n 50000]

bench.kbs.split_kb builds (once) one KB of n chunks (SciFact's 5,183 abstracts first, then noisy copies) and S
shards holding exactly its documents. SciFact's 300 test claims, each embedded once, go to the whole KB and to the
S shards (bench.scatter.ShardPool, merged by score). Per method it prints the mean overlap of the merged top k
with the whole KB's top k, the share of questions with the same top 1, and found@k: the share of questions with a
labelled abstract (copy 0, the abstract itself) in the top k. Dense must be identical (cosines merge exactly); the
Hopfield reader's scores are z-scores within each shard's candidates, so its merge is an approximation.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from bench.common import default_workdir, scifact_queries
from bench.kbs import scifact_kb, split_kb
from bench.scatter import METHODS, ShardPool


def answers(dirs: list[Path], qs: list[str], vecs: np.ndarray, k: int) -> dict[str, list[list[tuple[str, int]]]]:
    """Per method, per question, the merged top k as (document key, chunk ordinal)."""
    with ShardPool(dirs) as pool:
        return {
            m: [[(h.source, h.ordinal) for h in pool.search(m, q, v, k).hits] for q, v in zip(qs, vecs)] for m in METHODS
        }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=default_workdir() / "shards")
    ap.add_argument("--source", type=Path, help="the SciFact KB (default: built under --workdir)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("-n", "--chunks", type=int, default=50_000, help="chunks in all")
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from kb import KnowledgeBase, query_embedder_for

    threadpool_limits(1)  # one core per process, as in bench.bench_shards
    source = args.source or scifact_kb(args.workdir)[0]
    whole, parts = split_kb(args.workdir, source, args.chunks, args.shards)
    _, qs, relevant, _ = scifact_queries()
    vecs = query_embedder_for(KnowledgeBase(whole)).encode_queries(qs)
    one, split = answers([whole], qs, vecs, args.k), answers(parts, qs, vecs, args.k)
    out: dict = {"chunks": args.chunks, "shards": args.shards, "k": args.k, "questions": len(qs), "load": os.getloadavg()}
    for m in METHODS:
        overlap = [len(set(a) & set(b)) / args.k for a, b in zip(one[m], split[m])]
        top1 = [a[:1] == b[:1] for a, b in zip(one[m], split[m])]

        def found(ranked: list[list[tuple[str, int]]]) -> float:
            return float(np.mean([bool({s for s, _ in r} & rel) for r, rel in zip(ranked, relevant)]))

        out[m] = {
            "overlap_at_k": float(np.mean(overlap)),
            "same_top1": float(np.mean(top1)),
            "found_at_k_whole": found(one[m]),
            "found_at_k_sharded": found(split[m]),
        }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
