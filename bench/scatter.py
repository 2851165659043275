"""Scatter-gather over sharded KBs: one worker process per shard, a coordinator that merges their top k.

Each worker opens its shard (a normal KB directory) and ranks with the real retrievers (`retriever.make_retriever`:
"hopfield" and "dense"), given the question's text and its vector, which the coordinator computes once. The
coordinator sends a question to every shard, waits for all replies and keeps the k best hits by score.

Scores: dense scores are cosines of unit vectors, the same scale in every shard, so the merged dense top k is the
top k of one KB holding every shard's documents (tests/test_scatter.py checks it). The Hopfield reader's scores are
z-scores over the shard's own candidates (evidence and settled state); shards cut by a hash of the document key are
random samples of one corpus, so their candidate pools have alike score spreads and a z-score means about the same
in each: an approximation, measured by bench/bench_shards.py (docs/scale-out.md), not an identity.

Workers ignore Ctrl-C (the coordinator stops them), exit when their pipe closes, and are daemons; ShardPool.close
(also on exceptions, as a context manager) asks each to stop, then terminates and kills what is left.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

METHODS = ("hopfield", "dense")


@dataclass(frozen=True)
class ShardHit:
    """One hit of one shard: its score (the method's scale), shard number, chunk id in that shard, and the
    chunk's document key and position in it (what identifies a chunk across KBs)."""

    score: float
    shard: int
    chunk_id: int
    source: str
    ordinal: int


@dataclass(frozen=True)
class Gathered:
    """A scattered question: the merged top k, the coordinator's wall seconds from first send to last reply,
    and per shard the CPU seconds (all its threads) and wall seconds it spent ranking and looking up."""

    hits: tuple[ShardHit, ...]
    wall_s: float
    shard_cpu_s: tuple[float, ...]
    shard_wall_s: tuple[float, ...]


def merge_top_k(replies: Sequence[Sequence[ShardHit]], k: int) -> tuple[ShardHit, ...]:
    """The k best hits of all shards by score (ties: lower shard, then its own order)."""
    pool = [(-h.score, h.shard, j, h) for hits in replies for j, h in enumerate(hits)]
    pool.sort(key=lambda t: (t[0], t[1], t[2]))
    return tuple(t[3] for t in pool[:k])


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _serve(conn, kb_dir: str, shard: int, candidates: int, threads: int) -> None:
    """A shard worker: open the KB, then answer ("rank", method, text, vector, k), ("rss",) until ("stop",)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the coordinator decides
    import faiss
    from threadpoolctl import threadpool_limits

    from kb import KnowledgeBase
    from retriever import make_retriever

    threadpool_limits(threads)
    faiss.omp_set_num_threads(threads)

    try:
        kb = KnowledgeBase(kb_dir)
        readers = {m: make_retriever(m, kb, top_k=10, candidates=candidates) for m in METHODS}
        conn.send(("ready", os.getpid()))
    except Exception as exc:  # the coordinator names the shard and stops the others
        conn.send(("error", f"{kb_dir}: {exc}"))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the coordinator is gone
            return
        if msg[0] == "stop":
            return
        if msg[0] == "rss":
            conn.send(("ok", _rss_bytes()))
            continue
        _, method, text, vector, k = msg
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            ranked = readers[method].rank([text], k, query_vectors=vector[None, :])[0]
            records = kb.chunks([int(i) for i in ranked.ids])
            hits = [
                ShardHit(float(s), shard, int(i), r.doc_source, r.ordinal)
                for i, s, r in zip(ranked.ids, ranked.scores, records)
                if r is not None
            ]
        except Exception as exc:
            conn.send(("error", f"{kb_dir}: {exc}"))
            continue
        conn.send(("ok", hits, time.process_time() - cpu, time.perf_counter() - wall))


class ShardPool:
    """One worker process per shard directory, started now; use as a context manager (or call close()).

    candidates: the first-stage pool K each shard's readers use. threads: BLAS and OpenMP threads per worker (1:
    one core per shard, as on a cluster). start_timeout: seconds to wait for every shard to open. Raises
    RuntimeError naming the shard when one fails to open.
    """

    def __init__(self, shard_dirs: Sequence[Path], candidates: int = 100, threads: int = 1, start_timeout: float = 600.0):
        ctx = mp.get_context("spawn")  # a clean interpreter per shard: no copied FAISS/OpenMP state
        self.shard_dirs = [Path(d) for d in shard_dirs]
        self._conns = []
        self.processes: list = []
        try:
            for shard, kb_dir in enumerate(self.shard_dirs):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_serve, args=(child, str(kb_dir), shard, candidates, threads), daemon=True)
                proc.start()
                child.close()
                self._conns.append(parent)
                self.processes.append(proc)
            deadline = time.monotonic() + start_timeout
            for kb_dir, conn in zip(self.shard_dirs, self._conns):
                if not conn.poll(max(deadline - time.monotonic(), 0.0)):
                    raise RuntimeError(f"shard {kb_dir} did not open within {start_timeout:.0f} s")
                reply = conn.recv()
                if reply[0] != "ready":
                    raise RuntimeError(f"shard worker failed: {reply[1]}")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ShardPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _gather(self) -> list:
        """Every shard's reply, in shard order; every pipe is read before a shard's error is raised, so the
        next question does not read this one's replies."""
        replies = [conn.recv() for conn in self._conns]
        errors = [r[1] for r in replies if r[0] != "ok"]
        if errors:
            raise RuntimeError("; ".join(errors))
        return replies

    def search(self, method: str, text: str, vector: np.ndarray, k: int = 10) -> Gathered:
        """The merged top k of every shard for one question (vector: its unit embedding, float32)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        started = time.perf_counter()
        vector = np.asarray(vector, dtype=np.float32)
        for conn in self._conns:
            conn.send(("rank", method, text, vector, k))
        replies = self._gather()
        wall = time.perf_counter() - started
        hits = merge_top_k([r[1] for r in replies], k)
        return Gathered(hits, wall, tuple(r[2] for r in replies), tuple(r[3] for r in replies))

    def rss_bytes(self) -> list[int]:
        """Each worker's resident set now, in bytes."""
        for conn in self._conns:
            conn.send(("rss",))
        return [r[1] for r in self._gather()]

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker: ask, wait up to timeout, then terminate, then kill. Safe to call twice."""
        for conn in self._conns:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout
        for proc in self.processes:
            proc.join(max(deadline - time.monotonic(), 0.0))
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()
                proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._conns = []
