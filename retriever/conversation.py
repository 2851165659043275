"""Follow-up questions read in the context of the conversation before them.

A conversation is a short-term associative memory. It stores two kinds of pattern:
1. the turn before: the previous user turn and the reply to it, read as one *context text*;
2. the passages earlier turns were answered from (each user turn's top hits, newest weighted most).

The new turn is a partial cue that the Hopfield reader completes against both and against the KB.
Its cue over the candidates gains two terms (see HopfieldRetriever._cue):

    + g * context_weight * (z(dense of the context text) + bm25_weight * z(BM25 of the context text))
    + g * visited_weight * z(m_c),   m_c = (1/beta_v) ln sum_v exp(beta_v cos(x_c, x_v) + ln w_v)

m_c is how strongly the visited passages recall candidate c (the log-sum-exp of one Hopfield energy
term, w_v = decay^age), so a passage beside the ones the conversation has been reading is lifted. The
gate g grows for turns too short to stand alone ("and for annual plans?", "what if I already did?"):
g = 1 + short_boost * max(0, 1 - content words / short_words). The visited and context weights were chosen by
cross-validation across doc2dial dialogues (eval.conversations); the other settings were set while developing
on the same set (README "Conversations" says what that means for the figures).

A self-contained turn must not be dragged back by the past ("What is the fee for American Express
payments?" after two turns about refunds). A turn that shares no content word with the conversation and
whose own ranking is confident (its best passage's z-score at least switch_margin above the second) is
read as a new topic: the past's weights are multiplied by switch_scale.

Earlier turns' hits are recomputed from the history a caller sends (the same history always gives the
same hits) and cached per (KB snapshot, filter, conversation prefix): on the warm path a follow-up costs
one reader pass and one embedding of the context text.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from kb import DocumentFilter, KBError
from retriever.results import HistoryUsed

ROLES = ("user", "assistant")
# Common function words: a turn made of these alone ("and that one?") cannot stand on its own.
_FUNCTION_WORDS = frozenset(
    """
