"""Logging an answer into the KB's question log: the one function every interface calls after answering.

The app's chat (by "session:ID"), the API's /ask and chat completions (by "key:ID", with the collection)
and `kb ask --log` call log_answer(kb, ans, by=..., collection=...). It records the outcome, the evidence
and the cited passages with their document versions; the question is redacted by kb.QuestionLog before
it is stored. Logging never fails an answer: a KB that cannot be written (read-only media) is skipped with
a warning that names the KB, never the question.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from kb import KBError, KnowledgeBase, LoggedCitation, QuestionLog, QuestionLogConfig
from retriever.answers import Answer
from retriever.base import Retriever

log = logging.getLogger(__name__)
_logs: dict[tuple[str, QuestionLogConfig], QuestionLog] = {}
_lock = threading.Lock()


def _log_for(kb: KnowledgeBase, config: QuestionLogConfig) -> QuestionLog:
    """One QuestionLog per (KB file, config) per process, so the tables are ensured once."""
    key = (str(kb.db.path), config)
    with _lock:
        found = _logs.get(key)
        if found is None or found.kb is not kb:
            found = _logs[key] = QuestionLog(kb, config)
        return found


def follow_up_context(ans: Answer) -> str | None:
    """The user's previous question when ans was read as a follow-up of its conversation (None: read alone, or
    the reader took it for a new topic), so a replay can ask it again as it was meant."""
    used = ans.search.history
    if used is None or used.new_topic:
        return None
    previous = [text for role, text in used.turns if role == "user"]
    return previous[-1] if previous else None


def log_answer(
    kb: KnowledgeBase,
    ans: Answer,
    by: str | None = None,
    collection: str | None = None,
    config: QuestionLogConfig | None = None,
    now: float | None = None,
    retriever: Retriever | None = None,
) -> int | None:
    """Log ans (its question, outcome, evidence and citations) in kb's question log; the entry's id, or None
    when nothing was kept (retention 0, or a KB that cannot be written). by: "key:ID", "session:ID" or None.
    retriever: the one that answered; the question's vector it just made (cached) is kept with the entry, so
    insights need not embed the question again."""
    cited = [LoggedCitation(c.chunk_id, c.doc_source, c.doc_version) for c in ans.citations]
    vector, model = None, None
    try:
        if retriever is not None and retriever.uses_dense:
            vector = np.asarray(retriever.embed_queries([ans.question])[0], np.float32).tobytes()
            model = retriever.embedder.name
        return _log_for(kb, config or QuestionLogConfig()).record(
            ans.question,
            "abstained" if ans.abstained else "answered",
            cited,
            asked_by=by,
            collection=collection,
            evidence=float(ans.evidence),
            now=now,
            vector=vector,
            model=model,
            context=follow_up_context(ans),
        )
    except KBError as exc:
        log.warning("question log not written for the KB at %s: %s", kb.dir, exc)
        return None
