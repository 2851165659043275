"""Ray scale-out figures: SciFact ingest through Ray (1 and 2 worker nodes) against the plain local ingest
in the same run, and HTTP API throughput with 1 and 2 Ray Serve replicas against plain `kb serve`.

Ingest: the first N SciFact abstracts (default 2,000) are written as .txt files (title, blank line,
abstract) and synced three times into fresh KBs: locally (`ingest`, one process, torch on every core),
through a local Ray cluster whose head has 0 CPUs and one worker node has all the cores (one embedding
actor, as many torch threads), and through one with two worker nodes splitting the cores (two actors).
Each Ray KB is compared with the local one (same chunks; vector cosine). Wall time includes every model
load (the actors load theirs; the local run loads its own first).

Serving: the sample KB, `kb serve` under uvicorn (all cores), then `kb serve --ray --replicas 1` and
`--replicas 2` on a cluster of two 1-CPU worker nodes (1 CPU per replica), each under the load of
bench/bench_api_load.py (N clients alternating search and ask for S seconds). The load generator runs on
the same cores.

Usage:
    .venv/bin/python -m bench.bench_ray                         # 2,000 abstracts; serving 16 clients x 30 s
    .venv/bin/python -m bench.bench_ray --docs 500 --seconds 10 --json
    .venv/bin/python -m bench.bench_ray --skip-serve
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from bench.bench_api_load import free_port, load
from bench.common import SCIFACT
from data import SAMPLE_DOCS, SAMPLE_QUESTIONS

ROOT = Path(__file__).resolve().parents[1]


def write_abstracts(folder: Path, n: int) -> int:
    folder.mkdir(parents=True)
    count = 0
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if count >= n:
                break
            rec = json.loads(line)
            if not rec.get("text", "").strip():
                continue
            (folder / f"{rec['_id']}.txt").write_text(f"{rec.get('title') or rec['_id']}\n\n{rec['text']}\n")
            count += 1
    return count


def vectors(kb_dir: Path) -> tuple[list[tuple], np.ndarray]:
    con = sqlite3.connect(f"file:{kb_dir / 'kb.sqlite'}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT d.source, c.ordinal, c.text, e.vector FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "AND c.doc_version = d.version JOIN embeddings e ON e.text_hash = c.text_hash "
        "ORDER BY d.source, c.ordinal"
    ).fetchall()
    con.close()
    return [r[:3] for r in rows], np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows])


def ingest_figures(n_docs: int, work: Path) -> dict:
    from ingest import IngestConfig, RayConfig, RayEngine, ingest
    from tests.ray_cluster import LocalCluster

    docs = work / "scifact-docs"
    n = write_abstracts(docs, n_docs)
    cores = os.cpu_count() or 2
    out: dict = {"documents": n, "cores": cores}
    started = time.perf_counter()
    local = ingest(work / "kb-local", [docs], IngestConfig())
    out["local"] = {
        "seconds": round(time.perf_counter() - started, 1),
        "chunks": local.chunks_written,
        "stages": {k: round(v, 1) for k, v in local.stage_seconds},
    }
    print(f"local: {n} files, {local.chunks_written} chunks in {out['local']['seconds']} s", flush=True)
    keys, local_vecs = vectors(work / "kb-local")
    for name, workers in (("ray_1_worker", (cores,)), ("ray_2_workers", (cores / 2, cores / 2))):
        with LocalCluster(head_cpus=0, worker_cpus=workers) as cluster:
            started = time.perf_counter()
            with RayEngine(RayConfig(address=cluster.address)) as engine:
                report = ingest(work / f"kb-{name}", [docs], IngestConfig(), engine=engine)
            seconds = time.perf_counter() - started
        ray_keys, ray_vecs = vectors(work / f"kb-{name}")
        cos = np.einsum("ij,ij->i", ray_vecs, local_vecs) if ray_keys == keys else np.array([np.nan])
        out[name] = {
            "seconds": round(seconds, 1),
            "chunks": report.chunks_written,
            "ratio_to_local": round(seconds / out["local"]["seconds"], 3),
            "chunks_per_s": round(report.chunks_written / seconds, 1),
            "same_chunks": ray_keys == keys,
            "min_cosine_to_local": round(float(cos.min()), 5),
            "stages": {k: round(v, 1) for k, v in report.stage_seconds},
        }
        print(
            f"{name}: {seconds:.1f} s ({out[name]['ratio_to_local']}x local), same chunks: {ray_keys == keys}, "
            f"min cosine to local {out[name]['min_cosine_to_local']}",
            flush=True,
        )
    out["local"]["chunks_per_s"] = round(local.chunks_written / out["local"]["seconds"], 1)
    return out


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "serve", *args],
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"),
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _measure(args: list[str], work: Path, name: str, token: str, questions: list[str], clients: int, seconds: float) -> dict:
    import httpx

    port = free_port()
    proc = _start(["--config", str(work / "server.toml"), "--port", str(port), *args], work / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 240
        with httpx.Client(base_url=url, timeout=60) as c:
            while True:
                try:
                    if c.get("/v1/ready", headers=headers).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name}: the server did not start; see {work / (name + '.log')}")
                time.sleep(0.5)
            for q in questions[:8]:  # warm every replica's retriever and answer path
                c.post("/v1/collections/bench/ask", headers=headers, json={"question": q})
        figures = asyncio.run(load(url, token, questions, clients, seconds))
    finally:
        _stop(proc)
    print(
        f"{name}: {figures['requests_per_s']} requests/s, {figures['errors']} errors; "
        + "; ".join(
            f"{k} p50 {figures[k]['p50_ms']} ms p95 {figures[k]['p95_ms']} ms" for k in ("search", "ask") if k in figures
        ),
        flush=True,
    )
    return {k: figures[k] for k in ("requests", "errors", "requests_per_s", "search", "ask") if k in figures}


def serve_figures(work: Path, clients: int, seconds: float) -> dict:
    from api import KeyStore
    from ingest import IngestConfig, ingest
    from tests.ray_cluster import LocalCluster

    ingest(work / "kb-serve", [SAMPLE_DOCS], IngestConfig())
    (work / "server.toml").write_text(f'keys = "keys.sqlite"\n[collections.bench]\nkb_dir = "{work / "kb-serve"}"\n')
    token, _ = KeyStore(work / "keys.sqlite").create("load", "admin", ["*"], ["*"])
    questions = [json.loads(line)["question"] for line in SAMPLE_QUESTIONS.read_text().splitlines() if line]
    out = {
        "clients": clients,
        "seconds": seconds,
        "plain_kb_serve": _measure([], work, "plain", token, questions, clients, seconds),
    }
    with LocalCluster(head_cpus=0, worker_cpus=(1, 1)) as cluster:
        for replicas in (1, 2):
            out[f"ray_{replicas}_replica"] = _measure(
                ["--ray", cluster.address, "--replicas", str(replicas), "--replica-cpus", "1"],
                work,
                f"ray-{replicas}",
                token,
                questions,
                clients,
                seconds,
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000, help="SciFact abstracts to ingest")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="load per serving configuration")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hkb-ray-bench-"))
    figures: dict = {}
    try:
        if not args.skip_ingest:
            if not (SCIFACT / "corpus.jsonl").exists():
                print(f"ingest skipped: {SCIFACT} is absent")
            else:
                figures["ingest"] = ingest_figures(args.docs, work)
        if not args.skip_serve:
            figures["serve"] = serve_figures(work, args.clients, args.seconds)
        try:
            import ray

            gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
        except ImportError:
            gpus = 0
        figures["gpu"] = "no GPU on this machine: GPU actor figure not measured" if not gpus else f"{gpus} GPUs"
        if args.json:
            print(json.dumps(figures))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
