"""Load on the HTTP API: concurrent clients asking search and ask for a fixed time, then the same during a sync.

Starts a real `kb serve` (one collection) in a child process, creates a key, and runs N clients
(asyncio + httpx, one connection each) for S seconds; each client alternates search and ask with
the set's questions. Phase 2 repeats the load while 10 documents change: on the sample KB through
the API's own sync job (10 files edited in the synced folder), on SciFact through ingest_texts in
another process (10 abstracts edited). Every response is checked: within it, each document appears
at one version only, and across responses one snapshot token always means the same versions.

Usage:
    .venv/bin/python -m bench.bench_api_load                          # sample KB, 32 clients, 60 s per phase
    .venv/bin/python -m bench.bench_api_load --kb scifact --clients 32 --seconds 60
    .venv/bin/python -m bench.bench_api_load --seconds 10 --json      # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import httpx

from bench.common import SCIFACT
from data import SAMPLE_DOCS, SAMPLE_QUESTIONS

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tally:
    """Latencies and outcomes per endpoint, and every (snapshot, document) -> versions seen."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.examples: list[str] = []
        self.mixed = 0
        self.versions: dict[tuple[str, str], set[int]] = defaultdict(set)

    def record(self, kind: str, ms: float, response: httpx.Response | None, error: str | None = None) -> None:
        if response is None or response.status_code != 200:
            self.errors[kind] += 1
            if len(self.examples) < 5:
                http = f"HTTP {response.status_code} {response.text[:200]}" if response is not None else "no response"
                self.examples.append(error or f"{kind}: {http}")
            return
        self.ms[kind].append(ms)
        body = response.json()
        items = body["hits"] if kind == "search" else body["citations"] + body["closest"]
        seen: dict[str, set[int]] = defaultdict(set)
        for item in items:
            seen[item["document"]].add(item["version"])
            self.versions[(body["snapshot"], item["document"])].add(item["version"])
        self.mixed += any(len(v) > 1 for v in seen.values())

    def summary(self, seconds: float) -> dict:
        out: dict[str, Any] = {
            "seconds": round(seconds, 1),
            "mixed_version_responses": self.mixed,
            "snapshots_with_two_versions_of_a_document": sum(len(v) > 1 for v in self.versions.values()),
            "snapshots_seen": len({s for s, _ in self.versions}),
        }
        total_ok = sum(len(v) for v in self.ms.values())
        out["requests"] = total_ok + sum(self.errors.values())
        out["errors"] = sum(self.errors.values())
        out["requests_per_s"] = round(out["requests"] / seconds, 1)
        for kind, values in self.ms.items():
            values = sorted(values)
            out[kind] = {
                "n": len(values),
                "p50_ms": round(statistics.median(values), 1),
                "p95_ms": round(values[int(0.95 * (len(values) - 1))], 1),
                "errors": self.errors[kind],
            }
        out["error_examples"] = self.examples
        return out


async def client_loop(
    client: httpx.AsyncClient, questions: list[str], until: float, tally: Tally, seed: int, headers: dict
) -> None:
    rng = random.Random(seed)
    turn = seed
    while time.monotonic() < until:
        q = rng.choice(questions)
        kind = "search" if turn % 2 == 0 else "ask"
        turn += 1
        body = {"query": q, "k": 5} if kind == "search" else {"question": q}
        started = time.perf_counter()
        try:
            r = await client.post(f"/v1/collections/bench/{kind}", json=body, headers=headers)
            tally.record(kind, 1000 * (time.perf_counter() - started), r)
        except httpx.HTTPError as exc:
            tally.record(kind, 0.0, None, f"{kind}: {type(exc).__name__}: {exc}")


async def load(url: str, token: str, questions: list[str], clients: int, seconds: float, during=None) -> dict:
    tally = Tally()
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        started = time.monotonic()
        until = started + seconds
        tasks = [asyncio.create_task(client_loop(client, questions, until, tally, i, headers)) for i in range(clients)]
        extra = None
        if during is not None:
            extra = await asyncio.to_thread(during)
        await asyncio.gather(*tasks)
        out = tally.summary(time.monotonic() - started)
    if extra is not None:
        out["change"] = extra
    return out


