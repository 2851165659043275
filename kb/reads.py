"""Reads of kb.sqlite: pure functions of an open connection, shared by the KB, its writer and its check.

Nothing here opens a connection (kb/database.py does) or writes. Functions that return many rows run one
statement, so they see one consistent version of the KB.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from kb.records import ChunkRecord, DocumentFilter, DocumentInfo, Feedback, HistoryEntry, retrieval_text
from kb.sql import IN_LIST, select_in

CHUNK_COLUMNS = (
    "c.id, c.doc_id, d.source, d.name, d.title, c.doc_version, c.ordinal, c.text, "
    "c.char_start, c.char_end, c.n_tokens, c.page, c.section, d.visibility, c.ocr_confidence, d.url"
)
DOC_COLUMNS = (
    "id, source, name, title, kind, content_hash, version, ingested_at, n_chunks, size_bytes, path, root, "
    "visibility, encoding, url, updated_at, tags"
)
_DOC_FIELDS = tuple(c.strip() for c in DOC_COLUMNS.split(","))  # DocumentInfo's field names, in DOC_COLUMNS' order


def meta(con: sqlite3.Connection, key: str) -> str | None:
    """A value of the meta table: 'token' (the committed snapshot), 'model', 'snapshot_sha256', ..."""
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def recorded_checksums(con: sqlite3.Connection, token: str) -> dict[str, str] | None:
    """{file name: SHA-256} recorded when token's snapshot was committed (None before checksums existed)."""
    value = meta(con, "snapshot_sha256")
    if value is None:
        return None
    record = json.loads(value)
    return record["files"] if record.get("token") == token else None


