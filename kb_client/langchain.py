"""A LangChain retriever over a `kb serve` (langchain-core): k per call, native async, and each Document's id is the
passage's chunk id, its metadata the citation (document key, name, title, version, page or section, span, score).

    >>> retriever = KBRetriever(base_url="http://127.0.0.1:8000", api_key=key, collection="support", k=4)
    >>> docs = retriever.invoke("refund window", k=2)          # or: await retriever.ainvoke(...)
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr, SecretStr

from kb_client.calls import DEFAULT_TIMEOUT
from kb_client.client import AsyncClient, Client
from kb_client.types import Hit, SearchResult


def hit_document(hit: Hit, result: SearchResult) -> Document:
    """A hit as a Document: id = str(chunk_id), page_content = the passage, metadata = the rest of the hit."""
    meta = {k: v for k, v in asdict(hit).items() if k != "text"}
    meta.update(source=hit.document, retriever=result.retriever, snapshot=result.snapshot)
    return Document(id=str(hit.chunk_id), page_content=hit.text, metadata=meta)


class KBRetriever(BaseRetriever):
    """langchain-core BaseRetriever over the HTTP API. k: passages per query (None: the server's default), or per
    call: invoke(query, k=3); filters: as Client.search's; timeout: seconds per request."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str
    api_key: SecretStr
    collection: str = "default"
    k: int | None = None
    filters: dict[str, Any] | None = None
    timeout: float = DEFAULT_TIMEOUT
    _client: Client | None = PrivateAttr(default=None)
    _async_client: AsyncClient | None = PrivateAttr(default=None)

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.base_url, self.api_key.get_secret_value(), self.collection, self.timeout)
        return self._client

    def async_client(self) -> AsyncClient:
        # One per retriever: an httpx.AsyncClient belongs to the event loop it first ran on, so use a retriever
        # within one loop (as a LangChain app does).
        if self._async_client is None:
            self._async_client = AsyncClient(self.base_url, self.api_key.get_secret_value(), self.collection, self.timeout)
        return self._async_client

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        result = self.client().search(query, k=k or self.k, filters=self.filters)
        return [hit_document(h, result) for h in result.hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        result = await self.async_client().search(query, k=k or self.k, filters=self.filters)
        return [hit_document(h, result) for h in result.hits]
