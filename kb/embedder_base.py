"""What every embedding model shares: its run settings, the interface callers rely on, length-sorted batching.

Two kinds of model implement it: kb.embedder.Embedder (a transformers model run by torch) and
kb.onnx_embedder.OnnxEmbedder (an int8 ONNX file run by onnxruntime). kb.embedder.load_embedder
picks one by name; nothing else needs to know which it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, Sized, TypeVar

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
Item = TypeVar("Item", bound=Sized)  # what encode_by_length batches: texts, or texts already cut into token ids


@dataclass(frozen=True)
class EmbedderConfig:
    """How to run the model. max_tokens is in the model's own wordpiece tokens."""

    model: str = DEFAULT_MODEL
    batch_size: int = 32  # texts per forward pass of a torch model (an ONNX model has its own, kb.onnx_embedder)
    max_tokens: int = 256
    # "auto": bf16 where the CPU has native bf16, else fp32. "int8": dynamic quantisation (faster
    # still, but cosine to fp32 fell to 0.88 on some SciFact chunks: not for building KBs).
    # bf16 is about 2x faster on such CPUs, but a text's vector then moves by ~1e-3 with what else
    # shares its batch (fp32: ~1e-7); use fp32 where vectors must be reproducible to 1e-5.
    # An ONNX model runs in the precision its file was exported in ("auto" or that one).
    precision: str = "auto"
    threads: int | None = None  # torch's threads; the numpy encoder's BLAS threads (default: 1 for < 16 texts)
    # "cpu", or a torch device such as "cuda" (a Ray GPU actor, ingest.ray_engine): the model and each
    # batch run there; vectors come back as CPU float32 either way. ONNX models run on the CPU only.
    device: str = "cpu"


class TextEmbedder(Protocol):
    """What the KB, the ingest pipeline, the retrievers and eval call on an embedder."""

    name: str
    dim: int
    config: EmbedderConfig
    precision: str
    device: str
    query_instruction: str  # put before a search query by encode_queries ("" for none)

    def encode(
        self, texts: Sequence[str], progress: bool = False, on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def encode_by_length(
    texts: Sequence[Item],
    dim: int,
    batch_size: int,
    encode_batch: Callable[[list[Item]], np.ndarray],
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
    lengths: Sequence[int] | None = None,
) -> np.ndarray:
    """float32 (len(texts), dim): encode_batch over batches of texts in order of length, so padding stays
    small; the output keeps the input order. on_batch(n) is called after each batch of n texts.
    lengths: each text's length in the model's tokens, the padding's own unit (default: len() of each item,
    a text's characters or a token list's tokens)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    order = np.argsort([-n for n in (lengths if lengths is not None else map(len, texts))], kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), unit="chunk", desc="embedding")
    for idx in batches:
        out[idx] = encode_batch([texts[i] for i in idx])
        if bar is not None:
            bar.update(len(idx))
        if on_batch is not None:
            on_batch(len(idx))
    if bar is not None:
        bar.close()
    return out
