"""What `kb serve` serves: collections (one KB directory each), their source folders, the key store, limits.

A TOML file (kb serve --config server.toml):

    keys = "keys.sqlite"             # the API key store; relative paths are relative to this file
    max_upload_mb = 20               # per uploaded file
    max_request_kb = 256             # per JSON request body

    [collections.billing]
    kb_dir = "kbs/billing"

    [[collections.billing.sources]]  # folders a sync job may read (and nothing else)
    path = "docs/billing-public"
    visibility = "public"
    tags = ["faq"]

Without a file, `kb serve --kb-dir DIR [--source FOLDER ...]` serves one collection named
"default". Paths are resolved once, here; requests never name a path of their own.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from kb import KBError, check_labels

COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class SourceConfig:
    """A folder a collection syncs from: its documents get this visibility, these tags and key prefix;
    base_url: the wiki address a Confluence export's pages link to (see ingest.IngestConfig)."""

    path: Path
    visibility: str = "internal"
    tags: tuple[str, ...] = ()
    key_prefix: str = ""
    base_url: str = ""

    def __post_init__(self) -> None:
        check_labels(self.visibility, self.tags)


@dataclass(frozen=True)
class CollectionConfig:
    name: str
    kb_dir: Path
    sources: tuple[SourceConfig, ...] = ()

    def __post_init__(self) -> None:
        if not COLLECTION_NAME.match(self.name):
            raise KBError(f"collection name {self.name!r}: use lower-case letters, digits, - and _ (e.g. billing)")


@dataclass(frozen=True)
class ServerConfig:
    """collections by name; keys_path: the key store (kb keys ...); limits in MB / KB."""

    collections: dict[str, CollectionConfig]
    keys_path: Path
    max_upload_mb: int = 20
    max_request_kb: int = 256
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.collections:
            raise KBError("the server has no collections: add [collections.NAME] with kb_dir to the config")
        if not 0 < self.max_upload_mb <= 1024 or not 0 < self.max_request_kb <= 65536:
            raise KBError("max_upload_mb must be in 1..1024 and max_request_kb in 1..65536")


def _source(raw: dict, base: Path, where: str) -> SourceConfig:
    if not isinstance(raw, dict) or "path" not in raw:
        raise KBError(f"{where}: each source needs a path, e.g. {{path = \"docs\", visibility = \"public\"}}")
    tags = raw.get("tags", [])
    if not isinstance(tags, list):
        raise KBError(f"{where}: tags must be a list of strings")
    return SourceConfig(path=(base / str(raw["path"])).resolve(), visibility=str(raw.get("visibility", "internal")),
                        tags=tuple(str(t) for t in tags), key_prefix=str(raw.get("key_prefix", "")),
                        base_url=str(raw.get("base_url", "")))


def load_config(path: Path) -> ServerConfig:
    """The server config from a TOML file; KBError naming the file and the problem."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise KBError(f"cannot read the server config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise KBError(f"{path} is not valid TOML: {exc}") from exc
    base = Path(path).resolve().parent
    collections = {}
    for name, body in (raw.get("collections") or {}).items():
        if not isinstance(body, dict) or "kb_dir" not in body:
            raise KBError(f"{path}: collection {name!r} needs kb_dir")
        sources = tuple(_source(s, base, f"{path} [collections.{name}]") for s in body.get("sources", []))
        collections[name] = CollectionConfig(name, (base / str(body["kb_dir"])).resolve(), sources)
    return ServerConfig(collections=collections, keys_path=(base / str(raw.get("keys", "keys.sqlite"))).resolve(),
                        max_upload_mb=int(raw.get("max_upload_mb", 20)), max_request_kb=int(raw.get("max_request_kb", 256)))


def single_collection(kb_dir: Path, keys_path: Path, sources: list[Path] = (), visibility: str = "internal"
                      ) -> ServerConfig:
    """One collection named "default" on kb_dir (what `kb serve --kb-dir` serves)."""
    srcs = tuple(SourceConfig(Path(s).resolve(), visibility) for s in sources)
    return ServerConfig(collections={"default": CollectionConfig("default", Path(kb_dir).resolve(), srcs)},
                        keys_path=Path(keys_path).resolve())
