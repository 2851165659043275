"""Recall from the question memory: earlier questions like this one, and the passages they were answered by.

The memory (kb.question_memory) stores past questions x_i (unit embeddings, plus their character views)
with the passage each was confirmed to be answered by and a Hebbian strength w_i. A new question q is the
cue of one hetero-associative Hopfield step (keys: past questions; values: their passages):

    a = softmax([0, beta * (s_i - threshold) + ln w_i]_i),   s_i = (1 - l) cos(q, x_i) + l cos_char(q, x_i)

with a *null pattern* (logit 0) that takes the mass when no past question is close enough (s_i well under
threshold), so a question unlike every earlier one recalls nothing. ln w_i is the Hebbian count: a pair
confirmed n times acts as n stored copies. l = char_share * the reader's character gate: the characters
only count as far as the question is garbled, as in the passage reader. A passage's *mass* is the
attention of its past questions, m_c = sum of a_i over the i answered by c (0..1); the Hopfield reader adds
memory_weight * m_c to its cue, and the passages with mass join its candidates.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from kb import MemoryPatterns, QuestionMemory, char_grams
from retriever.results import MemorySuggestion

MIN_MASS = 0.01  # passages with less recalled mass are left out (no candidate, no cue term)
MAX_RECALLED = 10  # at most this many recalled passages (the most recalled) join a question's candidates
SHOWN_QUESTIONS = 3


def recall_attention(sims: np.ndarray, log_weights: np.ndarray, beta: float, threshold: float) -> np.ndarray:
    """One Hopfield step over the stored questions, with a null pattern: (B, M) attention on the M patterns
    (each row sums to 1 minus the null pattern's share). sims (B, M): cue-pattern similarities."""
    logits = beta * (sims - threshold) + log_weights[None, :]
    top = np.maximum(logits.max(axis=1, keepdims=True), 0.0) if logits.shape[1] else np.zeros((len(sims), 1))
    e = np.exp(logits - top)
    return e / (np.exp(-top) + e.sum(axis=1, keepdims=True))


def chunk_mass(attention: np.ndarray, pattern_chunk: np.ndarray, n_chunks: int) -> np.ndarray:
    """(B, U): the attention of each chunk's patterns summed; pattern_chunk (M,) indexes the U chunks."""
    out = np.zeros((attention.shape[0], n_chunks), dtype=np.float64)
    for b in range(attention.shape[0]):
        out[b] = np.bincount(pattern_chunk, weights=attention[b], minlength=n_chunks)
    return out


@dataclass(frozen=True)
class Recall:
    """One question's recall: chunk ids with mass >= MIN_MASS (best first), their mass, and the suggestions
    shown in the diagnostics (the earlier questions behind each)."""

    chunk_ids: np.ndarray
    mass: np.ndarray
    suggestions: tuple[MemorySuggestion, ...] = ()


class _Index:
    """The memory's patterns in the shapes one lookup needs."""

    def __init__(self, patterns: MemoryPatterns) -> None:
        from scipy import sparse

        self.patterns = patterns
        self.vectors = np.ascontiguousarray(patterns.vectors, dtype=np.float32)
        self.log_weights = np.log(np.maximum(patterns.weights, 1e-9)).astype(np.float64)
        self.chunks, self.pattern_chunk = np.unique(patterns.chunk_ids, return_inverse=True)
        rows = np.repeat(np.arange(len(patterns)), [len(b) for b, _ in patterns.grams])
        buckets = np.concatenate([b for b, _ in patterns.grams]).astype(np.int64) if len(patterns) else np.zeros(0)
        counts = np.concatenate([c for _, c in patterns.grams]) if len(patterns) else np.zeros(0)
        from kb import GRAM_BUCKETS

        m = sparse.csr_matrix(
            ((1 + np.log(np.maximum(counts, 1))).astype(np.float32), (rows, buckets)), shape=(len(patterns), GRAM_BUCKETS)
        )
        df = np.bincount(m.indices, minlength=GRAM_BUCKETS)
        self.idf = (np.log((1 + len(patterns)) / (1 + df)) + 1).astype(np.float32)
        m = m.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1))).reshape(-1)
        self.grams_t = sparse.diags(1 / np.where(norms > 0, norms, 1)).dot(m).T.tocsr().astype(np.float32)

    def char_sims(self, queries: list[str]) -> np.ndarray:
        q = char_grams(queries)
        q.data = (1 + np.log(q.data)).astype(np.float32)
        q = q.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(q.multiply(q).sum(axis=1))).reshape(-1)
        return np.asarray((q @ self.grams_t).todense()) / np.where(norms > 0, norms, 1)[:, None]