def vectors(con: sqlite3.Connection, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk ids (n,) int64 ascending, their stored vectors (n, dim) float32): every vector SQLite holds."""
    rows = con.execute(
        "SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.text_hash = c.text_hash ORDER BY c.id"
    ).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    out = np.zeros((len(rows), dim), dtype=np.float32)
    for i, (_, blob) in enumerate(rows):
        out[i] = np.frombuffer(blob, dtype=np.float32)
    return ids, out


def vectors_of(con: sqlite3.Connection, chunk_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """{chunk id: stored vector} for chunk_ids that exist."""
    return {
        cid: np.frombuffer(blob, dtype=np.float32)
        for cid, blob in select_in(
            con,
            f"SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.text_hash = c.text_hash WHERE c.id IN {IN_LIST}",
            [int(i) for i in chunk_ids],
        )
    }


def vectors_by_hash(con: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, np.ndarray]:
    """{text_hash: stored vector} for the hashes already embedded."""
    return {
        h: np.frombuffer(blob, dtype=np.float32)
        for h, blob in select_in(con, f"SELECT text_hash, vector FROM embeddings WHERE text_hash IN {IN_LIST}", list(hashes))
    }


def retrieval_texts(con: sqlite3.Connection, chunk_ids: Sequence[int] | None = None) -> Iterator[tuple[int, str]]:
    """(chunk id, retrieval text) of every chunk (or of chunk_ids), as the lexical index holds them."""
    query = "SELECT c.id, d.title, c.section, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id"
    if chunk_ids is None:
        for cid, title, section, text in con.execute(query + " ORDER BY c.id"):
            yield cid, retrieval_text(title, section, text)
        return
    for cid, title, section, text in select_in(con, query + f" WHERE c.id IN {IN_LIST}", [int(i) for i in chunk_ids]):
        yield cid, retrieval_text(title, section, text)


def chunk_records(con: sqlite3.Connection, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]:
    """{chunk id: record} for chunk_ids that exist."""
    return {
        row[0]: ChunkRecord(*row)
        for row in select_in(
            con,
            f"SELECT {CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN {IN_LIST}",
            [int(i) for i in chunk_ids],
        )
    }


def chunk_versions(con: sqlite3.Connection, chunk_ids: Sequence[int]) -> dict[int, tuple[str, str, int]]:
    """{chunk id: (text_hash, document source, document version)} for chunk_ids that exist."""
    return {
        int(cid): (h, source, int(version))
        for cid, h, source, version in select_in(
            con,
            "SELECT c.id, c.text_hash, d.source, d.version FROM chunks c JOIN documents d ON d.id = c.doc_id "
            f"WHERE c.id IN {IN_LIST}",
            sorted({int(i) for i in chunk_ids}),
        )
    }


def chunks_by_hash(con: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, list[tuple[int, str, int]]]:
    """{text_hash: [(chunk id, document source, document version), ...]} for the current chunks, by id."""
    out: dict[str, list[tuple[int, str, int]]] = {}
    # ORDER BY holds within a batch; a hash's chunks all come in the batch that holds the hash.
    for h, cid, source, version in select_in(
        con,
        "SELECT c.text_hash, c.id, d.source, d.version FROM chunks c JOIN documents d ON d.id = c.doc_id "
        f"WHERE c.text_hash IN {IN_LIST} ORDER BY c.id",
        list(dict.fromkeys(hashes)),
    ):
        out.setdefault(h, []).append((int(cid), source, int(version)))
    return out


def document_versions(con: sqlite3.Connection) -> dict[str, int]:
    """{source: version} of every stored document."""
    return {r[0]: int(r[1]) for r in con.execute("SELECT source, version FROM documents")}


def documents(con: sqlite3.Connection, where: DocumentFilter | None = None) -> list[DocumentInfo]:
    """Stored documents (those where allows), ordered by name."""
    clause, params = filter_sql(where)
    rows = con.execute(f"SELECT {DOC_COLUMNS} FROM documents d WHERE {clause} ORDER BY name, source", params).fetchall()
    return [_document(r) for r in rows]


def documents_named(con: sqlite3.Connection, source_or_name: str) -> list[DocumentInfo]:
    """Documents whose source is source_or_name, or else whose file name is."""
    rows = con.execute(
        f"SELECT {DOC_COLUMNS} FROM documents WHERE source = ? OR name = ?", (source_or_name, source_or_name)
    ).fetchall()
    exact = [r for r in rows if r[1] == source_or_name]
    return [_document(r) for r in exact or rows]


def chunk_ids(con: sqlite3.Connection, where: DocumentFilter | None) -> np.ndarray:
    """Sorted ids of the chunks of the documents where allows."""
    clause, params = filter_sql(where)
    rows = con.execute(
        f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {clause} ORDER BY c.id", params
    ).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def history(con: sqlite3.Connection, source_or_name: str) -> list[HistoryEntry]:
    """Every version event of a document (by source, or by a file name ending a source), oldest first."""
    rows = con.execute(
        "SELECT h.source, h.version, h.event, h.content_hash, h.n_chunks, h.at FROM history h "
        "WHERE h.source = ? OR h.source IN (SELECT source FROM history GROUP BY source "
        "HAVING source LIKE '%/' || ? ESCAPE '\\') ORDER BY h.at, h.rowid",
        # _ and % in a file name are literal characters, not LIKE wildcards.
        (source_or_name, re.sub(r"([\\%_])", r"\\\1", source_or_name)),
    ).fetchall()
    return [HistoryEntry(*r) for r in rows]


def counts(con: sqlite3.Connection) -> dict[str, Any]:
    """documents, chunks, tokens, documents_by_kind and ocr_pages [(source, page, lowest confidence)]."""
    n_docs = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    n_chunks, n_tokens = con.execute("SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM chunks").fetchone()
    by_kind = dict(con.execute("SELECT kind, COUNT(*) FROM documents GROUP BY kind").fetchall())
    ocr = con.execute(
        "SELECT d.source, c.page, MIN(c.ocr_confidence) FROM chunks c JOIN documents d "
        "ON d.id = c.doc_id WHERE c.ocr_confidence IS NOT NULL GROUP BY d.source, c.page "
        "ORDER BY d.source, c.page"
    ).fetchall()
    return {"documents": n_docs, "chunks": n_chunks, "tokens": n_tokens, "documents_by_kind": by_kind, "ocr_pages": ocr}


def feedback(con: sqlite3.Connection) -> list[Feedback]:
    rows = con.execute(
        "SELECT id, question, chunk_id, doc_source, helpful, at, by_user FROM feedback ORDER BY id"
    ).fetchall()
    return [Feedback(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]


def filter_sql(where: DocumentFilter | None) -> tuple[str, list]:
    """A SQL condition on documents d (and its parameters) for where; "1" allows everything."""
    if where is None or where.empty:
        return "1", []
    parts: list[str] = []
    params: list[str | int | float] = []
    if where.visibility is not None:
        parts.append(f"d.visibility IN ({','.join('?' * len(where.visibility))})" if where.visibility else "0")
        params += list(where.visibility)
    if where.key_prefix:
        parts.append("substr(d.source, 1, ?) = ?")
        params += [len(where.key_prefix), where.key_prefix]
    if where.kinds is not None:
        parts.append(f"d.kind IN ({','.join('?' * len(where.kinds))})" if where.kinds else "0")
        params += list(where.kinds)
    if where.tags is not None:
        parts.append(
            f"EXISTS (SELECT 1 FROM json_each(d.tags) t WHERE t.value IN ({','.join('?' * len(where.tags))}))"
            if where.tags
            else "0"
        )
        params += list(where.tags)
    if where.ingested_after is not None:
        parts.append("d.ingested_at > ?")
        params.append(float(where.ingested_after))
    return " AND ".join(parts), params


def _document(row: tuple) -> DocumentInfo:
    fields = dict(zip(_DOC_FIELDS, row, strict=True))
    fields["tags"] = tuple(json.loads(fields["tags"] or "[]"))
    return DocumentInfo(**fields)
