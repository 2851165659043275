"""Maintenance and reads of the lexical index in kb.sqlite (see kb.lexicon for what it holds and why).

The writer calls LexiconDelta inside its commit transaction: add() for inserted chunks, remove()
for deleted ones (before their rows go), apply() once at the end. Reads take an open connection.
Its tables (chunk_fts, lex_terms, lex_words, chunk_grams) are declared in kb/schema.py.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from kb.lexicon import (
    GRAM_BUCKETS,
    LEXICON_VERSION,
    char_grams,
    fts_query,
    latin_words,
    pack_grams,
    stopwords,
    unpack_grams,
    word_terms,
)
from kb.sql import IN_LIST, in_batches, select_in

BATCH = 512


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """(every word token, the BM25 terms among them) of text: one tokenisation for all the counts. FTS5
    indexes the BM25 terms only, so a chunk's length there is what BM25 counts (stopwords would lengthen
    every chunk alike and blur the length normalisation)."""
    terms = word_terms(text)
    stop = stopwords()
    return terms, [t for t in terms if t not in stop]


class LexiconDelta:
    """What one commit changes in the lexical index; apply() writes the document-frequency changes."""

    def __init__(self) -> None:
        self.terms: Counter[str] = Counter()
        self.words: Counter[str] = Counter()
        self.grams = np.zeros(GRAM_BUCKETS, dtype=np.int64)
        self.length = 0  # BM25 tokens added minus removed (for the average chunk length)
        self._pending: list[tuple[int, str]] = []

    def add(self, con: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Index chunks (id, retrieval text) that were just inserted (in batches: documents are often small)."""
        self._pending.extend(rows)
        if len(self._pending) >= BATCH:
            self._flush(con)

    def _flush(self, con: sqlite3.Connection) -> None:
        rows, self._pending = self._pending, []
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            grams = char_grams([text for _, text in part])
            cut = grams.indptr
            bodies = []
            for _, text in part:
                terms, kept = _tokens(text)
                self.terms.update(set(terms))
                self.words.update(latin_words(text))
                self.length += len(kept)
                bodies.append(" ".join(kept))
            con.executemany(
                "INSERT INTO chunk_fts (rowid, body) VALUES (?, ?)", [(cid, body) for (cid, _), body in zip(part, bodies)]
            )
            con.executemany(
                "INSERT OR REPLACE INTO chunk_grams (chunk_id, grams) VALUES (?, ?)",
                [
                    (cid, pack_grams(grams.indices[cut[i] : cut[i + 1]], grams.data[cut[i] : cut[i + 1]]))
                    for i, (cid, _) in enumerate(part)
                ],
            )
            self.grams += np.bincount(grams.indices, minlength=GRAM_BUCKETS)

    def remove(self, con: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Unindex chunks (id, retrieval text as indexed) that are about to be deleted."""
        if not rows:
            return
        self._flush(con)
        bodies = []
        for _, text in rows:
            terms, kept = _tokens(text)
            self.terms.subtract(set(terms))
            self.words.subtract(latin_words(text))
            self.length -= len(kept)
            bodies.append(" ".join(kept))
        con.executemany(
            "INSERT INTO chunk_fts (chunk_fts, rowid, body) VALUES ('delete', ?, ?)",
            [(cid, body) for (cid, _), body in zip(rows, bodies)],
        )
        ids = [cid for cid, _ in rows]
        for part, marks in in_batches(ids):
            for (blob,) in con.execute(f"SELECT grams FROM chunk_grams WHERE chunk_id IN ({marks})", part):
                buckets, _ = unpack_grams(blob)
                np.subtract.at(self.grams, buckets.astype(np.int64), 1)
            con.execute(f"DELETE FROM chunk_grams WHERE chunk_id IN ({marks})", part)

    def apply(self, con: sqlite3.Connection) -> None:
        """Write the accumulated document-frequency changes (terms and character n-gram buckets)."""
        self._flush(con)
        changed = [(t, d) for t, d in self.terms.items() if d]
        con.executemany(
            "INSERT INTO lex_terms (term, df) VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET df = df + excluded.df", changed
        )
        con.execute("DELETE FROM lex_terms WHERE df <= 0")
        con.executemany(
            "INSERT INTO lex_words (word, n) VALUES (?, ?) ON CONFLICT(word) DO UPDATE SET n = n + excluded.n",
            [(w, d) for w, d in self.words.items() if d],
        )
        con.execute("DELETE FROM lex_words WHERE n <= 0")
        if self.grams.any():
            df = char_df(con) + self.grams
            con.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('char_df', ?)",
                (np.maximum(df, 0).astype(np.int32).tobytes(),),
            )
        total = bm25_length(con) + self.length
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bm25_length', ?)", (str(max(total, 0)),))
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lexicon_version', ?)", (LEXICON_VERSION,))


def rebuild(con: sqlite3.Connection, texts: Iterable[tuple[int, str]]) -> None:
    """Empty and refill the whole lexical index from (chunk id, retrieval text) pairs."""
    con.execute("INSERT INTO chunk_fts (chunk_fts) VALUES ('delete-all')")
    con.execute("DELETE FROM lex_terms")
    con.execute("DELETE FROM lex_words")
    con.execute("DELETE FROM chunk_grams")
    con.execute("DELETE FROM meta WHERE key IN ('char_df', 'bm25_length')")
    delta = LexiconDelta()
    batch: list[tuple[int, str]] = []
    for row in texts:
        batch.append(row)
        if len(batch) >= BATCH:
            delta.add(con, batch)
            batch = []
    delta.add(con, batch)
    delta.apply(con)


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
    n_fts = con.execute("SELECT COUNT(*) FROM chunk_fts").fetchone()[0]
    if n_fts != len(chunk_ids):
        out.append(f"the BM25 index holds {n_fts} chunks, not the {len(chunk_ids)} stored; kb check --repair rebuilds it")
    return out


# ---- reads -------------------------------------------------------------------------------------
def bm25_length(con: sqlite3.Connection) -> int:
    """BM25 tokens in all chunks together (their average is what BM25 normalises chunk length by)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'bm25_length'").fetchone()
    return int(row[0]) if row else 0


def char_df(con: sqlite3.Connection) -> np.ndarray:
    """Chunks holding each character n-gram bucket: (GRAM_BUCKETS,) int64 (zeros for an empty KB)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'char_df'").fetchone()
    if row is None:
        return np.zeros(GRAM_BUCKETS, dtype=np.int64)
    return np.frombuffer(row[0], dtype=np.int32).astype(np.int64)


def bm25_top(con: sqlite3.Connection, terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk ids, BM25 scores) of the k best chunks for any of terms, best first (FTS5's bm25, negated)."""
    query = fts_query(terms)
    if query is None or k < 1:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    rows = con.execute(
        "SELECT rowid, bm25(chunk_fts) FROM chunk_fts WHERE chunk_fts MATCH ? ORDER BY rank LIMIT ?", (query, int(k))
    ).fetchall()
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([-r[1] for r in rows], dtype=np.float32))


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
