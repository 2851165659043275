"""Feedback on an answer: the one function every interface calls for a thumbs up or down.

It stores the verdict in the KB's feedback table (one row per cited passage, or one row without a
passage when nothing was cited, e.g. on an abstention), then teaches the question memory, so a
later paraphrase of the question finds the passages confirmed here (retriever.question_recall).
The app learns at once; the API hands the lesson to its batching learner (api/feedback.py).
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

from retriever.question_recall import learn_from_feedback


class Cited(Protocol):
    """What feedback needs of a cited passage (a retriever.Citation, the app's SourceView...)."""

    @property
    def chunk_id(self) -> int: ...

    @property
    def doc_source(self) -> str: ...


def record_feedback(
    kb,
    question: str,
    cited: Iterable[Cited],
    helpful: bool,
    by: str | None = None,
    learn: Callable[[list[int]], object] | None = None,
) -> list[int]:
    """Store a thumbs up/down on the passages cited for question and teach the question memory; the feedback
    rows' ids. by: who gave it (an API key as "key:ID"; None in the app). learn(chunk_ids): how the memory is
    taught (default: now, by learn_from_feedback); it is not called when nothing was cited."""
    passages = list(cited)
    slots: list[Cited | None] = [*passages] if passages else [None]  # one row without a passage when none was cited
    rows = [kb.add_feedback(question, p.chunk_id if p else None, p.doc_source if p else None, helpful, by=by) for p in slots]
    chunk_ids = [p.chunk_id for p in passages]
    if chunk_ids:
        if learn is None:
            learn_from_feedback(kb, question, chunk_ids, helpful, user=by)
        else:
            learn(chunk_ids)
    return rows
