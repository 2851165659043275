"""BLAS on one thread for a small piece of numpy work.

Two OpenBLAS threads that wait on each other for the cores of a busy machine turn a few milliseconds of
matrix products into hundreds: a question's forward pass in the numpy encoder measured 9 ms on one thread
and 423 ms on two while another process kept one of the 2 cores busy. Small products gain little from a
second thread anyway, so the readers' small blocks run on one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache

from threadpoolctl import ThreadpoolController

# Texts per encoder batch from which a second BLAS thread may pay (as FAISS's searches, retriever.baselines).
SMALL_BATCH = 16


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # inspecting the loaded libraries takes milliseconds: once per process


def blas_threads(n: int | None) -> AbstractContextManager:
    """A context manager: BLAS libraries (OpenBLAS, MKL) on n threads inside it (None: as they are), as they
    were after it."""
    return nullcontext() if n is None else _controller().limit(limits=n, user_api="blas")


def one_blas_thread() -> AbstractContextManager:
    """blas_threads(1)."""
    return blas_threads(1)


def blas_for(texts: int) -> AbstractContextManager:
    """BLAS on one thread for fewer than SMALL_BATCH texts (a question, or a few), as it is for more.

    A 1M question's reader, questions one at a time (bench_ab --alone, 2 cores): the median alike, the p95 69 ms on
    one thread against 79 ms with OpenBLAS's second, which sleeps between questions and is woken for small products."""
    return blas_threads(1 if texts < SMALL_BATCH else None)
