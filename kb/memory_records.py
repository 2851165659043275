"""The question memory's records: its config, an association, an event, the reader's patterns, the question key.

Kept apart from kb/question_memory.py (the store that writes and resolves them) so a reader of the records
needs no connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from kb.errors import KBError

DAY = 86400.0
ORIGINS = ("thumbs_up", "thumbs_down", "cited_helpful", "import", "replay")


@dataclass(frozen=True)
class MemoryConfig:
    """half_life_days: an association's strength halves every this many days without feedback (30).
    user_cap: the most one association, and one named user's associations to one passage together,
    add to that passage's strength (3: a fourth identical thumbs up changes nothing).
    min_strength: effective strength below which an association is not used."""

    half_life_days: float = 30.0
    user_cap: float = 3.0
    min_strength: float = 0.05

    def __post_init__(self) -> None:
        if not self.half_life_days > 0:
            raise KBError(f"half_life_days must be > 0, not {self.half_life_days}")
        if not self.user_cap > 0:
            raise KBError(f"user_cap must be > 0, not {self.user_cap}")

    def decay(self, elapsed_seconds: np.ndarray | float) -> np.ndarray | float:
        """0.5 ** (days / half_life_days): the factor an association keeps after elapsed_seconds unconfirmed."""
        return 0.5 ** (np.maximum(elapsed_seconds, 0.0) / (self.half_life_days * DAY))


@dataclass(frozen=True)
class Association:
    """One stored (question, passage version, user). strength: as last written (see effective());
    user: "" for none; retired: the passage's text changed (never used again)."""

    id: int
    question: str
    text_hash: str
    doc_source: str
    doc_version: int
    user: str
    strength: float
    confirmations: int
    rejections: int
    created_at: float
    last_confirmed_at: float
    retired: bool
    retired_reason: str

    def effective(self, config: MemoryConfig, now: float | None = None) -> float:
        now = time.time() if now is None else now
        return float(self.strength * config.decay(now - self.last_confirmed_at))


@dataclass(frozen=True)
class MemoryEvent:
    """One change: confirmed, rejected, retired, removed, moved, carried or forgotten."""

    association_id: int
    event: str
    delta: float
    user: str
    origin: str
    note: str
    at: float


@dataclass(frozen=True)
class MemoryPatterns:
    """The usable associations, one row per (question, passage version), resolved to current chunks.

    vectors (M, d) float32 unit rows; grams: M (buckets, counts) character views; weights (M,) > 0:
    effective strength summed over users (decayed, capped); chunk_ids (M,) the current chunk of each;
    questions: their texts; support (M,): how many associations (users) each row sums.
    """

    vectors: np.ndarray
    grams: tuple[tuple[np.ndarray, np.ndarray], ...]
    weights: np.ndarray
    chunk_ids: np.ndarray
    questions: tuple[str, ...]
    support: np.ndarray

    def __len__(self) -> int:
        return len(self.chunk_ids)


def question_key(question: str) -> str:
    """What makes two questions the same: case and spacing ignored."""
    return " ".join(question.lower().split())


ASSOCIATION_COLUMNS = (
    "id, question, text_hash, doc_source, doc_version, by_user, strength, confirmations, rejections, "
    "created_at, last_confirmed_at, retired, retired_reason"
)


def association_from_row(row: tuple) -> Association:
    """An Association from a row of ASSOCIATION_COLUMNS."""
    return Association(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        int(row[4]),
        row[5],
        float(row[6]),
        int(row[7]),
        int(row[8]),
        float(row[9]),
        float(row[10]),
        bool(row[11]),
        row[12],
    )
