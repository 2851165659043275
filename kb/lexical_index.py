"""Maintenance and reads of the lexical index in kb.sqlite (see kb.lexicon for what it holds and why).

The writer calls LexiconDelta inside its commit transaction: add() for inserted chunks, remove()
for deleted ones (before their rows go), apply() once at the end. Reads take an open connection.
Its tables (lex_postings, lex_terms, lex_words, lex_gram_delta) are declared in kb/schema.py.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import threading
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from itertools import chain, islice
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.sharedctypes import Synchronized
from typing import Iterable, Iterator, Sequence

import numpy as np

from kb import lexical_kernels, postings
from kb.errors import KBError
from kb.lexicon import GRAM_BUCKETS, LATIN_WORDS_3, LEXICON_VERSION, WORD, gram_counts, stopwords
from kb.sql import IN_LIST, in_batches, select_in

BATCH = 512
# Changed n-gram document frequencies are kept as (bucket, change) rows until this many, then folded into the
# 16 MiB array: a small commit writes a few thousand rows instead of the whole array.
GRAM_DELTA_MAX = 1 << 18
# Added chunks' n-gram buckets are counted by one bincount per this many (np.add.at per batch was a rebuild's
# largest writer cost; a bincount per batch zeroes a 32 MiB array each time).
GRAM_FOLD = 1 << 24
# A rebuild of at least this many batches analyses them in worker processes (starting them costs ~1 s).
PARALLEL_FROM = 8


@dataclass(frozen=True)
class Analysis:
    """One batch of texts cut and counted, by analyse(): one tokenisation for all the counts.

    terms: the batch's distinct word tokens; term, row, tf: each distinct (term, text) pair as an index into
    terms, the text's row and the term's occurrences there; lengths: each text's BM25 length (its terms less
    stopwords: stopwords would lengthen every chunk alike and blur the length normalisation); occurrences: each
    term's occurrences in all the texts; gram_buckets: each text's distinct n-gram buckets, one text after the
    other (empty if not asked; grams says whether they were)."""

    terms: list[str]
    term: np.ndarray
    row: np.ndarray
    tf: np.ndarray
    lengths: np.ndarray
    occurrences: np.ndarray
    gram_buckets: np.ndarray
    grams: bool


def analyse(texts: list[str], grams: bool = True, compiled: bool = False) -> Analysis:
    """The counts the lexical index keeps of texts (a pure function: rebuilds run it in worker processes); compiled:
    hash the n-grams with kb.lexical_kernels (the same counts; only where compiled_hashing() said it runs)."""
    lowered = [t.lower() for t in texts]
    tokens = [WORD.findall(t) for t in lowered]
    flat = list(chain.from_iterable(tokens))
    terms = list(dict.fromkeys(flat))
    index = dict(zip(terms, range(len(terms))))
    codes = np.fromiter(map(index.__getitem__, flat), dtype=np.int64, count=len(flat))
    rows = np.repeat(np.arange(len(texts), dtype=np.int64), [len(t) for t in tokens])
    n = max(len(texts), 1)
    pair, tf = np.unique(codes * n + rows, return_counts=True)
    kept = ~np.isin(codes, [index[t] for t in stopwords() if t in index])
    counted = gram_counts(lowered, lowered=True, compiled=compiled) if grams else None
    return Analysis(
        terms,
        pair // n,
        pair % n,
        tf,
        np.bincount(rows[kept], minlength=len(texts)),
        np.bincount(codes, minlength=len(terms)),
        counted.buckets if counted else np.zeros(0, dtype=np.uint32),
        grams,
    )


def latin_counts(terms: list[str], occurrences: np.ndarray) -> Counter[str]:
    """The Latin words (runs of 3+ of a-z) in lower-cased texts, counted, from their word tokens (terms, each with
    its occurrences, negative for texts taken away): such a run never crosses a token's edge (a non-word
    character), so each distinct token is read once instead of every text."""
    out: Counter[str] = Counter()
    for term, n in zip(terms, occurrences.tolist()):
        if term.isascii() and term.isalpha():  # the whole token is one run (lower-cased: only a-z)
            if len(term) >= 3:
                out[term] += n
        else:
            for word in LATIN_WORDS_3.findall(term):
                out[word] += n
    return out


class LexiconDelta:
    """What one commit changes in the lexical index; apply() writes it."""

    def __init__(self) -> None:
        self._code: dict[str, int] = {}  # term -> code, for this commit's arrays
        self._terms: list[str] = []
        self._stop_codes: list[int] = []
        self._added: list[np.ndarray] = []  # term codes, one entry per (term, chunk) added / removed
        self._removed: list[np.ndarray] = []
        # (term codes, their occurrences) per batch, negative for removed chunks: the Latin words are counted from
        # the distinct terms once, in apply()
        self._occurrences: list[tuple[np.ndarray, np.ndarray]] = []
        self._grams = np.zeros(GRAM_BUCKETS, dtype=np.int64)  # chunks holding each bucket, added minus removed
        self._gram_parts: list[np.ndarray] = []  # added buckets not yet counted into _grams
        self._gram_gone: list[np.ndarray] = []  # removed ones
        self._gram_pending = 0
        self.length = 0  # BM25 tokens added minus removed (for the average chunk length)
        self.chunks = 0  # chunks added minus removed
        self.segment = postings.Segment()
        self._pending: list[tuple[int, str]] = []
        self._batches = 0  # analysed by _flush: past PARALLEL_FROM, a big commit, hashed by kb.lexical_kernels

    def add(self, con: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Index chunks (id, retrieval text) that were just inserted (in batches: documents are often small)."""
        self._pending.extend(rows)
        if len(self._pending) >= BATCH:
            self._flush(con, whole=True)

    def _codes(self, terms: list[str]) -> np.ndarray:
        """This commit's code of each of terms (new ones numbered as they come)."""
        code = self._code
        stop = stopwords()
        for term in set(terms).difference(code):
            code[term] = len(self._terms)
            self._terms.append(term)
            if term in stop:
                self._stop_codes.append(code[term])
        return np.fromiter(map(code.__getitem__, terms), dtype=np.int64, count=len(terms))

    def _flush(self, con: sqlite3.Connection, whole: bool = False) -> None:
        """Analyse and take the pending chunks; whole: only full batches, the rest stays pending (a batch of the few
        chunks past BATCH cost nearly what a full one does)."""
        cut = len(self._pending) - len(self._pending) % BATCH if whole else len(self._pending)
        rows, self._pending = self._pending[:cut], self._pending[cut:]
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            self._batches += 1
            compiled = self._batches > PARALLEL_FROM and compiled_hashing()
            self.take(
                con, np.array([cid for cid, _ in part], dtype=np.int64), analyse([text for _, text in part], True, compiled)
            )

    def take(self, con: sqlite3.Connection, ids: np.ndarray, counts: Analysis) -> None:
        """Index inserted chunks ids (in id order) from their Analysis."""
        if not counts.grams:
            raise ValueError("the chunks' n-grams were not counted: analyse(texts, grams=True)")
        term_codes = self._codes(counts.terms)
        codes = term_codes[counts.term]
        self._added.append(codes)
        self._occurrences.append((term_codes, counts.occurrences))
        term = ~np.isin(codes, self._stop_codes)
        self.segment.add(codes[term], ids[counts.row[term]], counts.tf[term], counts.lengths[counts.row[term]])
        self.length += int(counts.lengths.sum())
        self.chunks += len(ids)
        # Each bucket at most once per chunk, so counting buckets counts chunks.
        if lexical_kernels.loaded():  # a rebuild or a big commit: compiled_hashing() ran
            lexical_kernels.count_buckets(self._grams, counts.gram_buckets)
            return
        self._gram_parts.append(counts.gram_buckets)
        self._gram_pending += len(counts.gram_buckets)
        if self._gram_pending >= GRAM_FOLD:
            self._fold_grams()

    def _fold_grams(self) -> None:
        # From intp: bincount of uint32 converts them more slowly itself (2.7x here).
        if self._gram_parts:
            self._grams += np.bincount(np.concatenate(self._gram_parts).astype(np.intp), minlength=GRAM_BUCKETS)
        if self._gram_gone:
            self._grams -= np.bincount(np.concatenate(self._gram_gone).astype(np.intp), minlength=GRAM_BUCKETS)
        self._gram_parts, self._gram_gone, self._gram_pending = [], [], 0

    def remove(self, con: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Unindex chunks (id, retrieval text as indexed) that are about to be deleted: their words and n-grams are
        counted again from the texts, which the caller reads before deleting the rows. Their postings stay as dead
        entries (see kb.postings) until their terms' segments are merged."""
        if not rows:
            return
        self._flush(con)
        compiled = len(rows) > PARALLEL_FROM * BATCH and compiled_hashing()  # as many as a big commit adds
        for start in range(0, len(rows), BATCH):
            counts = analyse([text for _, text in rows[start : start + BATCH]], True, compiled)
            term_codes = self._codes(counts.terms)
            self._removed.append(term_codes[counts.term])
            self._occurrences.append((term_codes, -counts.occurrences))
            self.length -= int(counts.lengths.sum())
            self._gram_gone.append(counts.gram_buckets)  # each bucket once per chunk
            self._gram_pending += len(counts.gram_buckets)
            if self._gram_pending >= GRAM_FOLD:
                self._fold_grams()
        self.chunks -= len(rows)

    def apply(self, con: sqlite3.Connection, fresh: bool = False) -> None:
        """Write the accumulated changes: document frequencies, the new postings segment (merging crowded
        terms), n-gram frequencies, lengths. fresh: the index was emptied first (a rebuild)."""
        self._flush(con)
        n = len(self._terms)
        df = np.zeros(n, dtype=np.int64)
        for codes in self._added:
            df += np.bincount(codes, minlength=n)
        for codes in self._removed:
            df -= np.bincount(codes, minlength=n)
        changed = np.flatnonzero(df)
        con.executemany(
            "INSERT INTO lex_terms (term, df) VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET df = df + excluded.df",
            [(self._terms[i], int(df[i])) for i in changed],
        )
        fell = [self._terms[i] for i in changed if df[i] < 0]
        gone = [t for (t,) in select_in(con, f"SELECT term FROM lex_terms WHERE df <= 0 AND term IN {IN_LIST}", fell)]
        postings.drop_terms(con, gone)
        for part, marks in in_batches(gone):
            con.execute(f"DELETE FROM lex_terms WHERE term IN ({marks})", part)
        written = self.segment.write(con, self._terms)
        if not fresh:
            postings.merge_crowded(con, written, lambda: _chunk_ids(con))
        occurrences = np.zeros(n, dtype=np.int64)
        for codes, counted in self._occurrences:
            occurrences[codes] += counted  # a batch's term codes are distinct
        touched = np.flatnonzero(occurrences)
        words = latin_counts([self._terms[i] for i in touched], occurrences[touched])
        con.executemany(
            "INSERT INTO lex_words (word, n) VALUES (?, ?) ON CONFLICT(word) DO UPDATE SET n = n + excluded.n",
            [(w, d) for w, d in words.items() if d],
        )
        con.execute("DELETE FROM lex_words WHERE n <= 0")
        self._apply_grams(con, fresh)
        total = (0 if fresh else bm25_length(con)) + self.length
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bm25_length', ?)", (str(max(total, 0)),))
        chunks = (0 if fresh else indexed_chunks(con)) + self.chunks
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lex_chunks', ?)", (str(max(chunks, 0)),))
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lexicon_version', ?)", (LEXICON_VERSION,))

    def _apply_grams(self, con: sqlite3.Connection, fresh: bool) -> None:
        self._fold_grams()
        changed = np.flatnonzero(self._grams)
        if not len(changed):
            return
        pending = 0 if fresh else con.execute("SELECT COUNT(*) FROM lex_gram_delta").fetchone()[0]
        if fresh or pending + len(changed) > GRAM_DELTA_MAX:
            df = (np.zeros(GRAM_BUCKETS, dtype=np.int64) if fresh else char_df(con)) + self._grams
            con.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('char_df', ?)",
                (np.maximum(df, 0).astype(np.int32).tobytes(),),
            )
            con.execute("DELETE FROM lex_gram_delta")
            return
        con.executemany(
            "INSERT INTO lex_gram_delta (bucket, d) VALUES (?, ?) ON CONFLICT(bucket) DO UPDATE SET d = d + excluded.d",
            zip(changed.tolist(), self._grams[changed].tolist()),
        )
        con.execute("DELETE FROM lex_gram_delta WHERE d = 0")


