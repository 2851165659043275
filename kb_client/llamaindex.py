"""A LlamaIndex retriever over a `kb serve` (the optional llama-index-core: pip install 'hopfield-kb[llamaindex]').
Each NodeWithScore's node is a TextNode whose id is the passage's chunk id, its metadata the citation.

    >>> retriever = KBLlamaIndexRetriever(Client("http://127.0.0.1:8000", key, "support"), top_k=4)
    >>> nodes = retriever.retrieve("refund window")          # or: await retriever.aretrieve(...)
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kb_client.client import AsyncClient, Client
from kb_client.types import Hit, SearchResult

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # named with its install line, as every optional part is
    raise ImportError(
        "kb_client.llamaindex needs llama-index-core: pip install 'hopfield-kb[llamaindex]'", name=exc.name
    ) from exc


def hit_node(hit: Hit, result: SearchResult) -> NodeWithScore:
    """A hit as NodeWithScore: node id = str(chunk_id), text = the passage, metadata = the rest of the hit; score is
    None for a key scoped to some labels (the server sends none)."""
    meta = {k: v for k, v in asdict(hit).items() if k != "text"}
    meta.update(retriever=result.retriever, snapshot=result.snapshot)
    return NodeWithScore(node=TextNode(id_=str(hit.chunk_id), text=hit.text, metadata=meta), score=hit.score)


class KBLlamaIndexRetriever(BaseRetriever):
    """llama-index-core BaseRetriever over the HTTP API: client (and async_client for aretrieve; without one,
    aretrieve runs the sync client), top_k passages (None: the server's default), filters as Client.search's."""

    def __init__(
        self,
        client: Client,
        top_k: int | None = None,
        filters: dict[str, Any] | None = None,
        async_client: AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.async_client = async_client
        self.top_k = top_k
        self.filters = filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self.client.search(query_bundle.query_str, k=self.top_k, filters=self.filters)
        return [hit_node(h, result) for h in result.hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.async_client is None:
            return self._retrieve(query_bundle)
        result = await self.async_client.search(query_bundle.query_str, k=self.top_k, filters=self.filters)
        return [hit_node(h, result) for h in result.hits]
