"""Parsing under a budget: each file is parsed and chunked in a separate process with a time and memory limit.

A hostile file (a PDF whose pages share one 70 MB content stream, HTML nested 100,000 deep, a
10 MB line of base64) must cost at most its budget and then fail with a one-line reason, while the
rest of the run goes on. Python cannot stop a thread, so the work runs in a worker process: past
`seconds` the worker is killed (and a new one started for the next file), and its address space is
capped at `memory_mb` so an allocation beyond it fails inside the worker, not on the machine.

The worker is started with the "spawn" method (it never inherits the parent's locks, threads or
model) once per process and reused; it exits when its parent goes away (its pipe closes). Spawn first re-runs the
parent's main script in the worker, so a script that calls ingest outside `if __name__ == "__main__":` would ingest
again there; the worker stops at once instead (UNGUARDED_EXIT), and the run stops with a KBError naming the fix.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from ingest.chunker import ChunkConfig
from ingest.loaders import LoadError

WORKER_NAME = "kb-parse"
UNGUARDED_EXIT = 86  # a worker's exit code: it found its parent's script calling ingest while it was being started
UNGUARDED = (
    'the script that runs this ingest calls it outside `if __name__ == "__main__":`, and Python re-runs such a '
    "script in each parse worker it starts; put the call under that guard"
)


@dataclass(frozen=True)
class Budget:
    """Per-file limits: seconds of wall time and MB of address space for parsing and chunking one file.
    lane: budgets that differ only in lane get separate worker processes (the API gives each key its own,
    so one key's long scan never holds another key's uploads)."""

    seconds: float = 60.0
    memory_mb: int = 3072
    lane: str = ""

    def __post_init__(self) -> None:
        from kb import KBError

        if not self.seconds > 0 or self.memory_mb < 256:
            raise KBError(
                f"a parse budget needs seconds > 0 and memory_mb >= 256, not {self.seconds} s, {self.memory_mb} MB"
            )


def _serve(conn, memory_mb: int) -> None:
    """The worker's loop: parse requests until the pipe closes."""
    import resource

    limit = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from ingest.parse import parse_file

    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        path, data, chunking, kwargs = request

        def extend(seconds: float) -> None:
            conn.send(("extend", seconds))  # an OCR page is starting: the parent adds its limit to the deadline

        result: tuple[str, object]
        try:
            result = ("ok", parse_file(Path(path), data, chunking, on_ocr_page=extend, **kwargs))
        except LoadError as exc:
            result = ("failed", exc.reason)
        except MemoryError:
            result = ("failed", f"needed more than the {memory_mb} MB parse budget")
        except RecursionError:
            result = ("failed", "nested too deeply to parse")
        except Exception as exc:  # noqa: BLE001 - a parser bug on odd input fails the file, not the run
            result = ("failed", f"could not parse ({type(exc).__name__}: {exc})")
        try:
            conn.send(result)
        except MemoryError:
            conn.send(("failed", f"its parsed text needed more than the {memory_mb} MB parse budget"))
        except (OSError, EOFError):
            return


class ParseWorker:
    """One worker process; parse() sends it a file and waits at most the budget's seconds."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.budget.memory_mb), daemon=True, name=WORKER_NAME)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def parse(self, path: Path, data: bytes, chunking: ChunkConfig, **kwargs):
        """(NewDocument, warnings) of one file, or LoadError with the reason (the budget's included).

        Where no worker process can be started (a sandbox without fork/exec rights, an interpreter
        the current user cannot run), the file is parsed here, without the budget, and says so.
        """
        if mp.current_process().name == WORKER_NAME:  # this worker is re-running its parent's unguarded script
            print(f"hopfield-kb: {UNGUARDED}", file=sys.stderr, flush=True)
            raise SystemExit(UNGUARDED_EXIT)
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                try:
                    self._start()
                except Exception as exc:  # noqa: BLE001 - any failure to start means: parse in-process
                    self.stop()
                    from ingest.parse import parse_file

                    doc, warnings = parse_file(path, data, chunking, **kwargs)
                    note = f"{path}: parsed without a time budget (no parse worker: {type(exc).__name__}: {exc})"
                    return doc, tuple(warnings) + (note,)
            status, value = self._exchange(path, (str(path), data, chunking, kwargs))
        if status == "failed":
            raise LoadError(path, str(value))
        return value

    def _exchange(self, path: Path, request: tuple) -> tuple[str, object]:
        """Send request and wait for the worker's answer within the budget, plus each OCR page's own
        limit as the worker announces it (a scanned file's pages are not the parser's fault)."""
        ocr_pages = 0
        deadline = time.monotonic() + self.budget.seconds
        conn = self._conn
        assert conn is not None, "parse() starts the worker before the exchange"
        try:
            conn.send(request)
            while True:
                if not conn.poll(max(deadline - time.monotonic(), 0)):
                    self.stop()
                    pages = f" plus {ocr_pages} OCR page(s)" if ocr_pages else ""
                    raise LoadError(
                        path,
                        f"took more than the {self.budget.seconds:g} s parse budget{pages}; "
                        "skipped (raise it with --parse-seconds if the file is genuine)",
                    )
                status, value = conn.recv()
                if status != "extend":
                    return status, value
                ocr_pages += 1
                deadline += float(value)
        except (EOFError, OSError):
            code = self._proc.exitcode if self._proc is not None else None
            if code is None and self._proc is not None:
                self._proc.join(timeout=5)  # the pipe closed as it exited: its code follows
                code = self._proc.exitcode
            self.stop()
            if code == UNGUARDED_EXIT:  # no file can be parsed so: the run stops, before anything is written
                from kb import KBError

                raise KBError(UNGUARDED) from None
            raise LoadError(
                path, f"the parser stopped (exit code {code}), likely over the {self.budget.memory_mb} MB parse budget"
            ) from None


_WORKERS: dict[Budget, ParseWorker] = {}
_WORKERS_LOCK = threading.Lock()


def worker_for(budget: Budget) -> ParseWorker:
    """The process's worker for budget (started on first use, restarted after a kill)."""
    with _WORKERS_LOCK:
        if budget not in _WORKERS:
            _WORKERS[budget] = ParseWorker(budget)
        return _WORKERS[budget]
