"""Maintenance and reads of the lexical index in kb.sqlite (see kb.lexicon for what it holds and why).

The writer calls LexiconDelta inside its commit transaction: add() for inserted chunks, remove()
for deleted ones (before their rows go), apply() once at the end. Reads take an open connection.
Its tables (lex_postings, lex_terms, lex_words, chunk_grams, lex_gram_delta) are declared in kb/schema.py.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Iterable, Iterator, Sequence

import numpy as np

from kb import postings
from kb.lexicon import GRAM_BUCKETS, LATIN_WORDS_3, LEXICON_VERSION, WORD, char_grams, pack_grams, stopwords, unpack_grams
from kb.sql import IN_LIST, in_batches, select_in

BATCH = 512
# Changed n-gram document frequencies are kept as (bucket, change) rows until this many, then folded into the
# 16 MiB array: a small commit writes a few thousand rows instead of the whole array.
GRAM_DELTA_MAX = 1 << 18


class LexiconDelta:
    """What one commit changes in the lexical index; apply() writes it."""

    def __init__(self) -> None:
        self._code: dict[str, int] = {}  # term -> code, for this commit's arrays
        self._terms: list[str] = []
        self._stop_codes: list[int] = []
        self._added: list[np.ndarray] = []  # term codes, one entry per (term, chunk) added / removed
        self._removed: list[np.ndarray] = []
        self.words: Counter[str] = Counter()
        self.grams = np.zeros(GRAM_BUCKETS, dtype=np.int64)
        self.length = 0  # BM25 tokens added minus removed (for the average chunk length)
        self.segment = postings.Segment()
        self._pending: list[tuple[int, str]] = []

    def add(self, con: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Index chunks (id, retrieval text) that were just inserted (in batches: documents are often small)."""
        self._pending.extend(rows)
        if len(self._pending) >= BATCH:
            self._flush(con)

    def _count(self, lowered: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(term code, text row, count) of each distinct term of each text, and each text's BM25 length: one
        tokenisation for all the counts. Lengths count BM25 terms only (stopwords would lengthen every chunk
        alike and blur the length normalisation)."""
        tokens = [WORD.findall(t) for t in lowered]
        flat = list(chain.from_iterable(tokens))
        code = self._code
        stop = stopwords()
        for term in set(flat).difference(code):
            code[term] = len(self._terms)
            self._terms.append(term)
            if term in stop:
                self._stop_codes.append(code[term])
        codes = np.fromiter(map(code.__getitem__, flat), dtype=np.int64, count=len(flat))
        rows = np.repeat(np.arange(len(lowered), dtype=np.int64), [len(t) for t in tokens])
        pair, tf = np.unique(codes * len(lowered) + rows, return_counts=True)
        kept = ~np.isin(codes, self._stop_codes)
        lengths = np.bincount(rows[kept], minlength=len(lowered))
        return pair // len(lowered), pair % len(lowered), tf, lengths

    def _flush(self, con: sqlite3.Connection) -> None:
        rows, self._pending = self._pending, []
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            ids = np.array([cid for cid, _ in part], dtype=np.int64)
            lowered = [text.lower() for _, text in part]
            codes, row, tf, lengths = self._count(lowered)
            self._added.append(codes)
            term = ~np.isin(codes, self._stop_codes)
            self.segment.add(codes[term], ids[row[term]], tf[term], lengths[row[term]])
            self.length += int(lengths.sum())
            self.words.update(LATIN_WORDS_3.findall("\n".join(lowered)))
            grams = char_grams(lowered)
            cut = grams.indptr
            con.executemany(
                "INSERT OR REPLACE INTO chunk_grams (chunk_id, grams) VALUES (?, ?)",
                [
                    (int(cid), pack_grams(grams.indices[cut[i] : cut[i + 1]], grams.data[cut[i] : cut[i + 1]]))
                    for i, cid in enumerate(ids)
                ],
            )
            self.grams += np.bincount(grams.indices, minlength=GRAM_BUCKETS)

    def remove(self, con: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Unindex chunks (id, retrieval text as indexed) that are about to be deleted. Their postings stay as
        dead entries (see kb.postings) until their terms' segments are merged."""
        if not rows:
            return
        self._flush(con)
        lowered = [text.lower() for _, text in rows]
        codes, _, _, lengths = self._count(lowered)
        self._removed.append(codes)
        self.length -= int(lengths.sum())
        self.words.subtract(Counter(LATIN_WORDS_3.findall("\n".join(lowered))))
        ids = [cid for cid, _ in rows]
        for part, marks in in_batches(ids):
            for (blob,) in con.execute(f"SELECT grams FROM chunk_grams WHERE chunk_id IN ({marks})", part):
                buckets, _ = unpack_grams(blob)
                np.subtract.at(self.grams, buckets.astype(np.int64), 1)
            con.execute(f"DELETE FROM chunk_grams WHERE chunk_id IN ({marks})", part)

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
        con.executemany(
            "INSERT INTO lex_words (word, n) VALUES (?, ?) ON CONFLICT(word) DO UPDATE SET n = n + excluded.n",
            [(w, d) for w, d in self.words.items() if d],
        )
        con.execute("DELETE FROM lex_words WHERE n <= 0")
        self._apply_grams(con, fresh)
        total = (0 if fresh else bm25_length(con)) + self.length
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bm25_length', ?)", (str(max(total, 0)),))
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lexicon_version', ?)", (LEXICON_VERSION,))

    def _apply_grams(self, con: sqlite3.Connection, fresh: bool) -> None:
        changed = np.flatnonzero(self.grams)
        if not len(changed):
            return
        pending = 0 if fresh else con.execute("SELECT COUNT(*) FROM lex_gram_delta").fetchone()[0]
        if fresh or pending + len(changed) > GRAM_DELTA_MAX:
            df = (np.zeros(GRAM_BUCKETS, dtype=np.int64) if fresh else char_df(con)) + self.grams
            con.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('char_df', ?)",
                (np.maximum(df, 0).astype(np.int32).tobytes(),),
            )
            con.execute("DELETE FROM lex_gram_delta")
            return
        con.executemany(
            "INSERT INTO lex_gram_delta (bucket, d) VALUES (?, ?) ON CONFLICT(bucket) DO UPDATE SET d = d + excluded.d",
            zip(changed.tolist(), self.grams[changed].tolist()),
        )
        con.execute("DELETE FROM lex_gram_delta WHERE d = 0")


