"""The 10M scale-out simulation: S shard KBs served by S worker processes, scatter-gather, and syncs per shard.

    python -m bench.bench_shards --workdir ../scratch/shards --source KB_SCIFACT [--single-kb KB_1M]

1. Build (once, cached; bench.kbs.synthetic_shards) S shards of n chunks (default 8 x 125,000), cut by a hash of
   the document key from one synthetic corpus of SciFact's real chunk vectors plus noise.
2. Questions: SciFact's 300 test claims (the sample questions without ../shared), each embedded once at the
   coordinator; every shard ranks it with the real reader ("hopfield") and "dense" (bench.scatter.ShardPool).
   Timed: all S shards together, shard 0 alone, and --single-kb alone (each in worker processes, one after
   another): the coordinator's wall time per question, and per shard its CPU and wall seconds.
3. Memory: each worker's resident set after the questions.
4. Sync (unless --skip-sync): 1 and then 100 changed documents committed into shard 0 (their changed chunks
   embedded with the real model, timed apart), then the originals put back (two more commits, also timed).
   --sync-kb KB times the same in another KB (one you may write to), to see how a commit grows with the KB.
5. The 10M estimate for a cluster with one core per shard (see derive()).

Prints a table and, with --json, one JSON object. On 2 cores S workers time-share: the per-shard CPU seconds are
the work, the wall time the cost here.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from bench.common import default_workdir, have_scifact, sample_questions, scifact_queries
from bench.kbs import kb_documents, scifact_kb, synthetic_shards
from bench.scatter import METHODS, ShardPool

# Assumed network cost per question on a cluster: the coordinator's send and the slowest shard's reply
# (k hits of ~100 bytes each) within one data-centre network.
RTT_S = 0.001


def questions(n: int) -> tuple[list[str], list[str]]:
    """(measured, warm-up) questions: SciFact test claims and other SciFact queries, else the sample's."""
    if have_scifact():
        _, texts, _, every = scifact_queries()
        measured = texts[:n]
        return measured, [q for q in every if q not in set(measured)][:10]
    qs = sample_questions()
    return qs[:n], qs[-10:]


def serve(dirs: list[Path], qs: list[str], vecs: np.ndarray, warm: list[str], wvecs: np.ndarray, k: int) -> dict:
    """Per method: per question the coordinator's wall seconds and each shard's CPU and wall seconds; RSS."""
    out: dict = {"shards": len(dirs)}
    started = time.perf_counter()
    with ShardPool(dirs) as pool:
        out["open_s"] = time.perf_counter() - started
        for method in METHODS:
            for q, v in zip(warm, wvecs):
                pool.search(method, q, v, k)
            rows = [pool.search(method, q, v, k) for q, v in zip(qs, vecs)]
            out[method] = {
                "wall_s": [g.wall_s for g in rows],
                "cpu_s": [list(g.shard_cpu_s) for g in rows],
                "shard_wall_s": [list(g.shard_wall_s) for g in rows],
            }
        out["rss_bytes"] = pool.rss_bytes()
    return out


def _changed(doc):
    """doc with a sentence added to its last chunk (and its text), as an edited document would be."""
    from kb import NewChunk, NewDocument

    extra = " This section was revised."
    last = doc.chunks[-1]
    chunk = NewChunk(**{**last.__dict__, "text": last.text + extra, "char_end": last.char_end + len(extra)})
    chunks = doc.chunks[:-1] + (chunk,)
    text = doc.text[: last.char_end] + extra + doc.text[last.char_end :]
    return NewDocument(**{**doc.__dict__, "text": text, "chunks": chunks, "content_hash": "revised-" + doc.content_hash})


def sync(kb_dir: Path, counts: tuple[int, ...]) -> dict:
    """Commit seconds of `count` changed documents into kb_dir, and of putting them back, per count;
    the real model's seconds per embedded chunk for the changed chunks."""
    from kb import KnowledgeBase, load_embedder, retrieval_text

    kb = KnowledgeBase(kb_dir)
    manifest = kb.manifest
    assert manifest is not None
    docs = kb_documents(kb)
    rng = np.random.default_rng(0)
    embedder = load_embedder()
    import torch

    torch.set_num_threads(1)  # the embedding rate per core
    embedder.encode(["warm up the model"])
    out: dict = {"chunks": kb.snapshot().size, "runs": []}
    for count in counts:
        picked = [docs[i] for i in rng.choice(len(docs), count, replace=False)]
        changed = [_changed(d) for d, _ in picked]
        texts = [retrieval_text(d.title, c.section, c.text) for d in changed for c in d.chunks]
        t = time.perf_counter()
        vectors = embedder.encode(texts)
        embed_s = time.perf_counter() - t
        run = {"documents": count, "chunks": len(texts), "embed_s": embed_s}
        for label, batch in (("commit_s", None), ("restore_s", picked)):
            t = time.perf_counter()
            with kb.writer(model=manifest.model, dim=manifest.dim) as writer:
                if batch is None:
                    pos = 0
                    for d in changed:
                        writer.put_document(d, vectors[pos : pos + len(d.chunks)])
                        pos += len(d.chunks)
                else:
                    for d, v in batch:
                        writer.put_document(d, v)
            run[label] = time.perf_counter() - t
        out["runs"].append(run)
    return out


def _pct(x, q) -> float:
    return float(np.percentile(np.asarray(x), q))


