"""The lexical index rebuilt from every chunk's text, or brought to this version from an older one.

A rebuild analyses the texts in batches (kb.lexical_index.analyse), in a pool of worker processes from
PARALLEL_FROM chunks on, while this process writes what they return through a LexiconDelta. Both run inside
the caller's transaction (kb/schema.py's upgrade, the writer's repair), so a crash leaves the old index whole.
"""

from __future__ import annotations

import mmap
import sqlite3
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from itertools import chain
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.sharedctypes import Synchronized
from typing import Iterable, Iterator

import numpy as np

from kb.cpus import usable_cpus
from kb.lexical_index import Analysis, LexiconDelta, analyse, compiled_hashing, stored_version
from kb.lexicon import GRAM_BUCKETS, LEXICON_VERSION, GramTally

# Texts analysed at once. The writer maps each batch's distinct terms to the rebuild's codes, so fewer, larger
# batches repeat fewer lookups (100k chunks: 512 took 5.0-5.4 s, 2048 4.3 s; 8192 6 s, the pool's window too short).
BATCH = 2048
# A rebuild of at least this many chunks analyses them in worker processes (starting them costs ~1 s).
PARALLEL_FROM = 4096


def rebuild(con: sqlite3.Connection, texts: Iterable[tuple[int, str]]) -> None:
    """Empty and refill the whole lexical index from (chunk id, retrieval text) pairs in id order."""
    with _fast_delete(con):
        _drop_old_tables(con)
        for table in ("lex_terms", "lex_words", "lex_postings", "lex_gram_delta"):
            con.execute(f"DELETE FROM {table}")
    con.execute("DELETE FROM meta WHERE key IN ('char_df', 'bm25_length', 'postings_seq', 'lex_chunks')")
    delta = LexiconDelta()
    for ids, counts in analysed(_batches(texts), delta.gram_df):  # a pool's workers count the n-grams into it
        delta.take(con, ids, counts)
    delta.apply(con, fresh=True)


def upgrade(con: sqlite3.Connection, texts: Iterable[tuple[int, str]]) -> None:
    """Bring the lexical index to this version inside the caller's transaction: a version 8 index holds everything
    version 9 keeps, so only its chunk_grams go; any other is rebuilt from (chunk id, retrieval text) pairs."""
    if (
        stored_version(con) != "8"
        or con.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunk_grams'").fetchone() is None
    ):
        rebuild(con, texts)
        return
    # The chunks version 8 indexed, as `kb check` compares them with the chunk rows (its chunk_grams covered them).
    (chunks,) = con.execute("SELECT COUNT(*) FROM chunk_grams").fetchone()
    with _fast_delete(con):
        _drop_old_tables(con)
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lex_chunks', ?)", (str(chunks),))
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lexicon_version', ?)", (LEXICON_VERSION,))


@contextmanager
def _fast_delete(con: sqlite3.Connection) -> Iterator[None]:
    """The block's deletes zero only the freed pages that are written anyway (secure_delete FAST).

    Debian's SQLite zeroes every freed page (secure_delete on): emptying chunk_grams wrote its ~300 MB again to the
    WAL at 100k chunks, a third of a rebuild. What goes is derived from the chunks that stay; the connection's
    setting is restored after."""
    (secure,) = con.execute("PRAGMA secure_delete").fetchone()
    con.execute("PRAGMA secure_delete = FAST")
    try:
        yield
    finally:
        con.execute(f"PRAGMA secure_delete = {('OFF', 'ON', 'FAST')[secure]}")


def _drop_old_tables(con: sqlite3.Connection) -> None:
    """Drop the tables of older lexicon versions: the FTS5 index (before 7) and the stored n-gram counts (7 and 8)."""
    con.execute("DROP TABLE IF EXISTS chunk_fts")
    con.execute("DROP TABLE IF EXISTS chunk_grams")


