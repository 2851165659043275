"""The wire format: request bodies (validated, bad values are 422 with the field named) and responses.

The response models describe retriever's JSON shapes (retriever/serialize.py, which builds every reply's hits,
citations and answers) and the insights report's (insights/report.py): each has exactly the fields of its TypedDict
or dataclass there, checked when this module is imported.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from insights import (
    JSON_ADDED,
    JSON_DROPPED,
    DocumentHealth,
    DocumentUse,
    GapTopic,
    Insights,
    NearPassage,
    PassageUse,
    Replay,
    StaleAnswer,
    TopicReplay,
)
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


class NearPassageOut(BaseModel):
    chunk_id: int
    doc_source: str
    doc_title: str
    doc_version: int
    cosine: float
    text: str


class TopicOut(BaseModel):
    id: int
    size: int
    questions: list[str]
    examples: list[str]
    passages: list[NearPassageOut]
    action: str
    close_document: str | None
    reasons: dict[str, int]
    by_day: list[tuple[str, int]]  # (UTC date, questions)
    previous: int | None  # its size in the equally long period before (None: the period has no start)
    contexts: list[str | None]
    trend: str  # "+3", "-2", "0", "new" or ""


class DocumentUseOut(BaseModel):
    source: str
    title: str
    citations: int
    thumbs_up: int
    thumbs_down: int
    down_rate: float


class PassageUseOut(BaseModel):
    chunk_id: int
    doc_source: str
    thumbs_up: int
    thumbs_down: int
    down_rate: float


class StaleAnswerOut(BaseModel):
    question: str
    at: float
    asked_by: str | None
    doc_source: str
    cited_version: int
    current_version: int | None


class HealthOut(BaseModel):
    most_cited: list[DocumentUseOut]
    least_cited: list[DocumentUseOut]
    never_cited: list[str]
    most_thumbs_down: list[DocumentUseOut]
    stale: list[StaleAnswerOut]
    outdated: list[tuple[str, str]]  # (document, its exported updated_at)
    passages_thumbs_down: list[PassageUseOut]


class InsightsResponse(BaseModel):
    since: float | None
    until: float | None
    asked: int
    answered: int
    abstained: int
    thumbs_down: int
    weak: int
    topics: list[TopicOut]
    topics_total: int
    health: HealthOut
    seconds: dict[str, float]


class TopicReplayOut(BaseModel):
    topic: int
    asked: int
    answered: int
    example: str


class ReplayResponse(BaseModel):
    topics: list[TopicReplayOut]
    asked: int
    answered: int
    share: float


def mirrors(model: type[BaseModel], shape: type) -> None:
    """Refuse a response model whose fields differ from the JSON shape it describes: a retriever TypedDict, or an
    insights dataclass's fields with what insights adds to its JSON (insights.JSON_ADDED, JSON_DROPPED)."""
    if is_dataclass(shape):
        keys = {f.name for f in fields(shape)} - JSON_DROPPED.get(shape, frozenset()) | JSON_ADDED.get(shape, frozenset())
        builder = "insights/report.py builds the reply"
    else:
        keys, builder = set(shape.__annotations__), "retriever/serialize.py builds the reply"
    names = set(model.model_fields)
    if names != keys:
        raise TypeError(
            f"api.schemas.{model.__name__} and {shape.__module__.split('.')[0]}.{shape.__name__} differ: "
            f"{sorted(names ^ keys)}; change both ({builder})"
        )


RESPONSE_SHAPES = (
    (Citation, CitationDict),
    (HitOut, HitDict),
    (HistoryOut, HistoryDict),
    (SearchResponse, SearchDict),
    (AnswerResponse, AnswerDict),
    (NearPassageOut, NearPassage),
    (TopicOut, GapTopic),
    (DocumentUseOut, DocumentUse),
    (PassageUseOut, PassageUse),
    (StaleAnswerOut, StaleAnswer),
    (HealthOut, DocumentHealth),
    (InsightsResponse, Insights),
    (TopicReplayOut, TopicReplay),
    (ReplayResponse, Replay),
)
for _model, _shape in RESPONSE_SHAPES:
    mirrors(_model, _shape)