def edit_ten_files(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.suffix in (".md", ".txt", ".html"))[:10]
    if len(names) < 10:
        names = sorted(p.name for p in folder.iterdir())[:10]
    for name in names:
        path = folder / name
        if path.suffix == ".pdf":
            continue
        path.write_text(path.read_text() + f"\n\nRevised {time.time():.0f}: this document was reviewed.\n")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", choices=("sample", "scifact"), default="sample")
    parser.add_argument("--scifact-kb", type=Path, default=None, help="an ingested SciFact KB to copy (default: build)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hkb-load-"))
    try:
        if args.kb == "sample":
            docs = work / "docs"
            shutil.copytree(SAMPLE_DOCS, docs)
            # Six of the twelve files are text formats; copies make ten editable ones.
            for name in ("troubleshooting-guide.md", "onboarding-guide.md", "account-recovery.md", "billing-faq.html"):
                shutil.copy(docs / name, docs / f"copy-{name}")
            questions = [json.loads(line)["question"] for line in SAMPLE_QUESTIONS.read_text().splitlines() if line]
            sources = f'sources = [{{path = "{docs}"}}]'
        else:
            if not SCIFACT.is_dir():
                print(f"skipped: {SCIFACT} is absent")
                return 0
            from eval import load_dataset

            labelled = load_dataset(SCIFACT)
            questions = list(labelled.queries.values())
            if args.scifact_kb:
                shutil.copytree(args.scifact_kb, work / "kb", ignore=shutil.ignore_patterns("write.lock"))
            else:
                from ingest import IngestConfig, ingest_texts

                ingest_texts(work / "kb", list(labelled.corpus or ()), IngestConfig())
            sources = ""
        (work / "server.toml").write_text(f'keys = "keys.sqlite"\n[collections.bench]\nkb_dir = "kb"\n{sources}\n')
        from api import KeyStore

        token, _ = KeyStore(work / "keys.sqlite").create("load", "admin", ["*"], ["*"])
        port = free_port()
        log = open(work / "server.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "serve", "--config", str(work / "server.toml"), "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"),
        )
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=url, timeout=600) as c:
                deadline = time.monotonic() + 180
                while True:
                    try:
                        if c.get("/v1/ready", headers=headers).status_code == 200 or args.kb == "sample":
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the server did not start; see " + str(work / "server.log"))
                    time.sleep(0.5)
                if args.kb == "sample":
                    job = c.post("/v1/collections/bench/sync", headers=headers, json={}).json()
                    while c.get(f"/v1/collections/bench/sync/{job['id']}", headers=headers).json()["state"] == "running":
                        time.sleep(0.5)
                while c.get("/v1/ready", headers=headers).status_code != 200:
                    time.sleep(0.5)
                for q in questions[:4]:  # warm the retriever and the answer path
                    c.post("/v1/collections/bench/ask", headers=headers, json={"question": q})

                def sync_ten() -> dict:
                    time.sleep(min(5.0, args.seconds / 4))
                    started = time.perf_counter()
                    if args.kb == "sample":
                        names = edit_ten_files(work / "docs")
                        job = c.post("/v1/collections/bench/sync", headers=headers, json={}).json()
                        while True:
                            state = c.get(f"/v1/collections/bench/sync/{job['id']}", headers=headers).json()
                            if "state" not in state:
                                raise SystemExit(f"the sync job's status: {state}")
                            if state["state"] != "running" and state["state"] != "queued":
                                break
                            time.sleep(0.2)
                        return {
                            "edited": names,
                            "job": state["state"],
                            "counts": state["results"][0]["counts"],
                            "sync_seconds": round(time.perf_counter() - started, 2),
                        }
                    code = (
                        "import sys; from eval import load_dataset; from ingest import IngestConfig, TextRecord, "
                        "ingest_texts; ds = load_dataset(sys.argv[1]); recs = list(ds.corpus)[:10]; "
                        "r = ingest_texts(sys.argv[2], [TextRecord(x.source, x.title, x.text + ' Reviewed.') "
                        "for x in recs], IngestConfig()); print(r.counts())"
                    )
                    out = subprocess.run(
                        [sys.executable, "-c", code, str(SCIFACT), str(work / "kb")],
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"),
                    )
                    return {
                        "counts": out.stdout.strip(),
                        "stderr": out.stderr[-300:],
                        "sync_seconds": round(time.perf_counter() - started, 2),
                    }

                steady = asyncio.run(load(url, token, questions, args.clients, args.seconds))
                during = asyncio.run(load(url, token, questions, args.clients, args.seconds, during=sync_ten))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print("warning: the server did not stop within 60 s of SIGTERM; killed", file=sys.stderr)
                proc.kill()
                proc.wait()
            log.close()
        figures = {"kb": args.kb, "clients": args.clients, "steady": steady, "during_sync": during}
        for phase in ("steady", "during_sync"):
            f = figures[phase]
            print(
                f"{args.kb} {phase}: {f['requests']} requests in {f['seconds']} s ({f['requests_per_s']}/s), "
                f"{f['errors']} errors, {f['mixed_version_responses']} responses mixing versions; "
                + "; ".join(f"{k} p50 {f[k]['p50_ms']} ms p95 {f[k]['p95_ms']} ms" for k in ("search", "ask") if k in f)
            )
        if "change" in during:
            print(f"  change during the load: {during['change']}")
        if args.json:
            print(json.dumps(figures))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
