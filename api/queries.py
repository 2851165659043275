"""What a reader asks of a collection, for every front door: the HTTP routes (api/routes/) and the MCP tools
(api/mcp_server.py) call these, so a search, an answer or a document is found, scoped and shaped in one place.

Each takes a Caller already acting on its collection (Caller.use: the key's collection and role checked) and a
validated request model from api/schemas.py (its limits applied); the key's visibility scope applies inside.
Replies are retriever/serialize.py's JSON shapes and api.payloads.document_payload.
"""

from __future__ import annotations

from api.auth import Caller
from api.payloads import document_payload, history_turns
from api.schemas import AskRequest, Filters, SearchRequest
from retriever import Answer, AnswerConfig, answer, log_answer, parse_history, search_dict


def search(caller: Caller, body: SearchRequest) -> dict:
    """Passages for body.query, best first, as SearchDict (no scores for a key scoped to some labels)."""
    retriever = caller.services.collections.retriever(
        caller.collection_name, body.retriever, body.k, body.candidates, body.beta
    )
    result = retriever.search(
        body.query, body.k, where=caller.filter(body.filters), history=parse_history(history_turns(body.history))
    )
    return search_dict(result, caller.scoped)


def ask(caller: Caller, body: AskRequest) -> Answer:
    """The cited answer to body.question (read with body.history), from documents the key may see; not yet logged
    (log() it once the reply is on its way: a sync holding the write lock must not delay the answer)."""
    return answer_question(caller, body.question, history_turns(body.history), body.retriever, body.k, body.filters)


def answer_question(
    caller: Caller,
    question: str,
    history: list[dict],
    retriever: str = "hopfield",
    k: int = 5,
    filters: Filters | None = None,
) -> Answer:
    """The cited answer to question after history ([{"role", "content"}], oldest first), by the named retriever
    over k passages, from documents filters and the key's scope allow: what /ask and /v1/chat/completions answer."""
    reader = caller.services.collections.retriever(caller.collection_name, retriever, k)
    return answer(question, reader, AnswerConfig(), where=caller.filter(filters), history=history)


def log(caller: Caller, ans: Answer) -> None:
    """ans into the collection's question log, asked by the caller's key, with the question's vector from the
    collection's retriever (one embedder per model per process: the vector the answer made, from its cache)."""
    retriever = caller.services.collections.retriever(caller.collection_name, "hopfield", 5)
    log_answer(caller.kb, ans, by=caller.asker, collection=caller.collection_name, retriever=retriever)


def documents(caller: Caller, key_prefix: str | None = None) -> list[dict]:
    """The documents the key may see (under key_prefix when given), as api.schemas.DocumentOut."""
    return [document_payload(d) for d in caller.kb.documents(caller.where(key_prefix))]


def document(caller: Caller, doc_key: str, text: bool = False) -> dict:
    """The document doc_key as DocumentOut, with its full "text" when asked; 404 when the key may not see it."""
    doc = caller.document(doc_key)
    out = document_payload(doc)
    if text:
        out["text"] = caller.kb.document_text(doc.id)
    return out
