"""The sections of `python -m bench.run` (see its docstring): each runs its script in a fresh process and
returns the rows it adds to the table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.common import (
    ROOT,
    TYPO_QUESTION,
    Row,
    fmt_bytes,
    fmt_ms,
    fmt_s,
    have_scifact,
    ratio_rate,
    ratio_time,
    run_json,
    shares,
)

SECTIONS = ("ingest", "formats", "query", "views", "index", "eval", "sync", "startup", "answer", "conversation", "api")
# KBs above this many chunks are "big": their index section builds only the SQ8 compact variant (each
# variant is another IVF training, ~1 min at 1M).
BIG_KB = 200_000


def section_ingest(kbs: dict) -> list[Row]:
    r = run_json("bench_ingest", "--kb-dir", str(kbs["scifact"][0]), "--chunks", "500")
    n = r["chunks"]
    ours, ours32, alt = n / r["ours_s"], n / r["ours_fp32_s"], n / r["alt_s"]
    rows = [
        Row(
            f"embed {n} SciFact chunks ({r['mean_wordpieces']:.0f} wordpieces avg), {r['precision']}",
            f"{ours:.1f} chunks/s",
            f"{alt:.1f} chunks/s",
            ratio_rate(ours, alt),
            f"alt: sentence-transformers encode, batch 32, fp32; cosine to it min {r['cos_min']:.5f}",
        ),
        Row(
            "embed, ours forced to fp32",
            f"{ours32:.1f} chunks/s",
            f"{alt:.1f} chunks/s",
            ratio_rate(ours32, alt),
            f"cosine to sentence-transformers min {r['cos32_min']:.6f}",
        ),
    ]
    sci = kbs["scifact"][1]
    rows.append(
        Row(
            f"ingest stage shares, SciFact ({sci['chunks']} chunks, {sci['seconds']:.0f} s)",
            shares(sci["stage_seconds"]),
            note="ingest_texts of the corpus, measured when the KB was built",
        )
    )
    sample = kbs["sample"][1]
    rows.append(
        Row(
            f"ingest stage shares, sample docs with PDFs ({sample['chunks']} chunks)",
            shares(sample["stage_seconds"]),
            note="pypdf / Markdown / HTML loading included",
        )
    )
    return rows


def section_formats(quick: bool = False) -> list[Row]:
    r = run_json("bench_ingest_formats", *(["--quick"] if quick else []), timeout=3600)
    return [
        Row(
            f"ingest end to end, {fmt} ({f['chunks']} chunks, lexical index on)",
            f"{f['ours_chunks_per_s']:.1f} chunks/s",
            f"{f['st_encode_chunks_per_s']:.1f} chunks/s",
            f["strict_ratio"],
            f"alt: sentence-transformers' encode of the same texts alone; our sync embedding with it instead: "
            f"{f['like_for_like_ratio']:.2f}x; goal >= 1.9x (bench/bench_ingest_formats.py)",
        )
        for fmt, f in r["formats"].items()
    ]


def section_query(kbs: dict) -> list[Row]:
    import numpy as np

    rows = []
    for name in [k for k in kbs if k != "sample"] or ["sample"]:
        kb_dir = kbs[name][0]
        r = run_json(
            "bench_query",
            "--kb-dir",
            str(kb_dir),
            "-n",
            "100",
            "--profile",
            "0",
            "--methods",
            "hopfield,dense,faiss_flat,bm25s" if kbs[name][1]["chunks"] <= BIG_KB else "hopfield,dense,faiss_flat",
        )
        dense, flat, hop = (np.asarray(r[k]) for k in ("dense", "faiss_flat", "hopfield"))
        label = f"{r['chunks']:,} chunks"
        p50 = lambda a: float(np.median(a))  # noqa: E731
        p95 = lambda a: float(np.percentile(a, 95))  # noqa: E731
        rows.append(
            Row(
                f"query -> top-10, hopfield, {label} [{r['index']}]",
                f"{fmt_ms(p50(hop))} (p95 {fmt_ms(p95(hop))})",
                f"{fmt_ms(p50(flat))} (p95 {fmt_ms(p95(flat))})",
                ratio_time(p50(hop), p50(flat)),
                "alt: embed + faiss.IndexFlatIP top 10, no rerank; ours adds repair, BM25/char evidence, "
                "Hopfield rerank, chunk lookup",
            )
        )
        rows.append(
            Row(
                f"query -> top-10, dense, {label}",
                f"{fmt_ms(p50(dense))} (p95 {fmt_ms(p95(dense))})",
                f"{fmt_ms(p50(flat))} (p95 {fmt_ms(p95(flat))})",
                ratio_time(p50(dense), p50(flat)),
                "ours: the KB's chosen index + chunk lookup",
            )
        )
        ours = (r["rss_snapshot"] + r["rss_after_first_query"]) / r["chunks"]
        alt = (r["rss_plain_flat"] + r.get("rss_plain_bm25s", 0)) / r["chunks"]
        rows.append(
            Row(
                f"resident memory per chunk, {label}",
                fmt_bytes(ours),
                fmt_bytes(alt),
                ratio_time(ours, alt),
                "ours: snapshot + everything the first Hopfield question reads; alt: plain IndexFlatIP"
                + (" + bm25s index" if "rss_plain_bm25s" in r else "")
                + f"; model {fmt_bytes(r['rss_model'])} once",
            )
        )
    return rows


def section_views(kbs: dict) -> list[Row]:
    rows = []
    for name in [k for k in kbs if k != "sample"] or ["sample"]:
        big = kbs[name][1]["chunks"] > BIG_KB  # read-only there: no 14 GB copy, no rebuild, no sync
        r = run_json(
            "bench_views", "--kb-dir", str(kbs[name][0]), *(["--skip-build", "--skip-fresh"] if big else []), timeout=7200
        )
        label = f"{r['chunks']:,} chunks"
        if "lexical_build_s" in r:
            rows.append(
                Row(
                    f"lexical index rebuild, {label}",
                    fmt_s(r["lexical_build_s"]),
                    f"{r['index']} build {fmt_s(r['vector_index_build_s'])}",
                    ratio_time(r["lexical_build_s"], r["vector_index_build_s"]),
                    "goal: within 1.5x of the vector index (ratio >= 0.67); a sync pays it only for changed chunks",
                )
            )
        if "first_after_sync_s" in r:
            rows.append(
                Row(
                    f"first question after 10 documents changed, {label}",
                    fmt_ms(r["first_after_sync_s"]),
                    f"warm median {fmt_ms(r['hopfield_p50_s'])}",
                    ratio_time(r["first_after_sync_s"], r["hopfield_p50_s"]),
                    f"goal: within 2x warm (ratio >= 0.5); sync in another process {fmt_s(r['sync_s'])} "
                    f"({r['sync_counts']}); new version served {fmt_s(r['new_version_served_after_s'])} "
                    f"after the sync ended ({r['questions_before_new_version']} questions answered from the "
                    f"old one meanwhile); slowest question during and after the sync "
                    f"{fmt_ms(r['slowest_question_during_sync_s'])}",
                )
            )
        rows.append(
            Row(
                f"hopfield warm, {label}",
                f"{fmt_ms(r['hopfield_p50_s'])} (p95 {fmt_ms(r['hopfield_p95_s'])})",
                f"dense {fmt_ms(r['dense_p50_s'])} (p95 {fmt_ms(r['dense_p95_s'])})",
                None,
                f"resident {fmt_bytes(r['rss_per_chunk'])} per chunk after 100 questions (goal < 4 KiB at 1M); "
                f"first question in the process {fmt_s(r['first_hopfield_s'])}",
            )
        )
    return rows


def section_index(kbs: dict) -> list[Row]:
    rows = []
    for name in [k for k in kbs if k.startswith("synthetic")]:
        storages = "fp16,sq8" if kbs[name][1]["chunks"] <= BIG_KB else "sq8"
        r = run_json("bench_index", "--kb-dir", str(kbs[name][0]), "--nprobe", "64", "--storages", storages)
        ex = r["exact"]
        for v in r["variants"]:
            rows.append(
                Row(
                    f"index {v['name']} at {r['n']:,}: {v['index']}",
                    f"recall@10 {v['recall@10']:.4f}, {fmt_ms(v['p50_s'])}, {v['bytes_per_vector']:.0f} B/vec",
                    f"1.0000, {fmt_ms(ex['p50_s'])}, {ex['bytes_per_vector']:.0f} B/vec",
                    ratio_time(v["p50_s"], ex["p50_s"]),
                    "alt: exact IndexFlatIP (the ground truth); one query, one thread; 600 SciFact claims",
                )
            )
    return rows


def section_eval(kbs: dict) -> list[Row]:
    r = run_json("bench_eval", "--kb-dir", str(kbs["scifact"][0]))
    n = r["queries"] * len(r["conditions"])
    rec = r["hopfield_recall@10"]
    return [
        Row(
            f"eval: {r['queries']} SciFact queries x {len(r['conditions'])} conditions, hopfield",
            fmt_s(r["hopfield_s"]),
            "goal 30.0 s",
            ratio_time(r["hopfield_s"], 30.0),
            f"{n} queries incl. embedding; recall@10 " + ", ".join(f"{c} {rec[c]['hopfield']:.3f}" for c in rec),
        ),
        Row(
            "eval: the same, dense + bm25 + hybrid + hopfield in one run",
            fmt_s(r["all_s"]),
            "goal 30.0 s",
            ratio_time(r["all_s"], 30.0),
        ),
    ]


def section_sync(docs: int) -> list[Row]:
    r = run_json("bench_sync", "-n", str(docs), "--json")
    share = r["resync_s"] / r["full_s"]
    return [
        Row(
            f"re-sync {r['docs']:,} docs, {r['changed']} changed (1%)",
            f"{fmt_s(r['resync_s'])} = {100 * share:.2f}% of full",
            f"full ingest {fmt_s(r['full_s'])}",
            ratio_time(r["resync_s"], r["full_s"]),
            f"no-op re-sync {fmt_s(r['noop_s'])}; goal < 3% of full; resync stages: {shares(r['resync_stages'])}",
        )
    ]


def section_startup(kbs: dict) -> list[Row]:
    rows = []
    sample = kbs["sample"][0]
    try:
        r = run_json("bench_app_latency", "--kb-dir", str(sample), "-n", "5", "--json")
        first = r["ready_s"] + r["first_s"]
        rows.append(
            Row(
                "app: start -> first answer rendered (Chromium)",
                fmt_s(first),
                "goal 5.0 s",
                ratio_time(first, 5.0),
                f"server + page ready {fmt_s(r['ready_s'])}, first question {fmt_s(r['first_s'])}; "
                f"later questions median {fmt_ms(r['median_s'])}",
            )
        )
    except RuntimeError as exc:
        rows.append(Row("app: start -> first answer rendered", "not measured", note=str(exc).splitlines()[0][:200]))
    kb = Path(sys.executable).with_name("kb")
    t = time.perf_counter()
    subprocess.run(
        [str(kb), "ask", "How do I reset a forgotten password?", "--kb-dir", str(sample)], check=True, capture_output=True
    )
    cli = time.perf_counter() - t
    rows.append(
        Row(
            "CLI: `kb ask` fresh process -> answer printed",
            fmt_s(cli),
            "goal 5.0 s",
            ratio_time(cli, 5.0),
            "includes Python start-up, imports, model load",
        )
    )
    if "scifact" in kbs:
        ask = _median_seconds(
            [str(kb), "ask", "What does vitamin D do for bone health?", "--kb-dir", str(kbs["scifact"][0])]
        )
        rows.append(
            Row(
                f"CLI: `kb ask` fresh process, SciFact ({kbs['scifact'][1]['chunks']:,} chunks)",
                fmt_s(ask),
                "goal 2.5 s (issue 31; was 6.6 s with torch)",
                ratio_time(ask, 2.5),
                "median of 3 runs; no torch on the question path (before/after: bench/bench_first_answer.py)",
            )
        )
        ask = _median_seconds([str(kb), "ask", TYPO_QUESTION, "--kb-dir", str(kbs["scifact"][0])])
        rows.append(
            Row(
                "CLI: `kb ask` fresh process, SciFact, a question with typos",
                fmt_s(ask),
                "goal 2.5 s",
                ratio_time(ask, 2.5),
                f"{TYPO_QUESTION!r}: query repair scans the KB's words, no dictionary built; median of 3 runs",
            )
        )
    return rows


def _median_seconds(cmd: list[str], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def section_answer(kbs: dict) -> list[Row]:
    r = run_json("bench_answer", "--kb-dir", str(kbs["sample"][0]), "--json")
    rows = []
    for name in ("hopfield", "dense"):
        f = r[name]
        rows.append(
            Row(
                f"answer composition vs retrieval, {name}, sample questions (median, warm, uncached)",
                f"{f['compose_ms']:.0f} ms",
                f"retrieval {f['retrieval_ms']:.0f} ms",
                None,
                f"composition / retrieval {f['ratio']:.2f}x (goal <= 1.5x); bench/bench_answer.py",
            )
        )
    return rows


def section_conversation() -> list[Row]:
    if not (ROOT.parent / "shared" / "datasets" / "doc2dial-dev").is_dir():
        print("conversation: skipped, ../shared/datasets/doc2dial-dev is absent")
        return []
    r = run_json("bench_conversation", "--json", timeout=3600)
    return [
        Row(
            f"a follow-up vs the same turn alone, doc2dial-dev, {what} (median, warm, uncached)",
            f"{r[f'{what} follow-up']['median_ms']:.0f} ms",
            f"alone {r[f'{what} alone']['median_ms']:.0f} ms",
            None,
            f"follow-up / alone {r[f'ratio_{what}']:.2f}x (goal <= 1.3x); {r['turns']} turns; bench/bench_conversation.py",
        )
        for what in ("search", "answer")
    ]


def section_api(kbs: dict, seconds: float) -> list[Row]:
    rows = []
    for kb in ("sample", "scifact") if have_scifact() else ("sample",):
        args = ["--kb", kb, "--seconds", str(seconds), "--json"]
        if kb == "scifact":
            args += ["--scifact-kb", str(kbs["scifact"][0])]
        r = run_json("bench_api_load", *args, timeout=3600)
        for phase, label in (("steady", "steady"), ("during_sync", "while 10 documents change")):
            f = r[phase]
            lat = "; ".join(
                f"{k} p50 {f[k]['p50_ms']:.0f} / p95 {f[k]['p95_ms']:.0f} ms" for k in ("search", "ask") if k in f
            )
            rows.append(
                Row(
                    f"HTTP API, {kb} KB, {r['clients']} clients x {f['seconds']:.0f} s, {label}",
                    f"{f['requests_per_s']:.1f} req/s, {f['errors']} errors, {f['mixed_version_responses']} mixed",
                    note=f"{f['requests']} requests; {lat}; snapshots seen {f['snapshots_seen']}",
                )
            )
    return rows