def _chunk_ids(con: sqlite3.Connection) -> np.ndarray:
    return np.array([r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)


def rebuild(con: sqlite3.Connection, texts: Iterable[tuple[int, str]]) -> None:
    """Empty and refill the whole lexical index from (chunk id, retrieval text) pairs in id order."""
    con.execute("DROP TABLE IF EXISTS chunk_fts")  # the FTS5 index of lexicon versions before 7
    for table in ("lex_terms", "lex_words", "chunk_grams", "lex_postings", "lex_gram_delta"):
        con.execute(f"DELETE FROM {table}")
    con.execute("DELETE FROM meta WHERE key IN ('char_df', 'bm25_length', 'postings_seq')")
    delta = LexiconDelta()
    batch: list[tuple[int, str]] = []
    for row in texts:
        batch.append(row)
        if len(batch) >= BATCH:
            delta.add(con, batch)
            batch = []
    delta.add(con, batch)
    delta.apply(con, fresh=True)


def is_current(con: sqlite3.Connection) -> bool:
    """Whether the lexical index was written by this version's tokenisation (else it must be rebuilt)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'lexicon_version'").fetchone()
    return row is not None and row[0] == LEXICON_VERSION


def problems(con: sqlite3.Connection, chunk_ids: np.ndarray) -> list[str]:
    """What is wrong with the lexical index against the chunk rows (sorted chunk_ids): empty when sound."""
    if not len(chunk_ids):
        return []
    if not is_current(con):
        return ["the lexical index is missing or from an older version; kb check --repair rebuilds it"]
    out = []
    gram_ids = np.array([r[0] for r in con.execute("SELECT chunk_id FROM chunk_grams ORDER BY chunk_id")], dtype=np.int64)
    if not np.array_equal(gram_ids, chunk_ids):
        out.append(
            f"the lexical index covers {len(gram_ids)} chunks, not the {len(chunk_ids)} stored; "
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


def grams_of(con: sqlite3.Connection, chunk_ids: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{chunk id: (n-gram buckets, counts)} for chunk_ids."""
    out = {}
    ids = [int(i) for i in chunk_ids]
    for cid, blob in select_in(con, f"SELECT chunk_id, grams FROM chunk_grams WHERE chunk_id IN {IN_LIST}", ids):
        out[cid] = unpack_grams(blob)
    return out


def term_df(con: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
    """{term: chunks holding it} for the terms the KB holds."""
    out: dict[str, int] = {}
    distinct = list(dict.fromkeys(terms))
    out.update(select_in(con, f"SELECT term, df FROM lex_terms WHERE term IN {IN_LIST}", distinct))
    return out


def words(con: sqlite3.Connection) -> list[tuple[str, int]]:
    """Every Latin word (3+ letters) in the KB with its occurrences, alphabetically."""
    return con.execute("SELECT word, n FROM lex_words ORDER BY word").fetchall()
