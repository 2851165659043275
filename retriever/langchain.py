"""A LangChain retriever over any of our retrievers, for use inside runnable chains.

    >>> lc = KBLangChainRetriever(retriever=make_retriever("hopfield", KnowledgeBase("kb_data")))
    >>> docs = lc.invoke("refund policy for annual plans")   # list[langchain_core.documents.Document]
    >>> docs = await lc.ainvoke("refund policy", k=2)          # k per call; async runs in a worker thread

With a conversation: history_aware(lc) takes the {"input", "chat_history"} dict that LangChain's
history-aware retrievers take (create_retrieval_chain passes it), and reads the follow-up with the chat
history (retriever.conversation) instead of asking an LLM to rewrite it:

    >>> chain = history_aware(lc)
    >>> chain.invoke({"input": "and for annual plans?",
    ...               "chat_history": [HumanMessage("How long is the refund window?"), AIMessage("14 days [1]")]})
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict

from retriever.base import Retriever
from retriever.conversation import parse_history
from retriever.results import SearchResult


def to_documents(result: SearchResult) -> list[Document]:
    """One Document per hit: id is the chunk's stable id (as text), page_content its text; metadata says where
    it came from."""
    diag = result.diagnostics
    docs = []
    for hit in result.hits:
        c = hit.chunk
        meta = {
            "chunk_id": c.id,
            "doc_id": c.doc_id,
            "source": c.doc_source,
            "name": c.doc_name,
            "title": c.doc_title,
            "version": c.doc_version,
            "page": c.page,
            "section": c.section,
            "char_start": c.char_start,
            "char_end": c.char_end,
            "score": hit.score,
            "rank": hit.rank,
            "retriever": result.retriever,
        }
        if diag is not None:
            meta.update(
                beta=diag.beta, steps=diag.steps, converged=diag.converged, entropy=diag.entropy, query_used=diag.query_used
            )
        docs.append(Document(id=str(c.id), page_content=c.text, metadata=meta))
    return docs


class KBLangChainRetriever(BaseRetriever):
    """langchain-core BaseRetriever wrapping a hopfield-kb Retriever; k: documents returned (None = its top_k),
    or per call: invoke(query, k=3)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return to_documents(self.retriever.search(query, k or self.k))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        # The search is CPU-bound numpy/FAISS work: a worker thread keeps the event loop free.
        return to_documents(await asyncio.to_thread(self.retriever.search, query, k or self.k))

    def with_history(self, question: str, chat_history: list) -> list[Document]:
        """Documents for question read as a follow-up of chat_history (messages or (role, text) pairs)."""
        return to_documents(self.retriever.search(question, self.k, history=parse_history(_turns(chat_history))))


_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}


def _turns(chat_history: list) -> list[dict]:
    """LangChain messages, ("human", text) pairs or {"role", "content"} dicts as [{"role", "content"}]."""
    out = []
    role: Any  # checked below: a known role and text
    content: Any
    for m in chat_history or ():
        if isinstance(m, BaseMessage):
            role, content = m.type, m.content
        elif isinstance(m, (tuple, list)) and len(m) == 2:
            role, content = m
        elif isinstance(m, dict):
            role, content = m.get("role"), m.get("content")
        else:
            raise TypeError(f"chat_history holds a {type(m).__name__}; give messages, (role, text) pairs or dicts")
        if isinstance(content, list):  # content blocks: keep the text ones
            content = " ".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
        if role in _ROLES and isinstance(content, str):
            out.append({"role": _ROLES[role], "content": content})
    return out


def history_aware(retriever: KBLangChainRetriever) -> Runnable:
    """A runnable {"input": str, "chat_history": [...]} -> list[Document]: the contract of LangChain's
    history-aware retrievers (create_history_aware_retriever), so create_retrieval_chain can use it."""
    return RunnableLambda(
        lambda x: retriever.with_history(x["input"], x.get("chat_history") or []), name="KBHistoryAwareRetriever"
    )
