"""The wire format: request bodies (validated, bad values are 422 with the field named) and responses.

The response models describe retriever's JSON shapes (retriever/serialize.py, which builds every reply's hits,
citations and answers): each has exactly the fields of its TypedDict there, checked when this module is imported.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from retriever import (
    DEFAULT_CANDIDATES,
    RETRIEVERS,
    AnswerDict,
    CitationDict,
    HistoryConfig,
    HistoryDict,
    HitDict,
    HopfieldConfig,
    SearchDict,
)

# A client may send more than the reader reads (it keeps the newest within HistoryConfig's budget); these only
# bound what one request can carry.
MAX_HISTORY_MESSAGES = 200
MAX_HISTORY_CHARS = HistoryConfig().max_chars

Retriever = Literal[RETRIEVERS]  # type: ignore[valid-type]
Label = Annotated[str, Field(max_length=64)]  # a tag or visibility label (kb.check_labels: at most 64 characters)
# Every kind a sync stores (ingest.KINDS; tests/test_csv_email.py keeps the two equal).
Kind = Literal["pdf", "markdown", "html", "text", "docx", "csv", "email", "msg", "xlsx", "pptx", "web"]


class Filters(BaseModel):
    """Which documents a search or answer may use. Every field narrows; a key's visibility scope always applies."""

    model_config = ConfigDict(extra="forbid")
    key_prefix: str | None = Field(None, max_length=500, description="document keys starting with this, e.g. 'policies/'")
    kinds: list[Kind] | None = Field(None, max_length=len(get_args(Kind)))
    tags: list[Label] | None = Field(None, max_length=32, description="documents carrying at least one of these tags")
    visibility: list[Label] | None = Field(None, max_length=16, description="within what the key may see")
    ingested_after: float | None = Field(None, ge=0, le=1e11, description="Unix time, seconds")


class HistoryMessage(BaseModel):
    """One earlier message of the conversation (system and tool messages are accepted and not read)."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant", "system", "tool", "developer"]
    content: str = Field(..., max_length=MAX_HISTORY_CHARS)


HISTORY_FIELD: list[HistoryMessage] = Field(
    default_factory=list,
    max_length=MAX_HISTORY_MESSAGES,
    description="the conversation before this turn, oldest first; the "
    f"newest {HistoryConfig().max_turns} user turns with their replies "
    f"and {HistoryConfig().max_chars} characters are read",
)


class HistoryOut(BaseModel):
    """What the turn read of the conversation: the messages, the gate (>= 1), each reading's weight, and how
    many passages earlier turns were answered from (with the weight of their recall)."""

    turns: list[dict]
    gate: float
    views: list[dict]
    visited: int
    visited_weight: float
    new_topic: bool = False


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(..., min_length=1, max_length=2000)
    history: list[HistoryMessage] = HISTORY_FIELD
    k: int = Field(5, ge=1, le=50, description="hits returned")
    retriever: Retriever = "hopfield"
    beta: float = Field(HopfieldConfig().beta, gt=0, le=100, description="Hopfield inverse temperature")
    candidates: int = Field(DEFAULT_CANDIDATES, ge=1, le=1000, description="first-stage candidates K (>= k)")
    filters: Filters = Field(default_factory=Filters)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(..., min_length=1, max_length=2000)
    history: list[HistoryMessage] = HISTORY_FIELD
    k: int = Field(5, ge=1, le=20, description="passages the answer is drawn from")
    retriever: Retriever = "hopfield"
    filters: Filters = Field(default_factory=Filters)
    stream: bool = Field(False, description="answer as server-sent events: sentence..., citations, done")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(..., min_length=1, max_length=2000)
    chunk_id: int | None = Field(None, ge=1, le=2**62)
    helpful: bool


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[Annotated[str, Field(max_length=500)]] | None = Field(
        None, max_length=64, description="configured source folders (default: all)"
    )
    dry_run: bool = False


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list | None = None


class ChatRequest(BaseModel):
    """OpenAI chat completions: model names the collection; the last user message is the question, the messages
    before it are the conversation it follows (system and tool messages are not read)."""

    model: str = Field(..., min_length=1, max_length=100)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=200)
    stream: bool = False
    temperature: float | None = None
    max_tokens: int | None = None


class DocumentOut(BaseModel):
    key: str
    name: str
    title: str
    kind: str
    version: int
    ingested_at: float
    chunks: int
    size_bytes: int
    visibility: str
    tags: list[str]
    url: str = ""  # an exported article's live page
    updated_at: str = ""  # when it last changed there (ISO 8601)


class Citation(BaseModel):
    n: int
    chunk_id: int
    document: str
    name: str
    title: str
    version: int
    page: int | None
    section: str | None
    start: int
    end: int
    quote: str
    ocr_confidence: float | None = None  # 0-1 when the page was read by OCR (under 0.8: check the scan)
    url: str = ""  # an exported help-centre or wiki article's address


class HitOut(BaseModel):
    rank: int
    score: float | None = None  # omitted for a key that may not see every label
    chunk_id: int
    document: str
    name: str
    title: str
    version: int
    visibility: str
    page: int | None
    section: str | None
    char_start: int
    char_end: int
    text: str
    ocr_confidence: float | None = None
    url: str = ""


class SearchResponse(BaseModel):
    query: str
    retriever: str
    snapshot: str
    hits: list[HitOut]
    diagnostics: dict | None = None
    history_used: HistoryOut | None = None


class AnswerResponse(BaseModel):
    question: str
    answer: str
    abstained: bool
    evidence: float | None = None  # omitted for a key that may not see every label
    threshold: float
    snapshot: str
    citations: list[Citation]
    closest: list[HitOut]
    notes: list[str]
    seconds: float
    history_used: HistoryOut | None = None


def mirrors(model: type[BaseModel], shape: type) -> None:
    """Refuse a response model whose fields differ from the retriever JSON shape it describes (a TypedDict)."""
    fields, keys = set(model.model_fields), set(shape.__annotations__)
    if fields != keys:
        raise TypeError(
            f"api.schemas.{model.__name__} and retriever.{shape.__name__} differ: "
            f"{sorted(fields ^ keys)}; change both (retriever/serialize.py builds the reply)"
        )


RESPONSE_SHAPES = (
    (Citation, CitationDict),
    (HitOut, HitDict),
    (HistoryOut, HistoryDict),
    (SearchResponse, SearchDict),
    (AnswerResponse, AnswerDict),
)
for _model, _shape in RESPONSE_SHAPES:
    mirrors(_model, _shape)