_CACHE: dict[tuple, _Index | None] = {}
_CACHE_LOCK = threading.Lock()
REFRESH_SECONDS = 600.0  # decay moves slowly: the patterns are re-read at least this often


class QuestionRecall:
    """Looks questions up in a QuestionMemory for the Hopfield reader. The patterns are loaded once per
    (memory version, KB snapshot, 10 minutes) and shared between readers of the same memory."""

    def __init__(self, memory: QuestionMemory) -> None:
        self.memory = memory

    def index(self, token: str) -> _Index | None:
        version = self.memory.version()
        if version == 0:
            return None
        key = (str(self.memory.path.resolve()), version, token, int(time.time() // REFRESH_SECONDS))
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        self.memory.prune_if_stale()
        patterns = self.memory.patterns()
        index = _Index(patterns) if len(patterns) else None
        with _CACHE_LOCK:
            for old in [k for k in _CACHE if k[0] == key[0]]:
                del _CACHE[old]
            _CACHE[key] = index
        return index

    def lookup(
        self,
        token: str,
        qvecs: np.ndarray,
        queries: list[str],
        gates: list[float],
        beta: float,
        threshold: float,
        char_share: float,
        allowed: np.ndarray | None = None,
    ) -> list[Recall] | None:
        """Each question's Recall, or None when the memory holds nothing usable (the reader is then unchanged).
        qvecs: the (repaired) questions' embeddings; gates: the reader's character gate per question."""
        index = self.index(token)
        if index is None:
            return None
        sims = (index.vectors @ np.ascontiguousarray(qvecs, dtype=np.float32).T).T  # (M, d) @ (d, B): BLAS's fast path
        share = char_share * np.asarray(gates, dtype=np.float32)[:, None]
        if share.any():
            sims = (1 - share) * sims + share * index.char_sims(queries)
        attn = recall_attention(sims.astype(np.float64), index.log_weights, beta, threshold)
        mass = chunk_mass(attn, index.pattern_chunk, len(index.chunks))
        vouched = chunk_mass(attn * index.patterns.vouched, index.pattern_chunk, len(index.chunks))
        if allowed is not None:
            hidden = ~np.isin(index.chunks, allowed)
            mass[:, hidden] = 0.0
            vouched[:, hidden] = 0.0
        out = []
        for b in range(len(queries)):
            keep = np.flatnonzero(mass[b] >= MIN_MASS)
            keep = keep[np.argsort(-mass[b, keep], kind="stable")][:MAX_RECALLED]
            out.append(
                Recall(
                    index.chunks[keep],
                    mass[b, keep].astype(np.float32),
                    self._suggestions(index, attn[b], keep, mass[b], vouched[b]),
                )
            )
        return out

    @staticmethod
    def _suggestions(index: _Index, attn: np.ndarray, keep: np.ndarray, mass: np.ndarray, vouched: np.ndarray) -> tuple:
        out = []
        for u in keep[:3]:
            rows = np.flatnonzero(index.pattern_chunk == u)
            rows = rows[np.argsort(-attn[rows], kind="stable")]
            out.append(
                MemorySuggestion(
                    chunk_id=int(index.chunks[u]),
                    mass=round(float(mass[u]), 4),
                    questions=tuple(index.patterns.questions[i] for i in rows[:SHOWN_QUESTIONS]),
                    n_questions=int((attn[rows] >= MIN_MASS / 10).sum()),
                    vouched_mass=round(float(vouched[u]), 4),
                )
            )
        return tuple(out)


def learn_from_feedback(
    kb, question: str, chunk_ids, helpful: bool, user: str | None = None, embedder=None, origin: str | None = None
) -> int:
    """A thumbs up (Hebbian) or down (anti-Hebbian) on the passages cited for question, into the KB's question
    memory; returns how many associations changed. Passages a sync has changed since are skipped (their
    feedback still lands in the feedback table). user: who gave it (an API key's id), None for nobody."""
    from kb import KBError, query_embedder_for

    ids = [int(c) for c in chunk_ids if c is not None]
    if not ids or not question or not question.strip():
        return 0
    embedder = embedder or query_embedder_for(kb)
    vector = embedder.encode_queries([question])[0]  # a question: embedded as the reader embeds a new one
    memory = QuestionMemory(kb)
    changed = 0
    for cid in ids:
        try:
            memory.learn(
                [(question, vector, cid)],
                +1.0 if helpful else -1.0,
                user,
                origin or ("thumbs_up" if helpful else "thumbs_down"),
            )
            changed += 1
        except KBError:
            continue
    return changed
