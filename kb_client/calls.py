"""What each client method sends and how a reply becomes a result: shared by Client and AsyncClient, which only
do the I/O. Arguments left None are not sent, so the server's defaults (and limits) stay the one source."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from kb_client.errors import KBClientError, error_for
from kb_client.types import Answer, Sentence

DEFAULT_TIMEOUT = 60.0  # seconds, for each of connecting, sending and every wait for the reply (or a streamed piece)

# A conversation: {"role", "content"} mappings or (role, content) pairs, oldest first.
History = Sequence[Mapping[str, str] | tuple[str, str]]


@dataclass(frozen=True)
class Call:
    """One HTTP request: method, path under the base URL, JSON body and query parameters."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _history(history: History | None) -> list[dict[str, str]] | None:
    if history is None:
        return None
    out = []
    for m in history:
        role, content = (m["role"], m["content"]) if isinstance(m, Mapping) else m
        out.append({"role": role, "content": content})
    return out


class Calls:
    """The requests of the API's routes for one default collection."""

    def __init__(self, collection: str) -> None:
        self.collection = collection

    def _base(self, collection: str | None) -> str:
        return f"/v1/collections/{quote(collection or self.collection, safe='')}"

    def search(
        self,
        query: str,
        collection: str | None,
        k: int | None,
        history: History | None,
        filters: Mapping[str, Any] | None,
        retriever: str | None,
    ) -> Call:
        body = _given(query=query, k=k, history=_history(history), filters=filters, retriever=retriever)
        return Call("POST", self._base(collection) + "/search", body)

    def ask(
        self,
        question: str,
        collection: str | None,
        k: int | None,
        history: History | None,
        filters: Mapping[str, Any] | None,
        retriever: str | None,
        stream: bool = False,
    ) -> Call:
        body = _given(question=question, k=k, history=_history(history), filters=filters, retriever=retriever)
        return Call("POST", self._base(collection) + "/ask", {**body, "stream": stream})

    def documents(self, collection: str | None, key_prefix: str | None) -> Call:
        return Call("GET", self._base(collection) + "/documents", params=_given(key_prefix=key_prefix))

    def document(self, key: str, collection: str | None, text: bool) -> Call:
        return Call("GET", f"{self._base(collection)}/documents/{quote(key, safe='/')}", params={"text": text})

    def collections(self) -> Call:
        return Call("GET", "/v1/collections")

    def feedback(self, question: str, chunk_id: int | None, helpful: bool, collection: str | None) -> Call:
        body = _given(question=question, chunk_id=chunk_id, helpful=helpful)
        return Call("POST", self._base(collection) + "/feedback", body)


def refusal(status: int, body: bytes, retry_after: str | None) -> KBClientError:
    """The exception for a reply with status >= 400: the server's {"detail": message}, or its first 500 bytes."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    message = detail if isinstance(detail, str) else body[:500].decode("utf-8", "replace") or f"HTTP {status}"
    return error_for(status, message, retry_after)


def json_body(status: int, body: bytes) -> Any:
    """A reply's JSON; KBClientError when it is not JSON (a proxy's page, say)."""
    try:
        return json.loads(body)
    except ValueError:
        raise KBClientError(f"the reply is not JSON: {body[:200]!r}", status) from None


class AnswerStream:
    """Server-sent events of /ask (stream: true) to Sentence values, then the Answer: feed() each line of the reply.

    The server sends `sentence` events ({"text"}), one `citations` event (the list) and a `done` event (the answer's
    JSON without its citations)."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._citations: list[dict] = []

    def feed(self, line: str) -> Sentence | Answer | None:
        """The value a complete event makes (at its blank line), else None."""
        if line.startswith("event:"):
            self._event = line[6:].strip()
        elif line.startswith("data:"):
            self._data.append(line[5:].strip())
        elif not line.strip() and self._data:
            event, data = self._event, json.loads("\n".join(self._data))
            self._event, self._data = "message", []
            if event == "sentence":
                return Sentence(data["text"])
            if event == "citations":
                self._citations = data
            elif event == "done":
                return Answer.from_json({**data, "citations": self._citations})
        return None
