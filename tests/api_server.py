"""A real `kb serve` in a child process for the API tests: started on a free port, waited for, stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[1]


# The sample documents a public-only key may see; the rest are internal.
PUBLIC = ("billing-faq.html", "refund-and-cancellation-policy.md", "support-hours-and-escalation.txt")


def split_sample_docs(public: Path, internal: Path, it: Path) -> None:
    """Make the three source folders: the public sample documents, the internal rest, and an empty IT folder."""
    import shutil

    from data import SAMPLE_DOCS

    for folder in (public, internal, it):
        folder.mkdir()
    for doc in SAMPLE_DOCS.iterdir():
        shutil.copy(doc, (public if doc.name in PUBLIC else internal) / doc.name)


def write_server_config(path: Path, public: Path, internal: Path, it: Path, **limits) -> Path:
    """A server.toml: collection "support" (public folder labelled public and tagged faq, internal folder) and
    "it"; limits are extra top-level settings (rate_limit=2, ...). Returns path."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in limits.items())
    path.write_text(f"""
keys = "keys.sqlite"
max_upload_mb = 1
max_request_kb = 16
{extra}
[collections.support]
kb_dir = "kbs/support"
sources = [{{path = "{public}", visibility = "public", tags = ["faq"]}}, {{path = "{internal}"}}]

[collections.it]
kb_dir = "kbs/it"
sources = [{{path = "{it}"}}]
""")
    return path


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll condition() until it returns something truthy; fail naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except httpx.TransportError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(
    config: Path, log_path: Path, extra: tuple[str, ...] = ()
) -> Iterator[tuple[str, httpx.Client, subprocess.Popen]]:
    """`kb serve --config config [extra...]` on a free port: yields (base URL, client, process); SIGTERM on exit."""
    port = free_port()
    log = open(log_path, "w")
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "serve", "--config", str(config), "--port", str(port), *extra],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=120)
    try:
        wait_for(lambda: proc.poll() is None and client.get("/v1/health").status_code == 200, 120, "the server")
        yield url, client, proc
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def sample_server(base: Path) -> Iterator[dict]:
    """A real `kb serve` of the sample documents under base: collections support (three public documents, the rest
    internal) and it (one internal note), both synced; keys admin, public (reads support's public documents), writer
    (support) and it (reads it). Yields url, client (httpx, no key), keys, base, proc, store and log."""
    from api import KeyStore

    public, internal, it = base / "public", base / "internal", base / "it"
    split_sample_docs(public, internal, it)
    (it / "vpn.txt").write_text("The office VPN uses WireGuard. Ask the IT desk for a profile; it expires after 90 days.\n")
    write_server_config(base / "server.toml", public, internal, it)
    store = KeyStore(base / "keys.sqlite")
    keys = {
        "admin": store.create("ops", "admin", ["*"], ["*"])[0],
        "public": store.create("website bot", "read", ["support"], ["public"])[0],
        "writer": store.create("docs team", "write", ["support"], ["*"])[0],
        "it": store.create("it bot", "read", ["it"], ["*"])[0],
    }
    with running_server(base / "server.toml", base / "server.log") as (url, client, proc):
        for name in ("support", "it"):
            done = sync_collection(client, name, keys["admin"])
            assert done["state"] == "done", done["error"]
        yield {
            "url": url,
            "client": client,
            "keys": keys,
            "base": base,
            "proc": proc,
            "store": store,
            "log": base / "server.log",
        }


def sync_collection(client: httpx.Client, name: str, key: str, timeout: float = 300) -> dict:
    """Start a sync job of every source of collection name and wait for it to end; returns the job."""
    headers = {"Authorization": f"Bearer {key}"}
    job = client.post(f"/v1/collections/{name}/sync", headers=headers, json={}).json()

    def finished():
        state = client.get(f"/v1/collections/{name}/sync/{job['id']}", headers=headers).json()
        return state if state["state"] in ("done", "failed") else None

    return wait_for(finished, timeout, f"the sync of {name}")