def _chunk_ids(con: sqlite3.Connection) -> np.ndarray:
    return np.array([r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)


def rebuild(con: sqlite3.Connection, texts: Iterable[tuple[int, str]]) -> None:
    """Empty and refill the whole lexical index from (chunk id, retrieval text) pairs in id order."""
    with _fast_delete(con):
        _drop_old_tables(con)
        for table in ("lex_terms", "lex_words", "lex_postings", "lex_gram_delta"):
            con.execute(f"DELETE FROM {table}")
    con.execute("DELETE FROM meta WHERE key IN ('char_df', 'bm25_length', 'postings_seq', 'lex_chunks')")
    delta = LexiconDelta()
    for ids, counts in analysed(_batches(texts), delta._grams):  # a pool's workers count the n-grams into it
        delta.take(con, ids, counts)
    delta.apply(con, fresh=True)


def upgrade(con: sqlite3.Connection, texts: Iterable[tuple[int, str]]) -> None:
    """Bring the lexical index to this version inside the caller's transaction: a version 8 index holds everything
    version 9 keeps, so only its chunk_grams go; any other is rebuilt from (chunk id, retrieval text) pairs."""
    if _version(con) != "8" or con.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunk_grams'").fetchone() is None:
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
    """(ids, analyse(texts)) of each batch, in order. Past PARALLEL_FROM batches (a rebuild of thousands of chunks)
    the analysis runs in a pool of worker processes, one per CPU, while this process writes what they return;
    the pool stops with the rebuild, whatever ends it. gram_df ((GRAM_BUCKETS,) int64): where the pool's workers
    add the chunks holding each n-gram bucket, by the end of the iteration; their Analysis then carries no buckets."""
    head = list(islice(batches, PARALLEL_FROM))
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # Workers are forked (spawn would re-run the caller's main script, guarded or not), so only from a process
    # running one thread: another thread (a server's) could hold a lock the fork copies locked. They run
    # analyse alone: numpy and regular expressions, never the inherited SQLite connection.
    compiled = len(head) >= PARALLEL_FROM and compiled_hashing()  # compiled before the fork: the workers inherit it
    if len(head) < PARALLEL_FROM or workers < 2 or threading.active_count() > 1 or "fork" not in get_all_start_methods():
        for ids, texts in chain(head, batches):
            yield ids, analyse(texts, True, compiled)
        return
    # Each worker counts its chunks' n-grams into an array of its own, shared with this process (anonymous shared
    # memory, inherited by the fork): the buckets (~6 KB a chunk) need not go through the pipes, nor be counted here.
    shared = workers if gram_df is not None else 0
    tallies = [np.frombuffer(mmap.mmap(-1, GRAM_BUCKETS * 8), dtype=np.int64) for _ in range(shared)]
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
            gram_df += tally


_TALLY: list[np.ndarray] = []  # in a pool worker of analysed: its own count of chunks per n-gram bucket


def _take_tally(tallies: list[np.ndarray], slots: Synchronized) -> None:
    """A pool worker's start: take the next of tallies (none when the caller counts the n-grams itself)."""
    with slots.get_lock():
        slot = slots.value
        slots.value += 1
    _TALLY[:] = tallies[slot : slot + 1]


def _analyse_tallied(texts: list[str], grams: bool, compiled: bool) -> Analysis:
    """analyse(texts, grams, compiled) in a pool worker, its n-gram buckets counted into the worker's tally."""
    counts = analyse(texts, grams, compiled)
    if len(_TALLY) != 1:
        raise RuntimeError("an analysing worker without its tally of n-grams")
    if compiled:
        lexical_kernels.count_buckets(_TALLY[0], counts.gram_buckets)
    else:
        np.add.at(_TALLY[0], counts.gram_buckets.astype(np.intp), 1)
    return replace(counts, gram_buckets=np.zeros(0, dtype=np.uint32))


@cache
def compiled_hashing() -> bool:
    """Whether kb.lexical_kernels runs in this process: numba imported and the functions compiled (once, ~0.5 s; a
    first compile ~2 s). Without numba, or with nowhere to cache its compiled code (numba's RuntimeError), rebuilds
    and big commits hash with numpy: the same buckets, slower."""
    try:
        gram_counts(["compile"], compiled=True)
        lexical_kernels.count_buckets(np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.uint32))
        lexical_kernels.group_by_code(np.zeros(1, dtype=np.int64), 1)
    except (ImportError, RuntimeError):
        return False
    return True


