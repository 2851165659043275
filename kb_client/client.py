"""Client and AsyncClient: the HTTP API of a `kb serve`, typed (kb_client.types), with every request under a timeout
and every refusal raised as a KBClientError subclass carrying the server's message.

    >>> with Client("http://127.0.0.1:8000", api_key, collection="support") as kb:
    ...     answer = kb.ask("How long is the refund window?")
    ...     print(answer.text, [c.document for c in answer.citations])
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator, Mapping

import httpx

from kb_client.calls import DEFAULT_TIMEOUT, AnswerStream, Call, Calls, History, json_body, refusal
from kb_client.errors import KBClientError, KBConnectionError
from kb_client.types import Answer, Collection, Document, SearchResult, Sentence


def _options(base_url: str, api_key: str, timeout: float, headers: Mapping[str, str] | None) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "headers": {**(headers or {}), "Authorization": f"Bearer {api_key}"},
        "timeout": httpx.Timeout(timeout),
        "follow_redirects": False,  # a redirect elsewhere would carry the key with it
    }


def _request(http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    return http.build_request(call.method, call.path, json=call.body, params=call.params)


class Client:
    """The API of the server at base_url, with api_key, acting on collection unless a call names another.
    timeout: seconds for each of connecting, sending and every wait for the reply; transport: an httpx transport."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        collection: str = "default",
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.calls = Calls(collection)
        self.http = httpx.Client(**_options(base_url, api_key, timeout, headers), transport=transport)

    def _json(self, call: Call) -> Any:
        try:
            reply = self.http.send(_request(self.http, call))
        except httpx.TransportError as exc:
            raise KBConnectionError(f"no reply from {self.http.base_url}: {exc}") from exc
        if reply.status_code >= 400:
            raise refusal(reply.status_code, reply.content, reply.headers.get("retry-after"))
        return json_body(reply.status_code, reply.content)

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        collection: str | None = None,
        history: History | None = None,
        filters: Mapping[str, Any] | None = None,
        retriever: str | None = None,
    ) -> SearchResult:
        """Passages for query, best first (k of them; the server's default when None); history: the conversation
        before it; filters: key_prefix, kinds, tags, visibility, ingested_after (see the API docs)."""
        return SearchResult.from_json(self._json(self.calls.search(query, collection, k, history, filters, retriever)))

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        collection: str | None = None,
        history: History | None = None,
        filters: Mapping[str, Any] | None = None,
        retriever: str | None = None,
    ) -> Answer:
        """A cited answer to question (read as a follow-up of history when given), or an abstention."""
        return Answer.from_json(self._json(self.calls.ask(question, collection, k, history, filters, retriever)))

    def ask_stream(
        self,
        question: str,
        *,
        k: int | None = None,
        collection: str | None = None,
        history: History | None = None,
        filters: Mapping[str, Any] | None = None,
        retriever: str | None = None,
    ) -> Iterator[Sentence | Answer]:
        """The answer as it streams: each Sentence, then the whole Answer (with its citations) last."""
        call = self.calls.ask(question, collection, k, history, filters, retriever, stream=True)
        events = AnswerStream()
        try:
            with self.http.stream(call.method, call.path, json=call.body) as reply:
                if reply.status_code >= 400:
                    raise refusal(reply.status_code, reply.read(), reply.headers.get("retry-after"))
                for line in reply.iter_lines():
                    value = events.feed(line)
                    if value is not None:
                        yield value
                        if isinstance(value, Answer):
                            return
        except httpx.TransportError as exc:
            raise KBConnectionError(f"the answer stream from {self.http.base_url} broke: {exc}") from exc
        raise KBClientError("the answer stream ended before its done event")

    def documents(self, *, collection: str | None = None, key_prefix: str | None = None) -> list[Document]:
        """The documents the key may see, by key (those under key_prefix when given)."""
        return [Document.from_json(d) for d in self._json(self.calls.documents(collection, key_prefix))]

    def document(self, key: str, *, collection: str | None = None, text: bool = False) -> Document:
        """The document with this key (its full text too when text); NotFound when the key may not see it."""
        return Document.from_json(self._json(self.calls.document(key, collection, text)))

    def collections(self) -> list[Collection]:
        """The collections the key may use."""
        return [Collection.from_json(c) for c in self._json(self.calls.collections())]

    def feedback(self, question: str, *, helpful: bool, chunk_id: int | None = None, collection: str | None = None) -> int:
        """A thumbs up or down on an answer's cited passage; the stored feedback's id."""
        return int(self._json(self.calls.feedback(question, chunk_id, helpful, collection))["id"])

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """Client's async twin (httpx.AsyncClient underneath): the same methods, awaited; ask_stream is an async
    iterator."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        collection: str = "default",
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.calls = Calls(collection)
        self.http = httpx.AsyncClient(**_options(base_url, api_key, timeout, headers), transport=transport)

    async def _json(self, call: Call) -> Any:
        try:
            reply = await self.http.send(_request(self.http, call))
        except httpx.TransportError as exc:
            raise KBConnectionError(f"no reply from {self.http.base_url}: {exc}") from exc
        if reply.status_code >= 400:
            raise refusal(reply.status_code, reply.content, reply.headers.get("retry-after"))
        return json_body(reply.status_code, reply.content)

    async def search(
        self,
        query: str,
        *,
        k: int | None = None,
        collection: str | None = None,
        history: History | None = None,
        filters: Mapping[str, Any] | None = None,
        retriever: str | None = None,
    ) -> SearchResult:
        """See Client.search."""
        return SearchResult.from_json(await self._json(self.calls.search(query, collection, k, history, filters, retriever)))

    async def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        collection: str | None = None,
        history: History | None = None,
        filters: Mapping[str, Any] | None = None,
        retriever: str | None = None,
    ) -> Answer:
        """See Client.ask."""
        return Answer.from_json(await self._json(self.calls.ask(question, collection, k, history, filters, retriever)))

    async def ask_stream(
        self,
        question: str,
        *,
        k: int | None = None,
        collection: str | None = None,
        history: History | None = None,
        filters: Mapping[str, Any] | None = None,
        retriever: str | None = None,
    ) -> AsyncIterator[Sentence | Answer]:
        """See Client.ask_stream."""
        call = self.calls.ask(question, collection, k, history, filters, retriever, stream=True)
        events = AnswerStream()
        try:
            async with self.http.stream(call.method, call.path, json=call.body) as reply:
                if reply.status_code >= 400:
                    raise refusal(reply.status_code, await reply.aread(), reply.headers.get("retry-after"))
                async for line in reply.aiter_lines():
                    value = events.feed(line)
                    if value is not None:
                        yield value
                        if isinstance(value, Answer):
                            return
        except httpx.TransportError as exc:
            raise KBConnectionError(f"the answer stream from {self.http.base_url} broke: {exc}") from exc
        raise KBClientError("the answer stream ended before its done event")

    async def documents(self, *, collection: str | None = None, key_prefix: str | None = None) -> list[Document]:
        """See Client.documents."""
        return [Document.from_json(d) for d in await self._json(self.calls.documents(collection, key_prefix))]

    async def document(self, key: str, *, collection: str | None = None, text: bool = False) -> Document:
        """See Client.document."""
        return Document.from_json(await self._json(self.calls.document(key, collection, text)))

    async def collections(self) -> list[Collection]:
        """See Client.collections."""
        return [Collection.from_json(c) for c in await self._json(self.calls.collections())]

    async def feedback(
        self, question: str, *, helpful: bool, chunk_id: int | None = None, collection: str | None = None
    ) -> int:
        """See Client.feedback."""
        return int((await self._json(self.calls.feedback(question, chunk_id, helpful, collection)))["id"])

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
