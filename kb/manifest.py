"""The manifest: what a KB directory holds and which model built it.

A KB refuses to open when its format version is newer than this code
understands, and refuses to mix embeddings from two models (`kb reembed` moves
a whole KB to another model). kb.sqlite records the model too, in the commit
that writes the vectors; where the two differ, kb.store trusts kb.sqlite.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kb.errors import ManifestError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """Identity of a KB: on-disk format, embedding model and its dimension."""

    model: str
    dim: int
    format_version: int = FORMAT_VERSION

    def check_model(self, model: str, dim: int) -> None:
        """Raise ManifestError unless (model, dim) is what built this KB."""
        if model != self.model or dim != self.dim:
            raise ManifestError(
                f"this KB was built with model {self.model!r} (dim {self.dim}); "
                f"refusing to add embeddings from {model!r} (dim {dim}). "
                f"Use the KB's model (leave --model out), move the whole KB to {model!r} with "
                f"`kb reembed --model {model}`, or ingest into a new --kb-dir."
            )


def read_manifest(kb_dir: Path) -> Manifest | None:
    """The manifest in kb_dir, or None if the directory holds no KB yet."""
    path = Path(kb_dir) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        version = int(raw["format_version"])
        manifest = Manifest(model=str(raw["model"]), dim=int(raw["dim"]), format_version=version)
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc}); the KB directory is damaged") from exc
    if version > FORMAT_VERSION:
        raise ManifestError(
            f"{path}: KB format version {version} is newer than this hopfield-kb "
            f"understands (up to {FORMAT_VERSION}); upgrade hopfield-kb"
        )
    if version < 1:
        raise ManifestError(f"{path}: unknown KB format version {version}")
    return manifest


def write_manifest(kb_dir: Path, manifest: Manifest) -> None:
    """Write the manifest atomically (temp file + rename)."""
    path = Path(kb_dir) / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
