"""`kb serve` (the HTTP API under uvicorn), `kb mcp` (the MCP server on stdio) and `kb keys create|list|revoke`.

These are a plug-in of the `kb` command line (entry point group hopfield_kb.commands), so the
CLI package and this one stay beside each other without importing each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path

import click

from api.config import ServerConfig, load_config, single_collection
from api.keys import ROLES, KeyStore
from kb import QUERY_ENCODER_ENV, KBError

DEFAULT_KEYS = Path("kb_keys.sqlite")
KEY_ENV = "HOPFIELD_KB_KEY"  # `kb mcp`'s API key, from the environment: a command line is visible to every user


def config_option(help: str):
    """--config: a server config file (TOML)."""
    return click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help=help)


def keys_option(help: str):
    """--keys: an API key store file."""
    return click.option("--keys", "keys_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help=help)


KB_DIR = click.option(
    "--kb-dir",
    type=click.Path(path_type=Path),
    default=Path("kb_data"),
    show_default=True,
    help="Without --config: the one collection, named default.",
)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _server_config(
    config: Path | None, kb_dir: Path, sources: tuple[Path, ...], visibility: str, keys_path: Path | None
) -> ServerConfig:
    if config is not None:
        loaded = load_config(config)
        return loaded if keys_path is None else dataclasses.replace(loaded, keys_path=keys_path.resolve())
    return single_collection(kb_dir, keys_path or DEFAULT_KEYS, list(sources), visibility)


@click.command("serve")
@config_option("Server config (TOML): collections, their source folders, key store, limits.")
@KB_DIR
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Without --config: a folder sync jobs may read (repeatable).",
)
@click.option("--visibility", default="internal", show_default=True, help="Without --config: the sources' visibility.")
@keys_option(f"API key store [default: the config's keys, else ./{DEFAULT_KEYS}].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
# Explicit, not uvicorn's silent fallback: httptools (from uvicorn[standard]) is what the limits were measured with.
@click.option(
    "--http",
    "http_parser",
    type=click.Choice(["httptools", "h11"]),
    default="httptools",
    show_default=True,
    help="HTTP/1.1 parser (h11: the pure-Python one).",
)
# Optional value: `kb serve --ray` (this machine's cluster, RAY_ADDRESS, or a fresh local Ray) or `--ray HOST:PORT`.
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ADDRESS]",
    help="Serve replicated on a Ray cluster with Ray Serve (HOST:PORT of its head; none: this machine's).",
)
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(1), help="With --ray: replicas.")
@click.option(
    "--max-replicas",
    default=None,
    type=click.IntRange(1),
    help="With --ray: autoscale between --replicas and this many on load.",
)
@click.option(
    "--replica-cpus",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="With --ray: CPUs each replica reserves.",
)
def serve(
    config_path,
    kb_dir,
    sources,
    visibility,
    keys_path,
    host,
    port,
    http_parser,
    ray_address,
    replicas,
    max_replicas,
    replica_cpus,
):
    """Serve the HTTP API (search, cited answers, documents, sync jobs; OpenAPI docs at /docs)."""
    # A server answers for hours: it pays torch's import once, and its warm bf16 embedder quotes sentences ~3x
    # faster than the torch-free encoder a one-shot `kb ask` uses (kb.query_encoder). An explicit choice stands.
    os.environ.setdefault(QUERY_ENCODER_ENV, "torch")
    try:
        config = _server_config(config_path, kb_dir, sources, visibility, keys_path)
        active = [k for k in KeyStore(config.keys_path).list() if k.active()]
    except KBError as exc:
        _fail(str(exc))
    if not active:
        click.echo(
            f"warning: no API keys in {config.keys_path}: every request will be refused (401) until you "
            "run `kb keys create`",
            err=True,
        )
    if ray_address is not None:
        from api.ray_serve import RayServeConfig, serve_until_stopped

        try:
            serve_until_stopped(
                config,
                RayServeConfig(
                    address=ray_address or None,
                    replicas=replicas,
                    max_replicas=max_replicas,
                    replica_cpus=replica_cpus,
                    host=host,
                    port=port,
                ),
                say=lambda line: click.echo(line, err=True),
            )
        except KBError as exc:
            _fail(str(exc))
        return
    import uvicorn

    from api.app import create_app

    names = ", ".join(config.collections)
    click.echo(f"Serving {names} on http://{host}:{port} (API docs: /docs; Ctrl+C stops)", err=True)
    # On SIGTERM, requests in flight get 10 s to finish; then the server stops regardless.
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=10,
        http=http_parser,
    )


@click.command("mcp")
@config_option("Server config (TOML): serve its collections.")
@KB_DIR
@keys_option(f"API key store for {KEY_ENV} [default: the config's keys, else ./{DEFAULT_KEYS}].")
def mcp(config_path, kb_dir, keys_path):
    """Serve the KB to one MCP client (a desktop assistant, an IDE) on stdin/stdout: tools search, ask, get_document,
    list_documents, and the documents as resources. Acts as the KB's owner (every collection and label, read only),
    or with the scope of the API key in the environment variable HOPFIELD_KB_KEY. `kb serve` serves the same tools
    over HTTP at /mcp."""
    os.environ.setdefault(QUERY_ENCODER_ENV, "torch")  # a long-lived server, as kb serve: see there
    token = os.environ.get(KEY_ENV, "").strip() or None
    try:
        config = _server_config(config_path, kb_dir, (), "internal", keys_path)
        if config_path is None and not (kb_dir / "kb.sqlite").exists():
            raise KBError(f"no knowledge base at {kb_dir}: build one with `kb sync FOLDER --kb-dir {kb_dir}`")
        if token is not None and KeyStore(config.keys_path).verify(token) is None:
            raise KBError(f"{KEY_ENV}: invalid, expired or revoked API key (key store {config.keys_path})")
    except KBError as exc:
        _fail(str(exc))
    import threading

    from api.mcp_server import serve_stdio
    from api.services import Services

    services = Services.build(config)
    threading.Thread(target=services.warm_up, name="warm-up", daemon=True).start()
    serve_stdio(services, token)


@click.group("keys")
def keys() -> None:
    """Create, list and revoke API keys (stored hashed; a key is shown once, when created)."""


_store_options = [
    config_option("Server config whose key store to use."),
    keys_option(f"Key store file [default: the config's keys, else ./{DEFAULT_KEYS}]."),
]


def _store(config_path: Path | None, keys_path: Path | None) -> KeyStore:
    if keys_path is not None:
        return KeyStore(keys_path)
    if config_path is not None:
        return KeyStore(load_config(config_path).keys_path)
    return KeyStore(DEFAULT_KEYS)


def _with_store(func):
    for option in reversed(_store_options):
        func = option(func)
    return func


def _expiry(value: str | None) -> float | None:
    """--expires: a duration from now (90d, 12h, 4w, 30m) or a date (2027-01-31); None for never."""
    if not value:
        return None
    match = re.fullmatch(r"\s*(\d{1,5})\s*([mhdw])\s*", value)
    if match:
        unit = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[match.group(2)]
        return time.time() + int(match.group(1)) * unit
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise KBError(f"--expires {value!r}: give a duration such as 90d, 12h or 4w, or a date such as 2027-01-31") from None
    return (when if when.tzinfo else when.astimezone()).timestamp()


def _when(timestamp: float | None, never: str) -> str:
    return dt.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds") if timestamp else never


@keys.command("create")
@_with_store
@click.option("--name", required=True, help="Who or what uses the key (e.g. helpdesk-bot).")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="read",
    show_default=True,
    help="read: search, ask, documents, feedback; write: also upload, delete, sync; admin: also metrics.",
)
# No default scope wider than asked for: a key names its collections and labels (* must be written out).
@click.option("--collections", required=True, help="Comma-separated collection names, or * for all.")
@click.option("--visibility", required=True, help="Comma-separated labels the key may see (e.g. public), or * for all.")
@click.option(
    "--expires",
    default=None,
    metavar="WHEN",
    help="Refuse the key after this: a duration (90d, 12h, 4w) or a date (2027-01-31). Default: never.",
)
@click.option("--json", "as_json", is_flag=True)
def create(config_path, keys_path, name, role, collections, visibility, expires, as_json):
    """Create a key and print it once (it is stored hashed and cannot be shown again)."""
    try:
        token, record = _store(config_path, keys_path).create(
            name, role, collections.split(","), visibility.split(","), expires_at=_expiry(expires)
        )
    except KBError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "key": token,
                    "id": record.id,
                    "name": record.name,
                    "role": record.role,
                    "collections": list(record.collections),
                    "visibility": list(record.visibility),
                    "expires_at": record.expires_at,
                }
            )
        )
        return
    click.echo(token)
    click.echo(
        f"key {record.id} ({record.name}): role {record.role}, collections {','.join(record.collections)}, "
        f"visibility {','.join(record.visibility)}, expires {_when(record.expires_at, 'never')}. "
        "Store it now: it is not kept and cannot be shown again.",
        err=True,
    )


@keys.command("list")
@_with_store
@click.option("--json", "as_json", is_flag=True)
def list_keys(config_path, keys_path, as_json):
    """Every key's id, name, role, scope, expiry and last use (never the key itself)."""
    try:
        records = _store(config_path, keys_path).list()
    except KBError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in records], indent=2))
        return
    for r in records:
        state = "revoked" if r.revoked_at else "expired" if not r.active() else "active"
        click.echo(
            f"{r.id}  {state:<7}  {r.role:<5}  collections={','.join(r.collections)}  "
            f"visibility={','.join(r.visibility)}  created {_when(r.created_at, '-')}  "
            f"expires {_when(r.expires_at, 'never')}  last used {_when(r.last_used_at, 'never')}  "
            f"{json.dumps(r.name)}"
        )


@keys.command("revoke")
@_with_store
@click.argument("key_id")
def revoke(config_path, keys_path, key_id):
    """Revoke the key with id KEY_ID (see kb keys list); requests with it fail within 5 seconds."""
    try:
        record = _store(config_path, keys_path).revoke(key_id)
    except KBError as exc:
        _fail(str(exc))
    click.echo(f"revoked {record.id} ({record.name})")
