"""One helper thread, for the part of a large KB's question that can run beside the rest.

The reader's BM25 top-K (retriever.corpus) needs only the question's words, while FAISS needs its vector, and the
vector of a repaired question is embedded first. Both spend most of their time outside the GIL (SQLite, numpy,
retriever.postings_kernel's nogil loops; the encoder's BLAS; FAISS), so on a machine with a core to spare a question
costs the longer of the two instead of their sum. Work is handed over only while the helper is idle: under
concurrent questions (a server's threads) it runs in the asking thread as before, so nobody queues behind another.

The helper thread lives on once started. A process that holds more than one thread rebuilds its lexical index in
one process rather than forking workers (kb.lexical_rebuild), so a rebuild after a large KB's questions, in the same
process, runs slower; `kb check --repair` and upgrades run before any question.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, TypeVar

T = TypeVar("T")

# Chunks from which a question's BM25 top-K is worth a thread hand-off (~50 us): at 1M it takes ~6 ms (10 ms when
# repaired); in a KB of a few thousand chunks it takes under a millisecond.
BESIDE_FROM = 200_000

_idle = threading.Semaphore(1)


def beside(work: Callable[[], T], chunks: int) -> Callable[[], T]:
    """Start work() in the helper thread if the KB holds at least BESIDE_FROM chunks and the helper is idle, else
    run it here now; returns a function that waits for its result (raising what work raised)."""
    if chunks < BESIDE_FROM or not _idle.acquire(blocking=False):
        result = work()
        return lambda: result

    def run() -> T:
        try:
            return work()
        finally:
            _idle.release()

    try:
        future = _helper().submit(run)
    except BaseException:
        _idle.release()
        raise
    return future.result


@lru_cache(maxsize=1)
def _helper() -> ThreadPoolExecutor:
    # Called only by the holder of _idle, so never twice at once: one executor, one thread.
    return ThreadPoolExecutor(1, thread_name_prefix="kb-beside")
