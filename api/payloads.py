"""What the API sends: hits, citations, answers and documents as plain JSON values, and answers as events."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Iterator

from api.keys import ApiKey
from api.schemas import Filters
from kb import DocumentFilter, web_url

_PIECE = re.compile(r".*?\[\d+\]\s*|.+$", re.S)


def request_filter(key: ApiKey, filters: Filters | None) -> DocumentFilter:
    """The request's filters narrowed to what the key may see (its visibility scope always applies)."""
    filters = filters or Filters()
    allowed = key.visible()
    visibility = tuple(filters.visibility) if filters.visibility is not None else None
    if allowed is not None:
        visibility = tuple(v for v in (allowed if visibility is None else visibility) if v in allowed)
    return DocumentFilter(visibility=visibility, key_prefix=filters.key_prefix or None,
                          kinds=tuple(filters.kinds) if filters.kinds is not None else None,
                          tags=tuple(filters.tags) if filters.tags is not None else None,
                          ingested_after=filters.ingested_after)


def hit_payload(h, scoped: bool = False) -> dict:
    """A hit as JSON; scoped (a key that may not see every label): no score, since BM25's word statistics and
    the character gate are computed over every chunk, so a score would move with documents the key cannot see."""
    c = h.chunk
    return {"rank": h.rank, "score": None if scoped else round(float(h.score), 6), "chunk_id": c.id,
            "document": c.doc_source,
            "name": c.doc_name, "title": c.doc_title, "version": c.doc_version, "visibility": c.doc_visibility,
            "page": c.page, "section": c.section, "char_start": c.char_start, "char_end": c.char_end, "text": c.text,
            "ocr_confidence": c.ocr_confidence, "url": web_url(c.doc_url)}


def citation_payload(c) -> dict:
    return {"n": c.n, "chunk_id": c.chunk_id, "document": c.doc_source, "name": c.doc_name, "title": c.doc_title,
            "version": c.doc_version, "page": c.page, "section": c.section, "start": c.start, "end": c.end,
            "quote": c.quote, "ocr_confidence": c.chunk.ocr_confidence, "url": web_url(c.chunk.doc_url)}


# What a key scoped to some labels gets of the reader's diagnostics: only what is computed from documents it may
# see. Repairs, garble and the character gate come from the vocabulary of the whole KB (a made-up word and a word
# found only in internal documents differ there), the energy trace and entropy follow the gate, and the memory's
# suggestions come from earlier questions of other keys: all are left out.
SCOPED_DIAGNOSTICS = ("beta", "candidates")


def diagnostics_payload(result, key: ApiKey) -> dict | None:
    d = result.diagnostics
    if d is None:
        return None
    out = asdict(d)
    if not key.sees_everything:
        out = {k: v for k, v in out.items() if k in SCOPED_DIAGNOSTICS}
    return out


def answer_payload(ans, scoped: bool = False) -> dict:
    """The answer as JSON; scoped: no evidence figure and no passage scores (see hit_payload)."""
    return {"question": ans.question, "answer": ans.text, "abstained": ans.abstained,
            "evidence": None if scoped else round(float(ans.evidence), 4), "threshold": ans.threshold,
            "snapshot": ans.search.snapshot,
            "citations": [citation_payload(c) for c in ans.citations],
            "closest": [hit_payload(h, scoped) for h in ans.closest],
            "notes": list(ans.notes), "seconds": round(ans.seconds, 4), "history_used": history_payload(ans.search)}


def history_payload(result) -> dict | None:
    """What a follow-up read of its conversation (the caller's own messages and weights: nothing of the KB's
    that the key could not see, since earlier turns were ranked under the same filter)."""
    used = result.history
    if used is None:
        return None
    return {"turns": [{"role": r, "content": c} for r, c in used.turns], "gate": used.gate,
            "views": [{"text": t, "weight": w} for t, w in used.views], "visited": used.visited,
            "visited_weight": used.visited_weight, "new_topic": used.new_topic}


def history_turns(messages) -> list[dict]:
    """[{"role", "content"}] of request messages (pydantic models), for retriever.parse_history."""
    return [{"role": m.role, "content": m.content} for m in messages]


def document_payload(d) -> dict:
    return {"key": d.source, "name": d.name, "title": d.title, "kind": d.kind, "version": d.version,
            "ingested_at": d.ingested_at, "chunks": d.n_chunks, "size_bytes": d.size_bytes,
            "visibility": d.visibility, "tags": list(d.tags), "url": web_url(d.url), "updated_at": d.updated_at}


def sse(event: str, data) -> str:
    """One server-sent event: its name and a JSON payload."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def answer_pieces(text: str) -> list[str]:
    """The answer text cut after each [n] marker: the sentences a stream sends one by one."""
    return [p for p in _PIECE.findall(text) if p.strip()] or [text]


def stream_answer(ans, scoped: bool = False) -> Iterator[str]:
    """The answer as server-sent events: one sentence per event (ending in its [n]), then the citations, then done."""
    for piece in answer_pieces(ans.text):
        yield sse("sentence", {"text": piece.strip()})
    yield sse("citations", [citation_payload(c) for c in ans.citations])
    yield sse("done", {k: v for k, v in answer_payload(ans, scoped).items() if k not in ("citations",)})
