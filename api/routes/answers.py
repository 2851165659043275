"""Answers: search, cited answers (JSON or streamed), the OpenAI-compatible chat endpoint, and feedback on answers."""

from __future__ import annotations

from typing import NamedTuple

from fastapi import APIRouter, BackgroundTasks, Header
from fastapi.responses import StreamingResponse

from api import openai_compat, queries
from api.auth import READER, Caller
from api.feedback import Lesson
from api.payloads import stream_answer
from api.schemas import AnswerResponse, AskRequest, FeedbackRequest, SearchRequest, SearchResponse
from retriever import answer_dict, record_feedback

router = APIRouter(tags=["answers"])


@router.post("/v1/collections/{collection}/search", response_model=SearchResponse)
def search(body: SearchRequest, caller: Caller = READER) -> dict:
    """Passages for a query, best first, each with what a citation needs."""
    return queries.search(caller, body)


@router.post(
    "/v1/collections/{collection}/ask",
    response_model=AnswerResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def ask(body: AskRequest, background: BackgroundTasks, caller: Caller = READER, accept: str | None = Header(None)):
    """A cited answer, or an abstention with the closest passages. Streams as server-sent events when
    stream is true or the client accepts text/event-stream."""
    ans = queries.ask(caller, body)
    # Logged after the reply is sent: a sync committing to the same kb.sqlite holds its write lock for
    # seconds, and no answer should wait on that.
    background.add_task(queries.log, caller, ans)
    if body.stream or "text/event-stream" in (accept or ""):
        return StreamingResponse(
            stream_answer(ans, caller.scoped), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    return answer_dict(ans, caller.scoped)


@router.post("/v1/collections/{collection}/feedback", status_code=201)
def feedback(body: FeedbackRequest, caller: Caller = READER) -> dict:
    """A thumbs up or down on an answer's cited passage (chunk_id), recorded with the key that gave it."""
    by = caller.asker
    # 404 for a passage the key may not see, as for one that does not exist.
    cited = [] if body.chunk_id is None else [_Cited(body.chunk_id, caller.chunk(body.chunk_id).doc_source)]

    def learn(chunk_ids: list[int]) -> None:  # the question memory learns within FLUSH_SECONDS, batched (api/feedback.py)
        for chunk_id in chunk_ids:
            caller.services.learner.add(Lesson(caller.collection_name, body.question, chunk_id, body.helpful, by))

    [row] = record_feedback(caller.kb, body.question, cited, body.helpful, by=by, learn=learn)
    return {"id": row}


class _Cited(NamedTuple):
    """A passage as retriever.record_feedback reads it."""

    chunk_id: int
    doc_source: str


router.include_router(openai_compat.router)
