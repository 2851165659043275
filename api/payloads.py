"""What the API sends besides retriever's hits, citations and answers (retriever/serialize.py): documents, the
messages of a request as history turns, and answers as server-sent events."""

from __future__ import annotations

import json
import re
from typing import Iterator

from kb import web_url
from retriever import Answer, answer_dict, citation_dict

_PIECE = re.compile(r".*?\[\d+\]\s*|.+$", re.S)


def history_turns(messages) -> list[dict]:
    """[{"role", "content"}] of request messages (pydantic models), for retriever.parse_history."""
    return [{"role": m.role, "content": m.content} for m in messages]


def document_payload(d) -> dict:
    """A kb.DocumentInfo as api.schemas.DocumentOut."""
    return {
        "key": d.source,
        "name": d.name,
        "title": d.title,
        "kind": d.kind,
        "version": d.version,
        "ingested_at": d.ingested_at,
        "chunks": d.n_chunks,
        "size_bytes": d.size_bytes,
        "visibility": d.visibility,
        "tags": list(d.tags),
        "url": web_url(d.url),
        "updated_at": d.updated_at,
    }


def sse(event: str, data) -> str:
    """One server-sent event: its name and a JSON payload."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def answer_pieces(text: str) -> list[str]:
    """The answer text cut after each [n] marker: the sentences a stream sends one by one."""
    return [p for p in _PIECE.findall(text) if p.strip()] or [text]


def stream_answer(ans: Answer, scoped: bool = False) -> Iterator[str]:
    """The answer as server-sent events: one sentence per event (ending in its [n]), then the citations, then done
    (the answer's JSON without its citations)."""
    for piece in answer_pieces(ans.text):
        yield sse("sentence", {"text": piece.strip()})
    yield sse("citations", [citation_dict(c) for c in ans.citations])
    yield sse("done", {k: v for k, v in answer_dict(ans, scoped).items() if k not in ("citations",)})
