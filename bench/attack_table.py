"""Re-run issue 26's attack table against a fresh `kb serve` with default limits and print each row's result.

A throwaway server with one collection synced from a public and an internal folder and three keys
(admin; read, public only; write, public only), as in the issue. tests/test_security.py asserts the
same outcomes; this prints the figures (status, time, server memory) for a report.

Usage: .venv/bin/python -m bench.attack_table
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import string
import tempfile
import time
from pathlib import Path

import psutil

from api import KeyStore
from data import SAMPLE_DOCS
from tests.api_server import running_server, sync_collection, wait_for

PUBLIC = ("billing-faq.html", "refund-and-cancellation-policy.md", "support-hours-and-escalation.txt")


def rss_mb(proc) -> float:
    p = psutil.Process(proc.pid)
    return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)]) / 2**20


def raw_401(url: str, path: str) -> tuple[str, float, int]:
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {20 * 2**20}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head)
        s.setblocking(False)
        reply = b""
        chunk = b"x" * 65536
        while b"\r\n" not in reply and sent < 20 * 2**20:
            try:
                sent += s.send(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
            try:
                reply += s.recv(4096)
            except BlockingIOError:
                pass
    return reply.split(b"\r\n")[0].decode(), time.monotonic() - started, sent


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="attacks-"))
    public, internal = base / "public", base / "internal"
    public.mkdir()
    internal.mkdir()
    for doc in SAMPLE_DOCS.iterdir():
        shutil.copy(doc, (public if doc.name in PUBLIC else internal) / doc.name)
    (internal / "codenames.md").write_text("# Code names\n\nThe quuxifrage procedure covers processor outages.\n")
    config = base / "server.toml"
    config.write_text(
        f'keys = "keys.sqlite"\n[collections.support]\nkb_dir = "kb"\n'
        f'sources = [{{path = "{public}", visibility = "public"}}, {{path = "{internal}"}}]\n'
    )
    store = KeyStore(base / "keys.sqlite")
    admin = {"Authorization": f"Bearer {store.create('admin', 'admin', ['*'], ['*'])[0]}"}
    reader = {"Authorization": f"Bearer {store.create('reader', 'read', ['support'], ['public'])[0]}"}
    writer = {"Authorization": f"Bearer {store.create('writer', 'write', ['support'], ['public'])[0]}"}
    rows = {}
    docs = "/v1/collections/support/documents"
    with running_server(config, base / "server.log") as (url, c, proc):
        assert sync_collection(c, "support", admin["Authorization"][7:])["state"] == "done"
        # 1
        before = c.get(f"{docs}/account-recovery.md", headers=admin).json()
        r = c.post(
            docs,
            headers=writer,
            data={"visibility": "public"},
            files={"file": ("account-recovery.md", b"# Hi\n\nattacker text\n", "text/markdown")},
        )
        after = c.get(f"{docs}/account-recovery.md", headers=admin).json()
        rows[1] = (
            f"upload {r.status_code} {r.json()['detail']!r}; internal doc v{after['version']} "
            f"{after['visibility']} (was v{before['version']} {before['visibility']}); public history "
            f"{c.get(f'{docs}/account-recovery.md/history', headers=reader).status_code}; public DELETE "
            f"{c.delete(f'{docs}/account-recovery.md', headers=writer).status_code}"
        )
        # 2
        up = base / "kb" / "uploads" / "runbook.md"
        c.post(docs, headers=admin, files={"file": ("runbook.md", b"# Runbook\n\noriginal\n", "text/markdown")})
        r = c.post(
            docs,
            headers=admin,
            data={"tags": "<bad>"},
            files={"file": ("runbook.md", b"# Runbook\n\nreplaced\n", "text/markdown")},
        )
        rows[2] = f"{r.status_code} {r.json()['detail']!r}; stored original unchanged: {b'original' in up.read_bytes()}"
        # 3
        caught = None
        for _ in range(20):
            job = c.post("/v1/collections/support/sync", headers=admin, json={"dry_run": True}).json()
            other = c.post("/v1/collections/support/sync", headers=writer, json={"sources": ["public"], "dry_run": True})
            if other.status_code == 409:
                caught = (other, job["id"])
                break
            time.sleep(1)
        if caught:
            other, job_id = caught
            status = c.get(f"/v1/collections/support/sync/{job_id}", headers=writer).status_code
            rows[3] = (
                f"409 {other.json()['detail']!r} (job id in reply: {job_id in other.text}); "
                f"GET that job as the public writer: {status}"
            )
        else:
            rows[3] = "could not catch a job running"
        # 4
        mem = rss_mb(proc)
        started = time.monotonic()
        r = c.post(
            "/v1/chat/completions",
            headers=reader,
            json={"model": "support", "messages": [{"role": "user", "content": "refund " * 28_572}]},
        )
        rows[4] = (
            f"{r.status_code} in {time.monotonic() - started:.2f} s, server memory {rss_mb(proc) - mem:+.0f} MB: "
            f"{r.json()['detail'][:90]!r}"
        )
        # 5
        d = [
            c.post("/v1/collections/support/search", headers=reader, json={"query": w}).json()["diagnostics"]
            for w in ("quuxifrage", "blorptangle")
        ]
        rows[5] = f"internal word {d[0]}, made-up word {d[1]}: same = {d[0] == d[1]}"
        # 6
        out = []
        for text in (123, None, ["a"]):
            r = c.post(
                "/v1/chat/completions",
                headers=reader,
                json={"model": "support", "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]},
            )
            out.append(f"{json.dumps(text)}: {r.status_code} (connection: {r.headers.get('connection', 'keep-alive')})")
        rows[6] = "; ".join(out) + f" - {r.json()['detail']!r}"
        # 7
        rows[7] = "; ".join(
            f"{path.rsplit('/', 1)[1]}: {line} after {secs:.2f} s, {sent / 2**20:.1f} MB sent of 20"
            for path in (docs, "/v1/collections/support/search")
            for line, secs, sent in [raw_401(url, path)]
        )
    # 8: the h11 parser
    with running_server(config, base / "server-h11.log", ("--http", "h11")) as (url, c, proc):
        wait_for(lambda: c.get("/v1/ready", headers=admin).status_code == 200, 300, "readiness")  # model loaded
        c.get("/v1/metrics", headers=admin)
        mem, size = rss_mb(proc), len(c.get("/v1/metrics", headers=admin).text)
        rng = random.Random(8)
        for _ in range(2000):
            c.request("".join(rng.choice(string.ascii_uppercase) for _ in range(10)), "/v1/collections")
        metrics = c.get("/v1/metrics", headers=admin).text
        methods = sorted(
            {ln.split('method="')[1].split('"')[0] for ln in metrics.splitlines() if ln.startswith("hkb_requests_total{")}
        )
        rows[8] = (
            f"h11: metrics {size / 1024:.0f} KB -> {len(metrics) / 1024:.0f} KB, server memory "
            f"{rss_mb(proc) - mem:+.0f} MB, method labels {methods}"
        )
    for n, row in rows.items():
        print(f"| {n} | {row} |")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
