"""The BM25 inverted file in kb.sqlite: for each term, the chunks holding it, with its count in each and their lengths.

Table lex_postings (kb/schema.py): one row per (term, segment). A row's blob is POSTING records sorted by chunk id.
Each commit appends one segment (seg = meta 'postings_seq') for the terms of the chunks it added, so a commit
writes only its own postings. A removed chunk's postings stay behind as dead entries: readers skip ids their
snapshot lacks, and a term's segments are merged into one, dead entries dropped, once it has more than
MERGE_AT of them, so reading a term stays a few rows. Chunk ids only grow (AUTOINCREMENT) and segments are read
in seg order, so a term's postings, concatenated, are sorted by chunk id.

What a reader needs to score BM25 over every chunk, or over a question's candidates, is here: no chunk text is
read at question time.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Sequence

import numpy as np

from kb import lexical_kernels
from kb.sql import IN_LIST, select_in

# id: chunk id; tf: the term's occurrences in the chunk; dl: the chunk's BM25 length (terms less stopwords). Counts
# are clipped at 65,535, far above what a chunk of a few hundred tokens holds.
POSTING = np.dtype([("id", "<u4"), ("tf", "<u2"), ("dl", "<u2")])
MERGE_AT = 8  # segments a term may have before they are merged into one
_CLIP = 65535


class Segment:
    """Postings of the chunks one commit adds, collected batch by batch (in chunk-id order) and written at once."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []  # (term codes, POSTING records), one per batch

    def add(self, codes: np.ndarray, chunk_ids: np.ndarray, tf: np.ndarray, dl: np.ndarray) -> None:
        """Postings of one batch: term code, chunk id, count and chunk length, one entry per (term, chunk)."""
        if len(chunk_ids) and int(chunk_ids.max()) > np.iinfo(np.uint32).max:
            raise ValueError(f"chunk id {int(chunk_ids.max())} exceeds the postings' 32-bit ids")
        records = np.empty(len(codes), dtype=POSTING)
        records["id"] = chunk_ids
        records["tf"] = np.minimum(tf, _CLIP)
        records["dl"] = np.minimum(dl, _CLIP)
        self._parts.append((np.asarray(codes, dtype=np.int64), records))

    def write(self, con: sqlite3.Connection, terms: Sequence[str]) -> list[str]:
        """Insert this segment's rows (terms: code -> term) under the next segment number; returns the terms written."""
        if not self._parts:
            return []
        codes = np.concatenate([c for c, _ in self._parts])
        records = np.concatenate([r for _, r in self._parts])
        self._parts = []
        # Stable: batches came in chunk-id order, and each batch lists a term's chunks in order.
        if lexical_kernels.loaded():  # a rebuild or a big commit: one counting pass instead of a sort
            order, bounds = lexical_kernels.group_by_code(codes, len(terms))
            present = np.flatnonzero(bounds[1:] > bounds[:-1])
            records, starts, ends = records[order], bounds[present], bounds[present + 1]
            written = [terms[c] for c in present.tolist()]
        else:
            order = np.argsort(codes, kind="stable")
            codes, records = codes[order], records[order]
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, np.int64)
            ends = np.r_[starts[1:], len(codes)]
            written = [terms[int(codes[s])] for s in starts]
        seg = next_segment(con)
        con.executemany(
            "INSERT INTO lex_postings (term, seg, postings) VALUES (?, ?, ?)",
            ((term, seg, records[s:e].tobytes()) for term, s, e in zip(written, starts.tolist(), ends.tolist())),
        )
        return written


def next_segment(con: sqlite3.Connection) -> int:
    """The next segment number (kept in meta, so no scan of the table finds it)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'postings_seq'").fetchone()
    seg = int(row[0]) + 1 if row else 1
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('postings_seq', ?)", (str(seg),))
    return seg


def merge_crowded(con: sqlite3.Connection, terms: Sequence[str], live_ids: Callable[[], np.ndarray]) -> int:
    """Merge the segments of each of terms that has more than MERGE_AT into one row, dropping chunks not in
    live_ids() (sorted, read once and only if some term needs it). Returns the terms merged."""
    crowded = [
        t
        for t, n in select_in(con, f"SELECT term, COUNT(*) FROM lex_postings WHERE term IN {IN_LIST} GROUP BY term", terms)
        if n > MERGE_AT
    ]
    if not crowded:
        return 0
    live = live_ids()
    for term in crowded:
        rows = con.execute("SELECT seg, postings FROM lex_postings WHERE term = ? ORDER BY seg", (term,)).fetchall()
        records = np.concatenate([np.frombuffer(blob, dtype=POSTING) for _, blob in rows])
        records = records[_member(records["id"].astype(np.int64), live)]
        con.execute("DELETE FROM lex_postings WHERE term = ?", (term,))
        if len(records):
            con.execute(
                "INSERT INTO lex_postings (term, seg, postings) VALUES (?, ?, ?)", (term, rows[-1][0], records.tobytes())
            )
    return len(crowded)


def drop_terms(con: sqlite3.Connection, terms: Sequence[str]) -> None:
    """Delete every posting of terms (words no chunk holds any more)."""
    for part in range(0, len(terms), 500):
        batch = list(terms[part : part + 500])
        con.execute(f"DELETE FROM lex_postings WHERE term IN ({','.join('?' * len(batch))})", batch)


def read(con: sqlite3.Connection, terms: Sequence[str]) -> dict[str, np.ndarray]:
    """{term: its POSTING records, sorted by chunk id, dead entries included} for the terms the KB holds."""
    parts: dict[str, list[np.ndarray]] = {}
    sql = f"SELECT term, postings FROM lex_postings WHERE term IN {IN_LIST} ORDER BY term, seg"
    for term, blob in select_in(con, sql, list(dict.fromkeys(terms))):
        parts.setdefault(term, []).append(np.frombuffer(blob, dtype=POSTING))
    return {t: p[0] if len(p) == 1 else np.concatenate(p) for t, p in parts.items()}


def live_postings(con: sqlite3.Connection, live: np.ndarray) -> dict[str, np.ndarray]:
    """{term: POSTING records of the chunks in live (sorted ids)} over the whole table: what a rebuild would write
    (for checks and tests; reads every row)."""
    out: dict[str, list[np.ndarray]] = {}
    for term, blob in con.execute("SELECT term, postings FROM lex_postings ORDER BY term, seg"):
        out.setdefault(term, []).append(np.frombuffer(blob, dtype=POSTING))
    merged = {t: np.concatenate(p) for t, p in out.items()}
    merged = {t: r[_member(r["id"].astype(np.int64), live)] for t, r in merged.items()}
    return {t: r for t, r in merged.items() if len(r)}


def _member(ids: np.ndarray, sorted_live: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ids are in sorted_live."""
    if not len(sorted_live):
        return np.zeros(len(ids), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_live, ids), len(sorted_live) - 1)
    return sorted_live[at] == ids
