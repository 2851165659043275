"""The question memory's records: its config, an association, an event, the reader's patterns, the question key.

Kept apart from kb/question_memory.py (the store that writes and resolves them) so a reader of the records
needs no connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kb.errors import KBError
from kb.lexicon import unpack_grams

DAY = 86400.0
ORIGINS = ("thumbs_up", "thumbs_down", "cited_helpful", "import", "replay")


@dataclass(frozen=True)
class MemoryConfig:
    """half_life_days: an association's strength halves every this many days without feedback (30).
    user_cap: the most one association, and one named user's associations to one passage together,
    add to that passage's strength (3: a fourth identical thumbs up changes nothing).
    min_strength: effective strength below which an association is not used.
    vouching_users: named users (API keys) who must each confirm a (question, passage) before recalling it
    counts as evidence that the passage answers (retriever.AnswerConfig.memory_evidence); one confirmation by the
    KB's owner (the app, the CLI, an import: no user) is enough. Ranking needs no vouching. So one key, or the
    anonymous users of one chatbot behind it, can move a passage up but cannot make the bot answer from it."""

    half_life_days: float = 30.0
    user_cap: float = 3.0
    min_strength: float = 0.05
    vouching_users: int = 2

    def __post_init__(self) -> None:
        if not self.half_life_days > 0:
            raise KBError(f"half_life_days must be > 0, not {self.half_life_days}")
        if not self.user_cap > 0:
            raise KBError(f"user_cap must be > 0, not {self.user_cap}")
        if self.vouching_users < 1:
            raise KBError(f"vouching_users must be at least 1, not {self.vouching_users}")

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
    questions: their texts; support (M,): how many associations (users) each row sums; vouched (M,) bool:
    the owner or MemoryConfig.vouching_users named users confirmed the row (its recall may count as evidence).
    """

    vectors: np.ndarray
    grams: tuple[tuple[np.ndarray, np.ndarray], ...]
    weights: np.ndarray
    chunk_ids: np.ndarray
    questions: tuple[str, ...]
    support: np.ndarray
    vouched: np.ndarray

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


# What patterns_from_rows reads of each active association, in this order.
PATTERN_COLUMNS = "question, question_key, vector, grams, text_hash, doc_source, by_user, strength, last_confirmed_at"


def patterns_from_rows(
    rows: Sequence[tuple],
    found: dict[str, list[tuple[int, str, int]]],
    config: MemoryConfig,
    now: float,
    dim: int,
) -> MemoryPatterns:
    """The reader's patterns from active associations (rows of PATTERN_COLUMNS) at time now (Unix seconds).

    found: text_hash -> the current chunks with that text, as (chunk id, doc source, doc version); a row whose
    passage has none is left out. Each row's strength is decayed and capped at user_cap, each named user's total
    per passage is capped at user_cap, and rows are summed per (question, passage); sums below min_strength go.
    """
    empty = MemoryPatterns(
        np.zeros((0, dim), np.float32),
        (),
        np.zeros(0, np.float32),
        np.zeros(0, np.int64),
        (),
        np.zeros(0, np.int64),
        np.zeros(0, bool),
    )
    if not rows:
        return empty
    eff = np.array([r[7] for r in rows], dtype=np.float64) * config.decay(now - np.array([r[8] for r in rows]))
    eff = np.clip(eff, -config.user_cap, config.user_cap)
    # A named user's positive weight on one passage, over all their questions, adds up to at most user_cap.
    per_user: dict[tuple[str, str], float] = {}
    for r, e in zip(rows, eff):
        if r[6] and e > 0:
            per_user[(r[6], r[4])] = per_user.get((r[6], r[4]), 0.0) + e
    groups: dict[tuple[str, str], list] = {}
    for r, e in zip(rows, eff):
        chunks = found.get(r[4])
        if not chunks:
            continue  # the passage's text changed or its document went: never used
        total = per_user.get((r[6], r[4]), 0.0)
        if e > 0 and total > config.user_cap:
            e = e * config.user_cap / total
        g = groups.setdefault((r[1], r[4]), [0.0, 0, r, chunks, set()])
        g[0] += e
        g[1] += 1
        if e > 0:
            g[4].add(r[6] or None)  # who confirmed it and still counts; None: the owner
    keep = [g for g in groups.values() if g[0] >= config.min_strength]
    if not keep:
        return empty
    chunk_ids = []
    for _, _, r, chunks, _ in keep:
        here = [c for c in chunks if c[1] == r[5]] or chunks
        chunk_ids.append(here[0][0])
    return MemoryPatterns(
        vectors=np.stack([np.frombuffer(g[2][2], dtype=np.float32) for g in keep]),
        grams=tuple(unpack_grams(g[2][3]) for g in keep),
        weights=np.array([g[0] for g in keep], dtype=np.float32),
        chunk_ids=np.array(chunk_ids, dtype=np.int64),
        questions=tuple(g[2][0] for g in keep),
        support=np.array([g[1] for g in keep], dtype=np.int64),
        vouched=np.array([None in g[4] or len(g[4]) >= config.vouching_users for g in keep], dtype=bool),
    )
