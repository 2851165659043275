"""Retrievers by name, for the CLI, the UI and eval."""

from __future__ import annotations

from kb import KBError, KnowledgeBase, TextEmbedder
from retriever.base import DEFAULT_CANDIDATES, Retriever
from retriever.baselines import BM25Retriever, DenseRetriever, HybridRetriever
from retriever.hopfield import HopfieldConfig, HopfieldRetriever

RETRIEVERS = ("hopfield", "dense", "bm25", "hybrid")


def make_retriever(
    name: str,
    kb: KnowledgeBase,
    embedder: TextEmbedder | None = None,
    top_k: int = 5,
    candidates: int = DEFAULT_CANDIDATES,
    hopfield: HopfieldConfig | None = None,
    memory="kb",
) -> Retriever:
    """A retriever by name (one of RETRIEVERS); hopfield and memory ("kb": the KB's question memory, None: none,
    or a kb.question_memory.QuestionMemory) are used only by "hopfield"."""
    classes = {"dense": DenseRetriever, "bm25": BM25Retriever, "hybrid": HybridRetriever}
    if name == "hopfield":
        return HopfieldRetriever(
            kb, embedder, top_k=top_k, candidates=candidates, config=hopfield or HopfieldConfig(), memory=memory
        )
    if name not in classes:
        raise KBError(f"unknown retriever {name!r}; choose one of {', '.join(RETRIEVERS)}")
    return classes[name](kb, embedder, top_k=top_k, candidates=candidates)
