"""Maintenance and reads of the lexical index in kb.sqlite (see kb.lexicon for what it holds and why).

The writer calls LexiconDelta inside its commit transaction: add() for inserted chunks, remove()
for deleted ones (before their rows go), apply() once at the end. Reads take an open connection.
A whole rebuild, and the upgrade of an older KB's index, are in kb/lexical_rebuild.py.
Its tables (lex_postings, lex_terms, lex_words, lex_gram_delta) are declared in kb/schema.py.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import Iterator, Sequence

import numpy as np

from kb import lexical_kernels, postings
from kb.errors import KBError
from kb.lexicon import (
    GRAM_BUCKETS,
    LATIN_WORDS_3,
    LEXICON_VERSION,
    WORD,
    CodePoints,
    GramTally,
    code_points,
    compiled_gram_counts,
    compiled_words,
    gram_counts,
    stopwords,
)
from kb.sql import IN_LIST, in_batches, select_in

BATCH = 512
# Changed n-gram document frequencies are kept as (bucket, change) rows until this many, then folded into the
# 16 MiB array: a small commit writes a few thousand rows instead of the whole array.
GRAM_DELTA_MAX = 1 << 18
# Added chunks' n-gram buckets are counted by one bincount per this many (np.add.at per batch was a rebuild's
# largest writer cost; a bincount per batch zeroes a 32 MiB array each time).
GRAM_FOLD = 1 << 24
# A commit's batches past this many are analysed by kb.lexical_kernels (loading them costs ~0.5 s).
COMPILED_FROM = 8


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


def analyse(texts: list[str], grams: bool = True, compiled: bool = False, tally: GramTally | None = None) -> Analysis:
    """The counts the lexical index keeps of texts (a pure function: rebuilds run it in worker processes); compiled:
    cut the words and hash the n-grams with kb.lexical_kernels (the same counts; only where compiled_hashing() said it
    runs); tally: count each text's n-gram buckets there instead of returning them."""
    lowered = [t.lower() for t in texts]
    points = code_points(lowered) if compiled else None
    if points is not None:
        terms, codes, rows = compiled_words(points)
    else:
        tokens = [WORD.findall(t) for t in lowered]
        flat = list(chain.from_iterable(tokens))
        terms = list(dict.fromkeys(flat))
        index = dict(zip(terms, range(len(terms))))
        codes = np.fromiter(map(index.__getitem__, flat), dtype=np.int64, count=len(flat))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), [len(t) for t in tokens])
    n = max(len(texts), 1)
    pair, tf = np.unique(codes * n + rows, return_counts=True)
    stop = stopwords()
    kept = ~np.isin(codes, [i for i, t in enumerate(terms) if t in stop])
    return Analysis(
        terms,
        pair // n,
        pair % n,
        tf,
        np.bincount(rows[kept], minlength=len(texts)),
        np.bincount(codes, minlength=len(terms)),
        _grams(lowered, points, tally) if grams else np.zeros(0, dtype=np.uint32),
        grams,
    )


