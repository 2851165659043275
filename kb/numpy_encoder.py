"""The default model's BERT encoder run in numpy, for questions: a first answer without importing torch.

`import torch` and loading the model through transformers take ~5.7 s of a fresh `kb ask`; this reads the
same model.safetensors (safetensors.numpy) and tokenizer.json (tokenizers) from the model's package and runs
the same forward pass in float32 numpy, so there is no exported copy to build, store or go stale. Its query
vectors agree with torch's (cosine >= 0.9999 to fp32 torch, see tests/test_numpy_encoder.py; bench prints
the minimum on real questions). Ingest keeps torch (bf16 where the CPU has it: faster in bulk).

    >>> enc = NumpyEncoder(EmbedderConfig())          # doctest: +SKIP
    >>> enc.encode_queries(["refund window"]).shape   # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kb.blas import blas_for, blas_threads
from kb.embedder_base import EmbedderConfig, encode_by_length
from kb.errors import KBError

# What this encoder reproduces: a BertModel with absolute positions and exact (erf) GELU, mean-pooled.
_BERT = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}


def bert_folder_supported(folder: Path) -> bool:
    """Whether folder holds a BERT model this encoder runs exactly (config.json, model.safetensors,
    tokenizer.json, mean pooling); anything else keeps the torch embedder."""
    try:
        config = json.loads((folder / "config.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        all(config.get(k, "absolute" if k == "position_embedding_type" else None) == v for k, v in _BERT.items())
        and pooling.get("pooling_mode_mean_tokens") is True
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


# erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32's rounding of GELU's output): numpy
# operations only, ~3x faster than scipy.special.erf here, and no scipy import on the question path.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
_SQRT_HALF = np.float32(np.sqrt(0.5))


def gelu(h: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU BERT uses, h * Phi(h), in float32."""
    z = np.abs(h) * _SQRT_HALF
    t = np.float32(1.0) / (np.float32(1.0) + _ERF_P * z)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))
    erf = np.copysign(np.float32(1.0) - poly * np.exp(-z * z), h)
    out: np.ndarray = np.float32(0.5) * h * (np.float32(1.0) + erf)
    return out


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


class NumpyEncoder:
    """Encodes texts into (n, dim) float32 unit vectors with a BERT model's weights in numpy (the CPU, fp32)."""

    query_instruction = ""  # MiniLM embeds a query exactly as a passage
    precision = "fp32"
    device = "cpu"

    def __init__(self, config: EmbedderConfig, folder: Path) -> None:
        from tokenizers import Tokenizer

        if not bert_folder_supported(folder):
            raise KBError(
                f"{folder} is not a mean-pooled BERT model with model.safetensors and tokenizer.json; "
                "use the torch embedder (kb.load_embedder)"
            )
        self.config = config
        self.name = config.model
        self._folder = folder
        spec = json.loads((folder / "config.json").read_text())
        self.dim = int(spec["hidden_size"])
        self._heads = int(spec["num_attention_heads"])
        self._layers = int(spec["num_hidden_layers"])
        self._eps = float(spec.get("layer_norm_eps", 1e-12))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self._batch_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._batch_tokenizer.enable_truncation(max_length=config.max_tokens)
        pad = self._batch_tokenizer.token_to_id("[PAD]")
        self._batch_tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token="[PAD]")
        self._weights: dict[str, np.ndarray] | None = None  # read at the first encode (~0.1 s, memory-mapped)
        self._lock = threading.Lock()

    def _params(self) -> dict[str, np.ndarray]:
        if self._weights is None:
            with self._lock:
                if self._weights is None:
                    from safetensors.numpy import load_file

                    raw = load_file(str(self._folder / "model.safetensors"))
                    # Linear layers as (in, out), so x @ w needs no transpose per call.
                    linear = {k for k, v in raw.items() if k.startswith("encoder.") and v.ndim == 2}
                    self._weights = {k: np.ascontiguousarray(v.T) if k in linear else v for k, v in raw.items()}
        return self._weights

    def encode(
        self, texts: Sequence[str], progress: bool = False, on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed texts; returns float32 (len(texts), dim), rows L2-normalised (length-sorted batches)."""
        # config.threads: BLAS threads; by default one for a question or an answer's sentences (see kb/blas.py).
        threads = blas_threads(self.config.threads) if self.config.threads else blas_for(len(texts))
        with threads:
            return encode_by_length(texts, self.dim, self.config.batch_size, self._encode_batch, progress, on_batch)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries (as passages: MiniLM has no query instruction)."""
        return self.encode(texts)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        w = self._params()
        encodings = self._batch_tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        e = "embeddings."
        x = (
            w[e + "word_embeddings.weight"][ids]
            + w[e + "position_embeddings.weight"][np.arange(length)][None, :, :]
            + w[e + "token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"], self._eps)
        heads, size = self._heads, self.dim // self._heads
        # Padding is masked out of attention as transformers does: the float32 minimum added to its scores.
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(size))
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def linear(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
                # One 2-D product (BLAS) rather than a stacked one, which numpy runs per text.
                flat = v.reshape(batch * length, v.shape[-1]) @ w[p + name + ".weight"]
                out: np.ndarray = (flat + w[p + name + ".bias"]).reshape(batch, length, -1)
                return out

            def split(v: np.ndarray) -> np.ndarray:
                # Contiguous (B, heads, L, size): numpy's stacked matmul hands only contiguous blocks to BLAS.
                return np.ascontiguousarray(v.reshape(batch, length, heads, size).transpose(0, 2, 1, 3))

            q = split(linear(x, "attention.self.query"))
            k = np.ascontiguousarray(split(linear(x, "attention.self.key")).transpose(0, 1, 3, 2))
            v = split(linear(x, "attention.self.value"))
            scores = (q @ k) * scale + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = _layer_norm(
                linear(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self._eps,
            )
            h = linear(x, "intermediate.dense")
            h = gelu(h)
            x = _layer_norm(
                linear(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self._eps
            )
        m = mask[:, :, None]
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        pooled = pooled.astype(np.float32)
        out: np.ndarray = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    def count_tokens(self, text: str) -> int:
        """Number of model wordpiece tokens in text (without special tokens)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def __repr__(self) -> str:
        return f"NumpyEncoder({self.name!r})"
