"""kb_client: a typed Python client for the HTTP API of hopfield-kb's `kb serve`, shipped on its own (it imports
nothing from the rest of the project; httpx is its one requirement).

Public surface:
    Client, AsyncClient                      search, ask, ask_stream (Sentence..., then the Answer), documents,
                                             document, collections, feedback; every request under a timeout
    SearchResult, Hit, Answer, Citation, HistoryUsed, Document, Collection, Sentence
                                             the replies, as frozen dataclasses (the server's JSON, field for field)
    KBClientError and its kin                every refusal, with .status and the server's .message
    kb_client.langchain.KBRetriever          a LangChain retriever (langchain-core)
    kb_client.llamaindex.KBLlamaIndexRetriever   a LlamaIndex retriever (llama-index-core, the [llamaindex] extra)
"""

from kb_client.calls import DEFAULT_TIMEOUT
from kb_client.client import AsyncClient, Client
from kb_client.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    KBClientError,
    KBConnectionError,
    NotFound,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
)
from kb_client.types import Answer, Citation, Collection, Document, HistoryUsed, Hit, SearchResult, Sentence

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "KBClientError",
    "KBConnectionError",
    "NotFound",
    "RateLimited",
    "ServerError",
    "TooLarge",
    "Unauthorized",
    "Answer",
    "Citation",
    "Collection",
    "Document",
    "HistoryUsed",
    "Hit",
    "SearchResult",
    "Sentence",
]
