"""Query embeddings cached on disk, keyed by (model settings, text), so re-runs skip the model.

Texts are embedded as search queries (the embedder's encode_queries: with its query instruction, if any).

One .npz file per model setting holds the sha256 of each text and its vector. It does not
depend on any KB: the same queries against another KB reuse it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from kb import TextEmbedder


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class QueryVectorCache:
    """Embeds texts through embedder, reusing vectors stored under folder (None: memory only).

    hits/misses count texts served from the cache and texts embedded.
    """

    def __init__(self, folder: str | Path | None, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        cfg = getattr(embedder, "config", None)
        setting = f"{embedder.name}-{getattr(embedder, 'precision', 'x')}-{getattr(cfg, 'max_tokens', 'x')}"
        instruction = getattr(embedder, "query_instruction", "")
        if instruction:  # another query encoding: other vectors (no suffix keeps the files written before)
            setting += "-q" + hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:8]
        self.path = Path(folder) / f"query-vectors-{re.sub(r'[^A-Za-z0-9._-]+', '_', setting)}.npz" if folder else None
        self._memory: dict[str, np.ndarray] = {}
        self._loaded = False
        self.hits = 0
        self.misses = 0

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.path is None or not self.path.exists():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError):
            return  # an unreadable cache is only a cache: embed again and overwrite it
        if vectors.ndim == 2 and vectors.shape[1] == self.embedder.dim and len(keys) == len(vectors):
            self._memory.update(zip((str(k) for k in keys), vectors))

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._memory), dtype="U64")
        vectors = np.stack(list(self._memory.values())).astype(np.float32)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        os.replace(tmp, self.path)

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit rows, in the order of texts."""
        self._load()
        keys = [text_key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._memory))
        if missing:
            wanted = set(missing)
            todo = {k: t for k, t in zip(keys, texts) if k in wanted}
            encoded = self.embedder.encode_queries([todo[k] for k in missing])
            self._memory.update(zip(missing, encoded))
            self._save()
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if not keys:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys]).astype(np.float32)
