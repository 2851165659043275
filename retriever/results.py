"""What a search returns: ranked hits with the chunk, and the reader's diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

from kb import ChunkRecord


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk. score's scale depends on the retriever; rank starts at 1."""

    chunk: ChunkRecord
    score: float
    rank: int


@dataclass(frozen=True)
class MemorySuggestion:
    """A passage the question memory suggested: its chunk id, the recalled mass (0..1), the closest
    earlier questions that were answered by it, and how many earlier questions took part. vouched_mass: the
    part of mass recalled from confirmations vouched for (kb.MemoryConfig.vouching_users), what answers count."""

    chunk_id: int
    mass: float
    questions: tuple[str, ...]
    n_questions: int
    vouched_mass: float = 0.0


@dataclass(frozen=True)
class Diagnostics:
    """How the Hopfield state moved for one query.

    beta: inverse temperature used; steps: updates applied; converged: the state moved
    less than update_steps_eps on the last step; energy: E after each update (first
    entry is xi_1, the state after the first update from the evidence cue); entropy:
    of the final attention over candidates, in nats (0 = settled on one passage,
    log(K) = uniform mix); repairs: (garbled word, stored word) pairs the vocabulary
    memory replaced; query_used: the query after repair; garble: share of the question's
    words that were unknown (0..1); char_gate: how far that switched the character view on (0..1);
    memory: the passages the question memory suggested, most recalled first (empty when it suggested none);
    history_scale: what the conversation's weights were multiplied by (below 1: read as a new topic).
    """

    beta: float
    steps: int
    converged: bool
    energy: tuple[float, ...]
    entropy: float
    candidates: int
    repairs: tuple[tuple[str, str], ...] = ()
    query_used: str = ""
    garble: float = 0.0
    char_gate: float = 0.0
    memory: tuple[MemorySuggestion, ...] = ()
    history_scale: float = 1.0


@dataclass(frozen=True)
class HistoryUsed:
    """What a follow-up read of the conversation before it: the messages (role, text; oldest first), the
    gate g (>= 1: how much the turn leaned on them), each reading of the turn with its weight, and how many
    passages earlier turns were answered from (their recall's weight); new_topic: the reader took the turn for
    a new topic and weighed the past down."""

    turns: tuple[tuple[str, str], ...]
    gate: float
    views: tuple[tuple[str, float], ...]
    visited: int
    visited_weight: float
    new_topic: bool = False


@dataclass(frozen=True)
class SearchResult:
    """hits of one query; snapshot: the token of the KB snapshot every hit comes from; history: what the
    conversation before the query contributed (None: the query was read alone)."""

    query: str
    retriever: str
    hits: tuple[Hit, ...]
    diagnostics: Diagnostics | None = None
    seconds: float = 0.0
    snapshot: str = ""
    history: HistoryUsed | None = None