def _batches(texts: Iterable[tuple[int, str]]) -> Iterator[tuple[np.ndarray, list[str]]]:
    batch: list[tuple[int, str]] = []
    for row in texts:
        batch.append(row)
        if len(batch) >= BATCH:
            yield np.array([cid for cid, _ in batch], dtype=np.int64), [text for _, text in batch]
            batch = []
    if batch:
        yield np.array([cid for cid, _ in batch], dtype=np.int64), [text for _, text in batch]


def analysed(
    batches: Iterator[tuple[np.ndarray, list[str]]], gram_df: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, Analysis]]:
    """(ids, analyse(texts)) of each batch, in order. From PARALLEL_FROM chunks on (a rebuild of thousands of chunks)
    the analysis runs in a pool of worker processes, one per CPU, while this process writes what they return;
    the pool stops with the rebuild, whatever ends it. gram_df ((GRAM_BUCKETS,) int64): where the pool's workers
    add the chunks holding each n-gram bucket, by the end of the iteration; their Analysis then carries no buckets."""
    head: list[tuple[np.ndarray, list[str]]] = []
    chunks = 0
    for batch in batches:
        head.append(batch)
        chunks += len(batch[0])
        if chunks >= PARALLEL_FROM:
            break
    big = chunks >= PARALLEL_FROM
    workers = usable_cpus()
    # Workers are forked (spawn would re-run the caller's main script, guarded or not), so only from a process
    # running one thread: another thread (a server's) could hold a lock the fork copies locked. They run
    # analyse alone: numpy, regular expressions and compiled kernels, never the inherited SQLite connection.
    compiled = big and compiled_hashing()  # compiled before the fork: the workers inherit it
    if not big or workers < 2 or threading.active_count() > 1 or "fork" not in get_all_start_methods():
        for ids, texts in chain(head, batches):
            yield ids, analyse(texts, True, compiled)
        return
    # Each worker counts its chunks' n-grams into an array of its own, shared with this process (anonymous shared
    # memory, inherited by the fork): the buckets (~6 KB a chunk) need not go through the pipes, nor be counted here.
    shared = workers if gram_df is not None else 0
    cells = [np.frombuffer(mmap.mmap(-1, GRAM_BUCKETS * 8), dtype=np.uint32).reshape(-1, 2) for _ in range(shared)]
    tallies = [GramTally(c) for c in cells]
    context = get_context("fork")
    slots = context.Value("i", 0)
    task = _analyse_tallied if tallies else analyse
    with ProcessPoolExecutor(workers, context, initializer=_take_tally, initargs=(tallies, slots)) as pool:
        window: deque[tuple[np.ndarray, Future[Analysis]]] = deque()
        try:
            for ids, texts in chain(head, batches):
                window.append((ids, pool.submit(task, texts, True, compiled)))
                if len(window) > 2 * workers:
                    ids_done, job = window.popleft()
                    yield ids_done, job.result()
            while window:
                ids_done, job = window.popleft()
                yield ids_done, job.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if gram_df is not None:
        for tally in tallies:  # every task has finished: the workers' counts are whole
            gram_df += tally.counts


_TALLY: list[GramTally] = []  # in a pool worker of analysed: its own count of chunks per n-gram bucket


def _take_tally(tallies: list[GramTally], slots: Synchronized) -> None:
    """A pool worker's start: take the next of tallies (none when the caller counts the n-grams itself)."""
    with slots.get_lock():
        slot = slots.value
        slots.value += 1
    _TALLY[:] = tallies[slot : slot + 1]


def _analyse_tallied(texts: list[str], grams: bool, compiled: bool) -> Analysis:
    """analyse(texts, grams, compiled) in a pool worker, its n-gram buckets counted into the worker's tally."""
    if len(_TALLY) != 1:
        raise RuntimeError("an analysing worker without its tally of n-grams")
    return analyse(texts, grams, compiled, tally=_TALLY[0])