def _grams(lowered: list[str], points: CodePoints | None, tally: GramTally | None) -> np.ndarray:
    """Each text's distinct n-gram buckets, one text after the other; none when tally counts them instead."""
    if tally is None:  # the code points already cut for the words, not encoded a second time
        return (compiled_gram_counts(points) if points is not None else gram_counts(lowered, lowered=True)).buckets
    if points is not None:
        tally.count(points)
    else:
        tally.count_buckets(gram_counts(lowered, lowered=True).buckets)
    return np.zeros(0, dtype=np.uint32)


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
        self._stop = np.zeros(0, dtype=np.bool_)  # whether each code is a stopword's
        self._added: list[np.ndarray] = []  # term codes, one entry per (term, chunk) added / removed
        self._removed: list[np.ndarray] = []
        # (term codes, their occurrences) per batch, negative for removed chunks: the Latin words are counted from
        # the distinct terms once, in apply()
        self._occurrences: list[tuple[np.ndarray, np.ndarray]] = []
        self._dense: np.ndarray | None = None  # gram_df, once something counts into it
        self._gram_parts: list[np.ndarray] = []  # added buckets not yet counted into gram_df
        self._gram_gone: list[np.ndarray] = []  # removed ones
        self._gram_pending = 0
        self.length = 0  # BM25 tokens added minus removed (for the average chunk length)
        self.chunks = 0  # chunks added minus removed
        self.segment = postings.Segment()
        self._pending: list[tuple[int, str]] = []
        self._batches = 0  # analysed by _flush: past COMPILED_FROM, a big commit, hashed by kb.lexical_kernels

    @property
    def gram_df(self) -> np.ndarray:
        """Chunks holding each n-gram bucket, added minus removed so far, (GRAM_BUCKETS,) int64; a rebuild's workers
        add into it. Made on first use: a small commit's buckets are counted sparsely by apply() instead, since
        allocating and scanning these 32 MiB was most of a 100-chunk commit (~90 ms of ~110)."""
        if self._dense is None:
            self._dense = np.zeros(GRAM_BUCKETS, dtype=np.int64)
        return self._dense

    def add(self, con: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Index chunks (id, retrieval text) that were just inserted (in batches: documents are often small)."""
        self._pending.extend(rows)
        if len(self._pending) >= BATCH:
            self._flush(con, whole=True)

    def _codes(self, terms: list[str]) -> np.ndarray:
        """This commit's code of each of terms (new ones numbered as they come)."""
        code = self._code
        new = set(terms).difference(code)
        for term in new:
            code[term] = len(self._terms)
            self._terms.append(term)
        if new:
            known, self._stop = self._stop, np.zeros(len(self._terms), dtype=np.bool_)
            self._stop[: len(known)] = known
            self._stop[[code[t] for t in new.intersection(stopwords())]] = True
        return np.fromiter(map(code.__getitem__, terms), dtype=np.int64, count=len(terms))

    def _flush(self, con: sqlite3.Connection, whole: bool = False) -> None:
        """Analyse and take the pending chunks; whole: only full batches, the rest stays pending (a batch of the few
        chunks past BATCH cost nearly what a full one does)."""
        cut = len(self._pending) - len(self._pending) % BATCH if whole else len(self._pending)
        rows, self._pending = self._pending[:cut], self._pending[cut:]
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            self._batches += 1
            compiled = self._batches > COMPILED_FROM and compiled_hashing()
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
        term = ~self._stop[codes]
        self.segment.add(codes[term], ids[counts.row[term]], counts.tf[term], counts.lengths[counts.row[term]])
        self.length += int(counts.lengths.sum())
        self.chunks += len(ids)
        # Each bucket at most once per chunk, so counting buckets counts chunks.
        if lexical_kernels.loaded():  # a rebuild or a big commit: compiled_hashing() ran
            lexical_kernels.count_buckets(self.gram_df, counts.gram_buckets)
            return
        self._gram_parts.append(counts.gram_buckets)
        self._gram_pending += len(counts.gram_buckets)
        if self._gram_pending >= GRAM_FOLD:
            self._fold_grams()

    def _fold_grams(self) -> None:
        # From intp: bincount of uint32 converts them more slowly itself (2.7x here).
        df = self.gram_df
        if self._gram_parts:
            df += np.bincount(np.concatenate(self._gram_parts).astype(np.intp), minlength=GRAM_BUCKETS)
        if self._gram_gone:
            df -= np.bincount(np.concatenate(self._gram_gone).astype(np.intp), minlength=GRAM_BUCKETS)
        self._gram_parts, self._gram_gone, self._gram_pending = [], [], 0

    def remove(self, con: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Unindex chunks (id, retrieval text as indexed) that are about to be deleted: their words and n-grams are
        counted again from the texts, which the caller reads before deleting the rows. Their postings stay as dead
        entries (see kb.postings) until their terms' segments are merged."""
        if not rows:
            return
        self._flush(con)
        compiled = len(rows) > COMPILED_FROM * BATCH and compiled_hashing()  # as many as a big commit adds
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
        changed, delta = self._gram_changes()
        if not len(changed):
            return
        pending = 0 if fresh else con.execute("SELECT COUNT(*) FROM lex_gram_delta").fetchone()[0]
        if fresh or pending + len(changed) > GRAM_DELTA_MAX:
            df = np.zeros(GRAM_BUCKETS, dtype=np.int64) if fresh else char_df(con)
            df[changed] += delta
            con.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('char_df', ?)",
                (np.maximum(df, 0).astype(np.int32).tobytes(),),
            )
            con.execute("DELETE FROM lex_gram_delta")
            return
        con.executemany(
            "INSERT INTO lex_gram_delta (bucket, d) VALUES (?, ?) ON CONFLICT(bucket) DO UPDATE SET d = d + excluded.d",
            zip(changed.tolist(), delta.tolist()),
        )
        con.execute("DELETE FROM lex_gram_delta WHERE d = 0")

    def _gram_changes(self) -> tuple[np.ndarray, np.ndarray]:
        """(the buckets whose number of chunks changed, ascending; by how much): from gram_df where something counted
        into it (a rebuild, a big commit), else from this commit's buckets alone."""
        if self._dense is not None:
            self._fold_grams()
            changed = np.flatnonzero(self._dense)
            return changed, self._dense[changed]
        added = np.concatenate(self._gram_parts) if self._gram_parts else np.zeros(0, dtype=np.uint32)
        gone = np.concatenate(self._gram_gone) if self._gram_gone else np.zeros(0, dtype=np.uint32)
        buckets, where = np.unique(np.concatenate([added, gone]).astype(np.int64), return_inverse=True)
        sign = np.concatenate([np.ones(len(added), dtype=np.int64), np.full(len(gone), -1, dtype=np.int64)])
        delta = np.bincount(where, weights=sign, minlength=len(buckets)).astype(np.int64)
        keep = delta != 0
        return buckets[keep], delta[keep]


def _chunk_ids(con: sqlite3.Connection) -> np.ndarray:
    return np.array([r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)


@cache
def compiled_hashing() -> bool:
    """Whether kb.lexical_kernels runs in this process: numba imported and the functions compiled (once, ~0.5 s; a
    first compile ~2 s). Without numba, or with nowhere to cache its compiled code (numba's RuntimeError), rebuilds
    and big commits hash with numpy: the same buckets, slower."""
    try:
        analyse(["compile it"], compiled=True)
        analyse(["compile it"], compiled=True, tally=GramTally.zeros(16))  # a rebuild's workers' kernel
        lexical_kernels.count_buckets(np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.uint32))
        lexical_kernels.group_by_code(np.zeros(1, dtype=np.int64), 1)
    except (ImportError, RuntimeError):
        return False
    return True


def is_current(con: sqlite3.Connection) -> bool:
    """Whether the lexical index was written by this version's tokenisation (else it must be upgraded).

    Raises KBError for an index from a newer hopfield-kb: rebuilding it in this version's format would silently
    downgrade a KB that newer readers share, and reading it as this format could misread it."""
    version = stored_version(con)
    if version is not None and _newer(version):
        raise KBError(
            f"the knowledge base's lexical index is version {version}, written by a newer hopfield-kb than this one "
            f"(which reads version {LEXICON_VERSION}): open it with that version or a later one"
        )
    return version == LEXICON_VERSION


def stored_version(con: sqlite3.Connection) -> str | None:
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
