"""What `kb serve` serves: collections (one KB directory each), their source folders, the key store, limits.

A TOML file (kb serve --config server.toml):

    keys = "keys.sqlite"             # the API key store; relative paths are relative to this file
    max_upload_mb = 20               # per uploaded file
    max_request_kb = 256             # per JSON request body
    rate_limit = "1200/10 seconds"   # requests per key, moving window ("limits" notation; ";" joins windows)
    concurrency_per_key = 48         # requests of one key in progress at once
    feedback_limit = "30/minute"     # feedback posts per key
    upload_slots = 4                 # uploads parsed at once by the server ...
    upload_slots_per_key = 2         # ... of which one key may hold this many

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
from typing import Sequence

from kb import KBError, check_labels, without_paths

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
    # Per-key limits (docs/security.md): generous enough for 32 busy clients sharing one key.
    rate_limit: str = "1200/10 seconds"  # 120/s on average, bursts allowed: 32 busy clients make ~60/s
    concurrency_per_key: int = 48
    feedback_limit: str = "30/minute"
    upload_slots: int = 4
    upload_slots_per_key: int = 2

    def __post_init__(self) -> None:
        if not self.collections:
            raise KBError("the server has no collections: add [collections.NAME] with kb_dir to the config")
        if not 0 < self.max_upload_mb <= 1024 or not 0 < self.max_request_kb <= 65536:
            raise KBError("max_upload_mb must be in 1..1024 and max_request_kb in 1..65536")
        if not 1 <= self.concurrency_per_key <= 10_000:
            raise KBError("concurrency_per_key must be in 1..10000")
        if not 1 <= self.upload_slots_per_key <= self.upload_slots <= 64:
            raise KBError("need 1 <= upload_slots_per_key <= upload_slots <= 64")
        for name in ("rate_limit", "feedback_limit"):
            _check_rate(name, getattr(self, name))


def _check_rate(name: str, value: str) -> None:
    from limits import parse_many

    try:
        if not parse_many(value):
            raise ValueError("empty")
    except ValueError as exc:
        raise KBError(f'{name} = {value!r} is not a rate such as "100/second" or "30/minute;500/hour" ({exc})') from None


def _source(raw: dict, base: Path, where: str) -> SourceConfig:
    if not isinstance(raw, dict) or "path" not in raw:
        raise KBError(f'{where}: each source needs a path, e.g. {{path = "docs", visibility = "public"}}')
    tags = raw.get("tags", [])
    if not isinstance(tags, list):
        raise KBError(f"{where}: tags must be a list of strings")
    return SourceConfig(
        path=(base / str(raw["path"])).resolve(),
        visibility=str(raw.get("visibility", "internal")),
        tags=tuple(str(t) for t in tags),
        key_prefix=str(raw.get("key_prefix", "")),
        base_url=str(raw.get("base_url", "")),
    )


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
    try:
        limits = {name: kind(raw[name]) for name, kind in _LIMITS.items() if name in raw}
    except (TypeError, ValueError) as exc:
        raise KBError(f"{path}: a limit is not a number or rate ({exc})") from None
    return ServerConfig(collections=collections, keys_path=(base / str(raw.get("keys", "keys.sqlite"))).resolve(), **limits)


_LIMITS = {
    "max_upload_mb": int,
    "max_request_kb": int,
    "rate_limit": str,
    "concurrency_per_key": int,
    "feedback_limit": str,
    "upload_slots": int,
    "upload_slots_per_key": int,
}


def single_collection(
    kb_dir: Path, keys_path: Path, sources: Sequence[Path] = (), visibility: str = "internal"
) -> ServerConfig:
    """One collection named "default" on kb_dir (what `kb serve --kb-dir` serves)."""
    srcs = tuple(SourceConfig(Path(s).resolve(), visibility) for s in sources)
    return ServerConfig(
        collections={"default": CollectionConfig("default", Path(kb_dir).resolve(), srcs)},
        keys_path=Path(keys_path).resolve(),
    )


def scrub_paths(text: str, config: ServerConfig) -> str:
    """text without the server's paths, for a reply: a collection's folder becomes its name, a source folder its
    name, the key store "the key store", and any other absolute path its last part (kb.without_paths)."""
    names = {str(config.keys_path): "the key store"}
    for c in config.collections.values():
        names.update({str(s.path): s.key_prefix.strip("/") or s.path.name for s in c.sources})
        names[str(c.kb_dir)] = f"collection {c.name}"
    return without_paths(text, names)
