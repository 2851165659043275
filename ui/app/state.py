"""What every page of the Streamlit app shares: the KB directory, cached model / KB / retrievers, settings, errors.

The embedding model, the KnowledgeBase object and each retriever are created once per
server process (st.cache_resource) and shared by all sessions; a KnowledgeBase reloads
its snapshot by itself when a sync commits, so nothing here needs clearing after ingest.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import streamlit as st

from kb import (
    DEFAULT_MODEL,
    ConversationConfig,
    ConversationStore,
    EmbedderConfig,
    KBError,
    KnowledgeBase,
    TextEmbedder,
    kb_model,
    load_embedder,
    without_paths,
)
from retriever import (
    DEFAULT_CANDIDATES,
    RETRIEVERS,
    WARM_UP_QUERY,
    AnswerConfig,
    HopfieldConfig,
    LLMConfig,
    Retriever,
    make_retriever,
)
from ui.launch import KB_DIR_ENV, LLM_MODEL_ENV, LLM_URL_ENV, SIGN_IN_ENV, SOURCES_ENV

log = logging.getLogger("hopfield_kb.app")


def kb_dir() -> Path:
    """The KB directory: `--kb-dir` after `--` on the streamlit command line, else $HOPFIELD_KB_DIR, else ./kb_data."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--kb-dir", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return Path(args.kb_dir or os.environ.get(KB_DIR_ENV) or "kb_data").resolve()


def source_folders() -> list[Path]:
    """The folders the Knowledge base page may re-ingest (`kb ui --source`); none means re-ingest is off."""
    try:
        return [Path(p) for p in json.loads(os.environ.get(SOURCES_ENV, "[]"))]
    except (ValueError, TypeError):
        return []


def signed_in() -> bool:
    """True when no sign-in is set (the app is on loopback) or this browser session signed in (and it has not
    expired); otherwise shows the sign-in form and returns False. See ui/app/signin.py."""
    from ui.app.signin import signed_in as check

    return check(os.environ.get(SIGN_IN_ENV))


def embedder(path: Path | None = None) -> TextEmbedder:
    """The embedder of the KB's model (the default model for a KB not built yet); follows a `kb reembed`."""
    return _embedder(kb_model(path or kb_dir()) or DEFAULT_MODEL)


@st.cache_resource(show_spinner="Loading the embedding model...")
def _embedder(model: str) -> TextEmbedder:
    return load_embedder(EmbedderConfig(model=model))


@st.cache_resource(show_spinner=False)
def _knowledge_base(path: str) -> KnowledgeBase:
    return KnowledgeBase(path)


def knowledge_base(path: Path | None = None) -> KnowledgeBase:
    """The KB (cached per process). Raises KBError, naming the fix, when there is none at the path yet."""
    return _knowledge_base(str(path or kb_dir()))


@st.cache_resource(show_spinner=False)
def _conversations(path: str) -> ConversationStore:
    return ConversationStore(path, ConversationConfig())


def conversations(path: Path | None = None) -> ConversationStore:
    """The saved conversations of the KB (cached per process; 30-day retention, see kb/conversations.py).
    Raises KBError when there is no KB yet."""
    return _conversations(str(path or kb_dir()))


@st.cache_resource(show_spinner=False, max_entries=32)
def _retriever(path: str, name: str, top_k: int, candidates: int, beta: float) -> Retriever:
    # No embedder given: the retriever embeds with the KB's model, and follows a `kb reembed` while cached.
    retriever = make_retriever(
        name, _knowledge_base(path), top_k=top_k, candidates=candidates, hopfield=HopfieldConfig(beta=beta)
    )
    try:  # build the index structures and query repair's dictionaries now, not during the first question
        retriever.search(WARM_UP_QUERY)
    except KBError:
        pass  # an empty KB: the page says so
    return retriever


@dataclass(frozen=True)
class Settings:
    """The sidebar's choices. beta only matters to the hopfield retriever."""

    retriever: str = "hopfield"
    beta: float = HopfieldConfig().beta
    candidates: int = DEFAULT_CANDIDATES
    top_k: int = 5
    min_evidence: float = AnswerConfig().threshold

    def retriever_for(self, path: Path | None = None) -> Retriever:
        return _retriever(str(path or kb_dir()), self.retriever, self.top_k, self.candidates, float(self.beta))

    def answer_config(self) -> AnswerConfig:
        url, model = os.environ.get(LLM_URL_ENV), os.environ.get(LLM_MODEL_ENV)
        llm = LLMConfig(url=url, model=model) if url and model else None
        return AnswerConfig(min_evidence=self.min_evidence, llm=llm)


def sidebar_settings(side=None) -> Settings:
    """Retriever, beta, K and top_k widgets in side (a container; the sidebar by default), keyed so they
    persist across pages."""
    side = side if side is not None else st.sidebar
    side.markdown("**Retrieval settings**")
    name = side.selectbox(
        "Retriever",
        RETRIEVERS,
        key="set_retriever",
        help="hopfield: dense + lexical candidates re-read by a modern-Hopfield memory; "
        "dense: embeddings only; bm25: words only; hybrid: both, fused.",
    )
    beta = side.slider(
        "beta (Hopfield inverse temperature)",
        0.5,
        20.0,
        float(HopfieldConfig().beta),
        0.5,
        key="set_beta",
        disabled=name != "hopfield",
        help="Larger values settle on fewer passages.",
    )
    candidates = side.select_slider(
        "K (first-stage candidates)",
        options=[10, 20, 50, 100, 200, 500],
        value=100,
        key="set_candidates",
        help="Passages each first-stage view (dense, lexical) proposes; the Hopfield "
        "reader weighs their union, so between K and 2K candidates.",
    )
    top_k = side.slider("top_k (passages read)", 1, 10, 5, key="set_top_k")
    min_evidence = side.slider(
        "Abstain below evidence",
        0.0,
        1.0,
        float(AnswerConfig().threshold),
        0.01,
        key="set_min_evidence",
        help="Calibrated default; lower answers more often, higher abstains more often.",
    )
    if candidates < top_k:
        side.warning(f"K ({candidates}) is below top_k ({top_k}); using K = top_k.")
        candidates = top_k
    return Settings(
        retriever=name, beta=float(beta), candidates=int(candidates), top_k=int(top_k), min_evidence=float(min_evidence)
    )


def message(exc: BaseException) -> str:
    """An error's text for the page: the KB folder by its name, no other server path (kb.without_paths)."""
    path = kb_dir()
    return without_paths(str(exc), {str(path): path.name})


@contextmanager
def shown_errors(what: str) -> Iterator[None]:
    """Turn an exception into one clear message on the page (never a stack trace); details go to the server log."""
    try:
        yield
    except KBError as exc:
        st.error(f"{what}: {message(exc)}", icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - the page must survive any failure and say what happened
        log.exception("%s failed", what)
        st.error(
            f"{what} failed unexpectedly ({type(exc).__name__}: {message(exc)}). The server log has the details.",
            icon=":material/error:",
        )
