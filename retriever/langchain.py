"""A LangChain retriever over any of our retrievers, for use inside runnable chains.

    >>> lc = KBLangChainRetriever(retriever=make_retriever("hopfield", KnowledgeBase("kb_data")))
    >>> docs = lc.invoke("refund policy for annual plans")   # list[langchain_core.documents.Document]
"""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from retriever.base import Retriever
from retriever.results import SearchResult


def to_documents(result: SearchResult) -> list[Document]:
    """One Document per hit: page_content is the chunk text; metadata says where it came from."""
    diag = result.diagnostics
    docs = []
    for hit in result.hits:
        c = hit.chunk
        meta = {
            "chunk_id": c.id, "doc_id": c.doc_id, "source": c.doc_source, "name": c.doc_name, "title": c.doc_title,
            "version": c.doc_version, "page": c.page, "section": c.section, "char_start": c.char_start,
            "char_end": c.char_end, "score": hit.score, "rank": hit.rank, "retriever": result.retriever,
        }
        if diag is not None:
            meta.update(beta=diag.beta, steps=diag.steps, converged=diag.converged, entropy=diag.entropy,
                        query_used=diag.query_used)
        docs.append(Document(page_content=c.text, metadata=meta))
    return docs


class KBLangChainRetriever(BaseRetriever):
    """langchain-core BaseRetriever wrapping a hopfield-kb Retriever; k: documents returned (None = its top_k)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return to_documents(self.retriever.search(query, self.k))
