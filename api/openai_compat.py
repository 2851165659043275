"""An OpenAI-compatible chat endpoint, so existing chat front ends and the openai client plug in.

POST /v1/chat/completions: model names the collection; the last user message is the question and the
messages before it the conversation it follows (user and assistant messages; system and tool messages are
not read; the newest 10 user turns with their replies and 8,000 characters are, see retriever.HistoryConfig).
The reply's content is the cited answer followed by its numbered sources, and the citations
also come as structured data (a "citations" list on the response and on the message), so a
client that only shows text still shows where each claim comes from. stream=true sends the
answer sentence by sentence as chat.completion.chunk events, the citations on the last one.
GET /v1/models lists the collections the key may use.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Iterator

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException
from fastapi.responses import StreamingResponse

from api import queries
from api.auth import Caller, authenticate
from api.payloads import answer_pieces
from api.schemas import AskRequest, ChatRequest
from retriever import citation_dict, history_dict

# The question cap of /search and /ask, for the chat endpoint's question too.
QUESTION_MAX = next(m.max_length for m in AskRequest.model_fields["question"].metadata if hasattr(m, "max_length"))


def _text(content, where: str) -> str:
    """A message's text: a string, or the text parts of [{"type": "text", "text": ...}, ...] (other part types are
    skipped); 422 naming the part whose text is not a string."""
    if content is None or isinstance(content, str):
        return (content or "").strip()
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type", "text") != "text":
            continue
        text = part.get("text")
        if not isinstance(text, str):
            raise HTTPException(422, f"{where}.content[{j}].text: must be a string, not {type(text).__name__}")
        texts.append(text)
    return " ".join(texts).strip()


def _conversation(body: ChatRequest) -> tuple[str, list[dict]]:
    """The question (the last user message with text, at most QUESTION_MAX characters) and the user and assistant
    messages before it."""
    texts = [_text(m.content, f"messages[{i}]") for i, m in enumerate(body.messages)]
    for i in range(len(body.messages) - 1, -1, -1):
        if body.messages[i].role == "user" and texts[i]:
            if len(texts[i]) > QUESTION_MAX:
                raise HTTPException(
                    422, f"messages[{i}].content: the question is {len(texts[i]):,} characters; at most {QUESTION_MAX:,}"
                )
            history = [
                {"role": m.role, "content": texts[j]}
                for j, m in enumerate(body.messages[:i])
                if m.role in ("user", "assistant")
            ]
            return texts[i], history
    raise HTTPException(422, "messages holds no user message with text to answer")


def sources_text(citations) -> str:
    lines = []
    for c in citations:
        where = f", {c.where}" if c.where else ""
        lines.append(f"[{c.n}] {c.doc_title} ({c.doc_name} v{c.doc_version}{where})")
    return "\n\nSources:\n" + "\n".join(lines) if lines else ""


router = APIRouter()  # included by api/routes/answers.py, under its tag


@router.get("/v1/models")
def models(caller: Caller = Depends(authenticate)) -> dict:
    names = [n for n in caller.services.config.collections if caller.key.can_use(n)]
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "hopfield-kb"} for n in names]}


@router.post("/v1/chat/completions")
def chat(body: ChatRequest, background: BackgroundTasks, caller: Caller = Depends(authenticate)):
    """The cited answer as an OpenAI chat completion (model = collection name)."""
    caller = caller.use(body.model.removeprefix("hopfield-kb/"))
    name = caller.collection_name
    question, history = _conversation(body)
    ans = queries.answer_question(caller, question, history)
    background.add_task(queries.log, caller, ans)  # after the reply
    content = ans.text + sources_text(ans.citations)
    cites = [citation_dict(c) for c in ans.citations]
    reply_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.stream:
        return StreamingResponse(_chunks(reply_id, created, name, ans, cites), media_type="text/event-stream")
    return {
        "id": reply_id,
        "object": "chat.completion",
        "created": created,
        "model": name,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content, "citations": cites}}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "citations": cites,
        "abstained": ans.abstained,
        "snapshot": ans.search.snapshot,
        "history_used": history_dict(ans.search.history),
    }


def _chunks(reply_id: str, created: int, model: str, ans, cites: list[dict]) -> Iterator[str]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        payload = {
            "id": reply_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in answer_pieces(ans.text):
        yield chunk({"content": piece})
    tail = sources_text(ans.citations)
    if tail:
        yield chunk({"content": tail})
    yield chunk({}, "stop", citations=cites, abstained=ans.abstained, snapshot=ans.search.snapshot)
    yield "data: [DONE]\n\n"
