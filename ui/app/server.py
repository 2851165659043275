"""Run the app in a child process on a free localhost port, for browser tests and the latency bench."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ui.launch import KB_DIR_ENV, SOURCES_ENV, streamlit_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 90.0) -> None:
    """Poll Streamlit's health endpoint until it answers ok; RuntimeError with the server's output otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the app exited with code {proc.returncode} before it was ready:\n{out}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200 and r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the app at {url} did not become healthy within {timeout:.0f} s")


@contextmanager
def running_app(
    kb_dir: Path, port: int | None = None, log_path: Path | None = None, sources: tuple[Path, ...] = ()
) -> Iterator[str]:
    """Serve the app on kb_dir (re-ingest allowed for sources); yields its base URL and stops the server on exit."""
    import json

    port = port or free_port()
    env = dict(
        os.environ,
        **{KB_DIR_ENV: str(Path(kb_dir).resolve()), SOURCES_ENV: json.dumps([str(Path(s).resolve()) for s in sources])},
    )
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tmp = None
    if log_path is None:
        tmp = tempfile.TemporaryDirectory()
        log_path = Path(tmp.name) / "app.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        streamlit_command(Path(kb_dir).resolve(), port, "127.0.0.1"),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, Path(log_path))
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":  # python -m ui.app.server KB_DIR: serve until Ctrl+C (debugging aid)
    with running_app(Path(sys.argv[1])) as base:
        print(base, flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
