"""retriever: rank a KB's chunks for a question, and compose cited answers.

Public surface:
    HopfieldRetriever, HopfieldConfig        the modern-Hopfield reader (default)
    DenseRetriever, BM25Retriever, HybridRetriever   baselines behind the same interface
    zscore                                   (x - mean) / std per row: how scores of two scales are fused
    make_retriever(name, kb, ...)            one of the above by name
    DEFAULT_CANDIDATES                       first-stage candidates K by default (every interface reads it here)
    Hit, SearchResult, Diagnostics, Ranked   results
    VocabularyMemory, Repair                 the word memory that repairs garbled queries
    KBLangChainRetriever, to_documents       langchain-core BaseRetriever over any of the above
    history_aware(lc_retriever)              the {"input", "chat_history"} runnable LangChain chat chains call
    hopfield_math                            the pure update / energy functions in torch (imported when first named:
                                             the reader runs their numpy twins, retriever/hopfield_gram.py)
    answer(question, retriever, AnswerConfig) -> Answer   cited extractive answers (or abstention): retriever/answers/
    clear_caches()                           forget cached question and sentence vectors (benchmarks' cold path)
    Answer, Citation, AnswerConfig, LLMConfig, NOT_FOUND   answer types; LLMConfig for an OpenAI-compatible endpoint
    Turn, HistoryConfig, Context, parse_history, build_context   follow-ups read with the conversation before them
    learn_from_feedback(kb, question, chunk_ids, helpful)  a thumbs up/down into the question memory
    record_feedback(kb, question, cited, helpful, by)     a thumbs up/down stored and learnt: what every interface calls
    log_answer(kb, answer, by, collection)   an answer into the KB's question log (redacted): what every interface calls
    hit_dict, citation_dict, search_dict, answer_dict     results and answers as JSON values (retriever/serialize.py):
    diagnostics_dict, history_dict, SCOPED_DIAGNOSTICS    the one shape the CLI's --json, the app and the API use
    HitDict, CitationDict, HistoryDict, SearchDict, AnswerDict   that shape, as TypedDicts
    content_tokens, lexical_overlap          the answer layer's word overlap (eval scores answers with it)
    CrossEncoder, CrossEncoderConfig, load_cross_encoder   the second reader: (question, passage) -> relevance logit
    Answerability, ANSWERABILITY             P(answerable) from the evidence score and the cross-encoder's logit
"""

import importlib

from retriever.answer_log import log_answer
from retriever.answers import (
    ANSWERABILITY,
    NOT_FOUND,
    Answer,
    Answerability,
    AnswerConfig,
    Citation,
    LLMConfig,
    answer,
    clear_sentence_cache,
    content_tokens,
    lexical_overlap,
)
from retriever.base import DEFAULT_CANDIDATES, Ranked, Retriever, check_query, clear_query_caches
from retriever.baselines import BM25Retriever, DenseRetriever, HybridRetriever, zscore
from retriever.conversation import Context, HistoryConfig, Turn, build_context, parse_history
from retriever.cross_encoder import CrossEncoder, CrossEncoderConfig, load_cross_encoder
from retriever.feedback import record_feedback
from retriever.hopfield import HopfieldConfig, HopfieldRetriever
from retriever.question_recall import learn_from_feedback
from retriever.registry import RETRIEVERS, make_retriever
from retriever.results import Diagnostics, Hit, SearchResult
from retriever.serialize import (
    SCOPED_DIAGNOSTICS,
    AnswerDict,
    CitationDict,
    HistoryDict,
    HitDict,
    SearchDict,
    answer_dict,
    citation_dict,
    diagnostics_dict,
    history_dict,
    hit_dict,
    search_dict,
)
from retriever.vocabulary import WARM_UP_QUERY, Repair, VocabularyMemory

__all__ = [
    "hopfield_math",
    "DEFAULT_CANDIDATES",
    "Ranked",
    "Retriever",
    "check_query",
    "BM25Retriever",
    "DenseRetriever",
    "HybridRetriever",
    "HopfieldConfig",
    "HopfieldRetriever",
    "RETRIEVERS",
    "make_retriever",
    "Diagnostics",
    "Hit",
    "SearchResult",
    "KBLangChainRetriever",
    "to_documents",
    "history_aware",
    "Repair",
    "VocabularyMemory",
    "WARM_UP_QUERY",
    "answer",
    "NOT_FOUND",
    "Answer",
    "AnswerConfig",
    "Citation",
    "LLMConfig",
    "learn_from_feedback",
    "record_feedback",
    "log_answer",
    "SCOPED_DIAGNOSTICS",
    "AnswerDict",
    "CitationDict",
    "HistoryDict",
    "HitDict",
    "SearchDict",
    "answer_dict",
    "citation_dict",
    "diagnostics_dict",
    "hit_dict",
    "history_dict",
    "search_dict",
    "content_tokens",
    "lexical_overlap",
    "clear_caches",
    "Context",
    "HistoryConfig",
    "Turn",
    "build_context",
    "parse_history",
    "CrossEncoder",
    "CrossEncoderConfig",
    "load_cross_encoder",
    "ANSWERABILITY",
    "Answerability",
    "zscore",
]


def clear_caches() -> None:
    """Forget this process's cached question vectors, filtered id lists and sentence vectors."""
    clear_query_caches()
    clear_sentence_cache()


def __getattr__(name: str):
    # langchain-core takes ~0.6 s to import; only LangChain users should pay it (not every `kb` command).
    if name in ("KBLangChainRetriever", "to_documents", "history_aware"):
        from retriever import langchain

        return getattr(langchain, name)
    # hopfield_math imports torch (~1 s): loaded only when named, so answering a question never imports it.
    if name == "hopfield_math":
        return importlib.import_module("retriever.hopfield_math")
    raise AttributeError(f"module 'retriever' has no attribute {name!r}")