def is_current(con: sqlite3.Connection) -> bool:
    """Whether the lexical index was written by this version's tokenisation (else it must be upgraded).

    Raises KBError for an index from a newer hopfield-kb: rebuilding it in this version's format would silently
    downgrade a KB that newer readers share, and reading it as this format could misread it."""
    version = _version(con)
    if version is not None and _newer(version):
        raise KBError(
            f"the knowledge base's lexical index is version {version}, written by a newer hopfield-kb than this one "
            f"(which reads version {LEXICON_VERSION}): open it with that version or a later one"
        )
    return version == LEXICON_VERSION


def _version(con: sqlite3.Connection) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = 'lexicon_version'").fetchone()
    return None if row is None else str(row[0])


def _newer(version: str) -> bool:
    """Whether a stored lexicon version is later than LEXICON_VERSION (versions are whole numbers)."""
    return version.isdigit() and int(version) > int(LEXICON_VERSION)


def problems(con: sqlite3.Connection, chunk_ids: np.ndarray) -> list[str]:
    """What is wrong with the lexical index against the chunk rows (sorted chunk_ids): empty when sound."""
    if not len(chunk_ids):
        return []
    if not is_current(con):
        return ["the lexical index is missing or from an older version; kb check --repair rebuilds it"]
    out = []
    if indexed_chunks(con) != len(chunk_ids):
        out.append(
            f"the lexical index covers {indexed_chunks(con)} chunks, not the {len(chunk_ids)} stored; "
            "kb check --repair rebuilds it"
        )
    has_terms = con.execute("SELECT 1 FROM lex_terms LIMIT 1").fetchone() is not None
    if has_terms and con.execute("SELECT 1 FROM lex_postings LIMIT 1").fetchone() is None:
        out.append("the BM25 postings are missing; kb check --repair rebuilds them")
    return out