a about after again all also am an and any are as at be been before being but by can could did do does doing
for from had has have he her here hers him his how i if in into is it its just me more most my no nor not now of
off ok okay on once only or other our out over please same she should so some such than thank thanks that the
their them then there these they this those through to too under until up very was we were what when where which
while who whom why will with would yes you your yours
""".split()
)
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Turn:
    """One message of a conversation: role "user" or "assistant", and its text."""

    role: str
    content: str


@dataclass(frozen=True)
class HistoryConfig:
    """How much of a conversation is read, and how strongly.

    max_turns: most recent user turns read, each with the replies after it; max_chars: the total length of
    the messages read (older ones are dropped first; the newest is cut to its last max_chars if longer).
    context_weight: weight of the reader's ranking of the turn in its context (previous user turn, the reply,
    the turn), relative to its ranking of the turn alone (1); conversation_weight: of its ranking of all the
    user turns, newest first;
    visited_weight: weight of the recall by the passages earlier turns were answered from;
    visited_depth: top hits of each earlier user turn stored as visited passages; visited_decay: weight
    of a turn's passages per turn of age (newest 1); visited_beta: inverse temperature of their recall
    (over cosines); short_words, short_boost: the gate; switch_margin, switch_scale: the new-topic rule
    (module docstring). Zero weights read nothing.
    """

    max_turns: int = 10
    max_chars: int = 8000
    context_weight: float = 0.5
    conversation_weight: float = 0.3
    visited_weight: float = 0.7
    visited_depth: int = 3
    visited_decay: float = 0.5
    visited_beta: float = 10.0
    short_words: int = 6
    short_boost: float = 1.0
    switch_margin: float = 1.5
    switch_scale: float = 0.25

    def __post_init__(self) -> None:
        if self.max_turns < 0 or self.max_chars < 0:
            raise KBError("max_turns and max_chars must be >= 0 (0 reads no history)")
        for name in ("context_weight", "conversation_weight", "visited_weight", "short_boost"):
            if not getattr(self, name) >= 0:
                raise KBError(f"{name} must be >= 0, not {getattr(self, name)}")
        if self.visited_depth < 0 or self.short_words < 1:
            raise KBError("visited_depth must be >= 0 and short_words >= 1")
        if not 0 < self.visited_decay <= 1:
            raise KBError(f"visited_decay must be in (0, 1], not {self.visited_decay}")
        if not self.visited_beta > 0:
            raise KBError(f"visited_beta must be > 0, not {self.visited_beta}")
        if not 0 <= self.switch_scale <= 1:
            raise KBError(f"switch_scale must be in [0, 1] (1 turns the new-topic rule off), not {self.switch_scale}")


@dataclass(frozen=True)
class Context:
    """What the reader adds to one question's cue from the conversation before it.

    views: (text, unit embedding, gated weight) of each reading of the turn with its past: the turn in its
    context (previous user turn, the reply, the turn) and the conversation's user turns, newest first;
    visited, visited_log_weights: chunk ids of the passages earlier turns were answered from and ln of
    their weights; visited_weight: the gated weight of their recall; gate: g (>= 1);
    turns: the messages read, oldest first (what a caller is shown as "used"); novel: the turn shares no
    content word with them; switch_margin, switch_scale: the new-topic rule (HistoryConfig).
    """

    views: tuple[tuple[str, np.ndarray, float], ...]
    visited: np.ndarray
    visited_log_weights: np.ndarray
    visited_weight: float
    gate: float
    visited_beta: float
    turns: tuple[Turn, ...] = field(default_factory=tuple)
    novel: bool = False
    switch_margin: float = 1.5
    switch_scale: float = 0.25

    @property
    def text(self) -> str:
        """The turn in its context: what a retriever that cannot read a Context ranks instead."""
        return self.views[0][0]


def parse_history(history: Iterable[Any] | None, field_name: str = "history") -> tuple[Turn, ...]:
    """Turns from [{"role", "content"}, ...] (or Turn objects); other roles (system, tool) are skipped.

    Raises KBError naming the item and the fix for anything else (a missing role, content not text).
    """
    turns = []
    role: Any  # a dict's values are checked below
    content: Any
    for i, item in enumerate(history or ()):
        if isinstance(item, Turn):
            role, content = item.role, item.content
        elif isinstance(item, dict):
            role, content = item.get("role"), item.get("content")
        else:
            raise KBError(f"{field_name}[{i}] must be an object with role and content, not {type(item).__name__}")
        if role not in ROLES:
            if isinstance(role, str):
                continue  # system and tool messages carry no question or answer
            raise KBError(f"{field_name}[{i}].role must be 'user' or 'assistant'")
        if not isinstance(content, str):
            raise KBError(f"{field_name}[{i}].content must be text")
        if content.strip():
            turns.append(Turn(role, content.strip()))
    return tuple(turns)


def within_budget(turns: Sequence[Turn], config: HistoryConfig) -> tuple[Turn, ...]:
    """The newest messages that fit config.max_turns user turns (with their replies) and config.max_chars,
    oldest first."""
    kept: list[Turn] = []
    chars = users = 0
    for turn in reversed(turns):
        users += turn.role == "user"
        room = config.max_chars - chars
        if room <= 0 or users > config.max_turns:
            break
        text = turn.content if len(turn.content) <= room else turn.content[-room:]
        kept.append(Turn(turn.role, text))
        chars += len(text)
    return tuple(reversed(kept))


def content_words(text: str) -> list[str]:
    """The words of text that are not common function words, lower-cased."""
    return [w for w in _WORDS.findall(text.lower()) if w not in _FUNCTION_WORDS]


def gate(question: str, config: HistoryConfig) -> float:
    """g >= 1: how much a turn leans on the conversation, from its count of content words."""
    return 1.0 + config.short_boost * max(0.0, 1.0 - len(content_words(question)) / config.short_words)


def is_novel(question: str, turns: Sequence[Turn], min_words: int = 3) -> bool:
    """The turn has min_words or more content words and shares none with turns (words compared by their first
    five letters, so "payment" meets "payments")."""
    own = {w[:5] for w in content_words(question)}
    past = {w[:5] for t in turns for w in content_words(t.content)}
    return len(own) >= min_words and not own & past


def context_messages(turns: Sequence[Turn]) -> list[str]:
    """The previous user turn and the replies after it (the last message when no user turn is left)."""
    if not turns:
        return []
    last_user = max((i for i, t in enumerate(turns) if t.role == "user"), default=len(turns) - 1)
    return [t.content for t in turns[last_user:]]


def user_messages(turns: Sequence[Turn]) -> list[str]:
    """Every earlier user turn, newest first."""
    return [t.content for t in reversed(turns) if t.role == "user"]


def context_text(turns: Sequence[Turn], question: str) -> str:
    """The turn in its context: the previous user turn, the replies after it, and the turn itself, as one text
    ("" when there is no earlier turn)."""
    return " ".join(context_messages(turns) + [question]) if turns else ""


def with_previous_question(turns: Sequence[Turn], question: str) -> str:
    """The previous user turn (if any) followed by question: what the answer layer scores sentences against,
    so "and for annual plans?" quotes the sentence about annual plans' refund window."""
    previous = [t.content for t in turns if t.role == "user"][-1:]
    return " ".join(previous + [question])


def conversation_text(turns: Sequence[Turn], question: str) -> str:
    """The turn and every earlier user turn, newest first: what the conversation has been asking about."""
    return " ".join([question] + user_messages(turns))


def _blend(retriever, messages: list[str], question: str) -> np.ndarray:
    """The unit mean of the turn's and the messages' embeddings: the dense reading of their concatenation, made
    of vectors earlier turns already computed (each message is embedded once per process, not once per turn)."""
    vectors = [retriever.embed_queries([question])[0]] + [_message_vector(retriever, m) for m in messages]
    mean = np.mean(vectors, axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-9)).astype(np.float32)