def derive(sharded: dict, single: dict | None, target: int, embed_s: float, rng_seed: int = 0) -> dict:
    """The 10M figures per question, for one core per shard.

    Latency = coordinator embedding + the slowest of the shards (a shard's CPU seconds for the question, as it
    would run alone on its core) + RTT_S. For shards_10m shards of this size, the slowest is drawn for each
    question from its own measured shards (bootstrap: max of shards_10m draws). For target / the --single-kb size,
    the single KB's time for the question times that question's max/mean over the measured shards (the straggler
    spread). Work = the sum over shards of CPU seconds (core-seconds per question: what throughput costs)."""
    rng = np.random.default_rng(rng_seed)
    shards_10m = max(target // sharded["chunks_each"], 1)
    out: dict = {}
    for method in METHODS:
        cpu = np.asarray(sharded[method]["cpu_s"])  # questions x shards
        slowest = np.array([rng.choice(row, shards_10m).max() for row in cpu])
        lat = embed_s + slowest + RTT_S
        m = {
            "shards": shards_10m,
            "latency_p50_s": _pct(lat, 50),
            "latency_p95_s": _pct(lat, 95),
            "core_s_per_question": float(cpu.mean() * shards_10m),
        }
        if single is not None:
            one = np.asarray(single[method]["cpu_s"])[:, 0]
            spread = cpu.max(1) / np.maximum(cpu.mean(1), 1e-9)
            lat1 = embed_s + one * spread + RTT_S
            big = max(target // single["chunks_each"], 1)
            m["big_shards"] = {
                "shards": big,
                "chunks_each": single["chunks_each"],
                "latency_p50_s": _pct(lat1, 50),
                "latency_p95_s": _pct(lat1, 95),
                "core_s_per_question": float(one.mean() * big),
            }
        out[method] = m
    return out


def _ms(x: float) -> str:
    return f"{1000 * x:.1f}"


def table(res: dict) -> str:
    lines = ["| setup | method | wall p50 / p95 ms | per-shard CPU p50 / p95 ms | sum of CPU p50 ms | RSS per worker |"]
    lines.append("|---|---|---|---|---|---|")
    for name in ("sharded", "one_shard", "single_kb"):
        r = res.get(name)
        if r is None:
            continue
        rss = f"{np.mean(r['rss_bytes']) / 2**20:.0f} MiB"
        for method in METHODS:
            m = r[method]
            cpu = np.asarray(m["cpu_s"])
            lines.append(
                f"| {name} ({r['shards']} x {r['chunks_each']:,}) | {method} | {_ms(_pct(m['wall_s'], 50))} / "
                f"{_ms(_pct(m['wall_s'], 95))} | {_ms(_pct(cpu, 50))} / {_ms(_pct(cpu, 95))} | "
                f"{_ms(_pct(cpu.sum(1), 50))} | {rss} |"
            )
    return "\n".join(lines)


def ask(args: argparse.Namespace, dirs: list[Path]) -> dict:
    """Steps 2, 3 and 5: the questions to all shards, to shard 0 alone and to --single-kb; the estimate."""
    from kb import KnowledgeBase, query_embedder_for

    res: dict = {}
    qs, warm = questions(args.queries)
    encoder = query_embedder_for(KnowledgeBase(dirs[0]))
    encoder.encode_queries(warm[:2])
    t = time.perf_counter()
    vecs = np.vstack([encoder.encode_queries([q]) for q in qs])
    res["embed_s_per_question"] = (time.perf_counter() - t) / len(qs)
    wvecs = encoder.encode_queries(warm)

    res["sharded"] = {**serve(dirs, qs, vecs, warm, wvecs, args.k), "chunks_each": args.chunks}
    res["one_shard"] = {**serve(dirs[:1], qs, vecs, warm, wvecs, args.k), "chunks_each": args.chunks}
    if args.single_kb:
        size = KnowledgeBase(args.single_kb).snapshot().size
        res["single_kb"] = {**serve([args.single_kb], qs, vecs, warm, wvecs, args.k), "chunks_each": size}
    res["load_after_questions"] = os.getloadavg()
    res["estimate"] = derive(res["sharded"], res.get("single_kb"), args.target, res["embed_s_per_question"])
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=default_workdir() / "shards")
    ap.add_argument("--source", type=Path, help="the SciFact KB (default: built under --workdir)")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("-n", "--chunks", type=int, default=125_000, help="chunks per shard")
    ap.add_argument("--single-kb", type=Path, help="one KB to time alone for comparison (e.g. 1M chunks)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--target", type=int, default=10_000_000, help="chunks the estimate is for")
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--skip-questions", action="store_true", help="steps 2, 3 and 5 left out")
    ap.add_argument(
        "--sync-kb", type=Path, action="append", default=[], help="also time step 4 in this KB (it is written to)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    # One core for the coordinator, as for each shard worker (ShardPool's threads=1): the cluster the estimate is
    # for. On this busy 2-core machine a question's embedding took ~1 s with the BLAS's default threads, 20 ms with one.
    threadpool_limits(1)
    source = args.source or scifact_kb(args.workdir)[0]
    built = synthetic_shards(args.workdir, source, args.shards, args.chunks)
    dirs = [d for d, _ in built]
    res: dict = {"load_before": os.getloadavg(), "build": [{k: v for k, v in i.items() if k != "key"} for _, i in built]}

    if not args.skip_questions:
        res.update(ask(args, dirs))
    if not args.skip_sync:
        res["sync"] = sync(dirs[0], (1, 100))
    for kb_dir in args.sync_kb:
        res.setdefault("sync_more", []).append(sync(kb_dir, (1, 100)))
    res["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(res))
    else:
        if not args.skip_questions:
            print(table(res))
        print(json.dumps({k: v for k, v in res.items() if k not in ("sharded", "one_shard", "single_kb")}, indent=1))
    return res


if __name__ == "__main__":
    main()