# ---- reads -------------------------------------------------------------------------------------
@contextmanager
def consistent(con: sqlite3.Connection) -> Iterator[None]:
    """The block's reads see one commit: inside the caller's transaction, or a read transaction of their own."""
    if con.in_transaction:
        yield
        return
    con.execute("BEGIN")
    try:
        yield
    finally:
        if con.in_transaction:
            con.execute("COMMIT")


@dataclass(frozen=True)
class TermPostings:
    """What BM25 needs for a question's terms, read at one commit: token (the snapshot it belongs to), df
    {term: chunks holding it}, total_length (BM25 tokens of all chunks), postings {term: kb.postings.POSTING
    records sorted by chunk id, dead entries of removed chunks included}."""

    token: str | None
    df: dict[str, int]
    total_length: int
    postings: dict[str, np.ndarray]


def term_postings(con: sqlite3.Connection, terms: Sequence[str]) -> TermPostings:
    """TermPostings of terms (those the KB holds)."""
    with consistent(con):
        row = con.execute("SELECT value FROM meta WHERE key = 'token'").fetchone()
        df = term_df(con, terms)
        return TermPostings(row[0] if row else None, df, bm25_length(con), postings.read(con, list(df)))


def bm25_length(con: sqlite3.Connection) -> int:
    """BM25 tokens in all chunks together (their average is what BM25 normalises chunk length by)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'bm25_length'").fetchone()
    return int(row[0]) if row else 0


def indexed_chunks(con: sqlite3.Connection) -> int:
    """Chunks the lexical index holds (added minus removed by the commits since its last rebuild)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'lex_chunks'").fetchone()
    return int(row[0]) if row else 0


def char_df(con: sqlite3.Connection) -> np.ndarray:
    """Chunks holding each character n-gram bucket: (GRAM_BUCKETS,) int64 (zeros for an empty KB)."""
    with consistent(con):
        row = con.execute("SELECT value FROM meta WHERE key = 'char_df'").fetchone()
        df = np.zeros(GRAM_BUCKETS, dtype=np.int64)
        if row is not None:
            df[:] = np.frombuffer(row[0], dtype=np.int32)
        delta = np.array(con.execute("SELECT bucket, d FROM lex_gram_delta").fetchall(), dtype=np.int64).reshape(-1, 2)
    df[delta[:, 0]] += delta[:, 1]
    return df


def term_df(con: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
    """{term: chunks holding it} for the terms the KB holds."""
    out: dict[str, int] = {}
    distinct = list(dict.fromkeys(terms))
    out.update(select_in(con, f"SELECT term, df FROM lex_terms WHERE term IN {IN_LIST}", distinct))
    return out


def words(con: sqlite3.Connection) -> list[tuple[str, int]]:
    """Every Latin word (3+ letters) in the KB with its occurrences, alphabetically."""
    return con.execute("SELECT word, n FROM lex_words ORDER BY word").fetchall()