def _message_vector(retriever, text: str) -> np.ndarray:
    key = (id(retriever.embedder), text)
    vector = _MESSAGES.get(key)
    if vector is None:
        vector = retriever.embedder.encode_queries([text])[0]  # an earlier question, embedded as questions are
        _MESSAGES.put(key, vector)
    return vector


def history_used(context: Context, scale: float = 1.0) -> HistoryUsed:
    """The caller-facing summary of a Context (no vectors); scale: what the reader multiplied its weights by
    (switch_scale for a turn it read as a new topic)."""
    return HistoryUsed(
        turns=tuple((t.role, t.content) for t in context.turns),
        gate=round(context.gate, 4),
        views=tuple((text, round(float(w * scale), 4)) for text, _, w in context.views),
        visited=int(len(context.visited)),
        visited_weight=round(context.visited_weight * scale, 4),
        new_topic=scale < 1.0,
    )


def visited_recall(candidates: np.ndarray, visited: np.ndarray, log_weights: np.ndarray, beta: float) -> np.ndarray:
    """m_c = (1/beta) ln sum_v exp(beta cos(x_c, x_v) + ln w_v) for each candidate row of candidates (C, d),
    visited (V, d) unit vectors: (C,). The log-sum-exp of a Hopfield energy term, computed stably."""
    logits = beta * (candidates @ visited.T) + log_weights[None, :]
    top = logits.max(axis=1, keepdims=True)
    return ((np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]) / beta).astype(np.float32)


class _LRU:
    """A small thread-safe least-recently-used map (earlier turns' hits, message vectors)."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple, value: np.ndarray) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


# {(KB dir, snapshot, filter, retriever, config, conversation prefix): that prefix's last user turn's top hits}
_VISITED = _LRU(2048)
# {(embedder, message text): its vector}: ~1.5 KiB each, so ~6 MiB
_MESSAGES = _LRU(4096)


def build_context(
    retriever, question: str, turns: Sequence[Turn], config: HistoryConfig, where: DocumentFilter | None = None, corpus=None
) -> Context | None:
    """The Context of question after turns (already parsed), or None when there is nothing to read.

    retriever: the Hopfield reader that will rank question (it also ranks earlier user turns, once each
    per conversation prefix, to know which passages they were answered from).
    """
    turns = within_budget(turns, config)
    if not turns:
        return None
    g = gate(question, config)
    if not retriever.reads_context:  # it ranks the turn in its context as one text (Retriever.rank): nothing more
        return Context(
            views=((context_text(turns, question), np.zeros(0, np.float32), g * config.context_weight),),
            visited=np.zeros(0, np.int64),
            visited_log_weights=np.zeros(0, np.float32),
            visited_weight=0.0,
            gate=g,
            visited_beta=config.visited_beta,
            turns=turns,
        )
    texts = [context_text(turns, question), conversation_text(turns, question)]
    weights = [g * config.context_weight, g * config.conversation_weight]
    # The turn in its context is embedded as one text (its meaning is more than the mean of its parts: 0.02 of
    # follow-up recall@1 on doc2dial); the conversation's user turns are blended from vectors already computed.
    vectors = [retriever.embed_queries(texts[:1])[0], _blend(retriever, user_messages(turns), question)]
    visited, log_w = _visited(retriever, turns, config, where, corpus)
    return Context(
        views=tuple(zip(texts, vectors, weights)),
        visited=visited,
        visited_log_weights=log_w,
        visited_weight=g * config.visited_weight,
        gate=g,
        visited_beta=config.visited_beta,
        turns=turns,
        novel=is_novel(question, turns),
        switch_margin=config.switch_margin,
        switch_scale=config.switch_scale,
    )


def _visited(retriever, turns: Sequence[Turn], config: HistoryConfig, where, corpus) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ids the earlier user turns were answered from (each turn ranked with its own history, cached),
    and ln of their weights (decay^age, the newest user turn age 0)."""
    if config.visited_weight == 0 or config.visited_depth == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    from retriever.corpus import corpus_for

    corpus = corpus or corpus_for(retriever.kb)
    users = [i for i, t in enumerate(turns) if t.role == "user"]
    ids, logw = [], []
    for age, i in enumerate(reversed(users)):
        key = (
            str(retriever.kb.dir),
            corpus.snapshot.token,
            where,
            retriever.name,
            config,
            tuple((t.role, t.content) for t in turns[: i + 1]),
        )
        top = _VISITED.get(key)
        if top is None:
            earlier = build_context(retriever, turns[i].content, turns[:i], config, where, corpus)
            ranked = retriever.rank(
                [turns[i].content], k=config.visited_depth, where=where, corpus=corpus, contexts=[earlier]
            )[0]
            top = np.asarray(ranked.ids[: config.visited_depth], dtype=np.int64)
            _VISITED.put(key, top)
        ids.append(top)
        logw.append(np.full(len(top), age * np.log(config.visited_decay), dtype=np.float32))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(ids), np.concatenate(logw)
