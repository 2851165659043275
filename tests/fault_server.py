"""A fork server for the fault tests: real `kb` processes without paying the model load each time.

Starting `kb sync` costs ~4 s on this machine (torch, transformers, the model), which would make
dozens of kill -9 runs take minutes. This server imports the CLI and loads the embedding model
once, then forks one child per request; each child runs `kb <argv>` exactly as the console script
does (click's main, exit code, stderr) in its own process, which the tests then kill -9 from
outside or let die at a fault point (kb/faults.py). The parent never runs the model or opens a
KB, so forking it is safe (no SQLite handles or OpenMP pools are shared with children).

Run as `python -m tests.fault_server` from the repository root; talk to it with ForkServer below. Protocol: one JSON
object per line on stdin, one per line on stdout.
    {"op": "spawn", "argv": [...], "env": {...}, "fsize": bytes|null, "uid": int|null}  -> {"pid": N}
    {"op": "spawn", "call": "module:function", "argv": [...], ...}  runs function(argv) instead of kb
    {"op": "wait", "pid": N}  -> {"pid", "rc" (exit code, or -signal), "stdout", "stderr"}
A child's stdout/stderr are pipes, never files, so a file-size limit (fsize, RLIMIT_FSIZE with
SIGXFSZ ignored: writes fail with EFBIG) hits only the KB's files.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Result:
    """How a child ended: rc is its exit code, or minus the signal that killed it (-9: SIGKILL)."""

    pid: int
    rc: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        return self.rc == -signal.SIGKILL


# ---- server side ---------------------------------------------------------------------------
def _child(req: dict, out_w: int, err_w: int) -> None:
    """In the forked child: set limits and environment, run the command, exit with its code."""
    code = 99
    try:
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        if req.get("fsize") is not None:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(req["fsize"]), int(req["fsize"])))
        if req.get("uid") is not None:
            os.setgroups([])
            os.setgid(int(req["uid"]))
            os.setuid(int(req["uid"]))
        os.environ.update(req.get("env") or {})
        argv = [str(a) for a in req.get("argv", [])]
        if req.get("call"):
            import importlib

            module, _, func = req["call"].partition(":")
            code = int(getattr(importlib.import_module(module), func)(argv) or 0)
        else:
            from ui.cli import main

            main.main(args=argv, prog_name="kb")
            code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:  # what an uncaught exception does in a real process: traceback, exit 1
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _drain(out_r: int, err_r: int) -> tuple[str, str]:
    bufs = {out_r: bytearray(), err_r: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(bufs)
    while open_fds:
        for key, _ in sel.select():
            data = os.read(key.fd, 65536)
            if data:
                bufs[key.fd] += data
            else:
                sel.unregister(key.fd)
                open_fds.discard(key.fd)
                os.close(key.fd)
    return bufs[out_r].decode("utf-8", "replace"), bufs[err_r].decode("utf-8", "replace")


def serve() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import ui.cli  # noqa: F401  (imported once, shared by every child)
    from kb import load_embedder

    embedder = load_embedder()  # the default config, which `kb sync` asks for: children find it cached
    # Warm the model up (first call costs ~1 s) on ONE thread: a one-thread run never starts the
    # OpenMP pool, and libgomp's pool does not survive fork (children would hang in their first
    # matmul). Each child then starts its own pool with the usual thread count.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    embedder.encode(["warm up"])
    torch.set_num_threads(threads)
    children: dict[int, tuple[int, int]] = {}
    proto = sys.stdout
    proto.write(json.dumps({"ready": True}) + "\n")
    proto.flush()
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "spawn":
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            proto.flush()
            pid = os.fork()
            if pid == 0:
                os.close(out_r)
                os.close(err_r)
                _child(req, out_w, err_w)
            os.close(out_w)
            os.close(err_w)
            children[pid] = (out_r, err_r)
            reply = {"pid": pid}
        elif req["op"] == "wait":
            pid = int(req["pid"])
            out, err = _drain(*children.pop(pid))
            _, status = os.waitpid(pid, 0)
            rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            reply = {"pid": pid, "rc": rc, "stdout": out, "stderr": err}
        else:
            reply = {"error": f"unknown op {req['op']!r}"}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


# ---- client side ---------------------------------------------------------------------------
class ForkServer:
    """Client: start the server process, spawn/kill/wait children, close.

    >>> srv = ForkServer(); res = srv.run(["check", "--kb-dir", "kb_data"]); srv.close()  # doctest: +SKIP
    """

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "0"}
        for name in ("HOPFIELD_KB_FAULT", "HOPFIELD_KB_PAUSE"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fault_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
            env=env,
        )
        hello = self._read()
        if not hello.get("ready"):
            raise RuntimeError(f"fork server did not start: {hello}")

    def _read(self) -> dict:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(self.timeout):
            self.proc.kill()
            raise TimeoutError(f"fork server gave no answer within {self.timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server exited (rc {self.proc.poll()})")
        return json.loads(line)

    def _ask(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def spawn(
        self, argv, env: dict | None = None, fsize: int | None = None, uid: int | None = None, call: str | None = None
    ) -> int:
        """Start `kb *argv` (or call(argv)) in a new child; returns its pid at once."""
        reply = self._ask(
            {"op": "spawn", "argv": [str(a) for a in argv], "env": env or {}, "fsize": fsize, "uid": uid, "call": call}
        )
        return int(reply["pid"])

    def wait(self, pid: int) -> Result:
        reply = self._ask({"op": "wait", "pid": pid})
        return Result(pid=reply["pid"], rc=reply["rc"], stdout=reply["stdout"], stderr=reply["stderr"])

    def run(
        self, argv, env: dict | None = None, fsize: int | None = None, uid: int | None = None, call: str | None = None
    ) -> Result:
        """spawn then wait: run `kb *argv` to its end (or to its fault point)."""
        return self.wait(self.spawn(argv, env=env, fsize=fsize, uid=uid, call=call))

    def kill_after(self, argv, delay: float, env: dict | None = None) -> Result:
        """Start `kb *argv`, SIGKILL it from this process after delay seconds (if still running)."""
        pid = self.spawn(argv, env=env)
        time.sleep(delay)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already finished: a zombie until wait() reaps it
        return self.wait(pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


if __name__ == "__main__":
    serve()
