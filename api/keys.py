"""API keys: created once and shown once, stored hashed, scoped to collections, a role and visibilities.

A key reads "hkb_<id>_<secret>": id (12 hex characters) finds the row, secret (32 random bytes,
URL-safe) proves it. Only SHA-256(secret) is stored: the secret has 256 bits of entropy, so a
slow password hash would add nothing but latency. Comparison is constant-time (hmac), and an
unknown id is compared against a dummy hash so a wrong id costs the same time as a wrong secret.

Roles: read (search, ask, documents, feedback) < write (upload, delete, sync) < admin (metrics,
every collection's sync). collections: names or ("*",); visibility: labels or ("*",).
A key may carry an expiry (refused after it, like a revoked key); its last use is recorded (at most
once a minute). The store is created 0600 in a folder only its owner may enter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from kb import KBError

ROLES = ("read", "write", "admin")
_TOKEN = re.compile(r"^hkb_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY = hashlib.sha256(b"no such key").hexdigest()
SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_sha256 TEXT NOT NULL, role TEXT NOT NULL,
    collections TEXT NOT NULL, visibility TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL
);
"""
# Columns added after the first release: a store from before gets them on its next write.
LATER_COLUMNS = (("expires_at", "REAL"), ("last_used_at", "REAL"))
COLUMNS = "id, name, role, collections, visibility, created_at, revoked_at, expires_at, last_used_at"
LAST_USE_EVERY = 60.0  # seconds: how stale `kb keys list`'s last use may be (a write per request would be a cost)


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret). allows(collection, role) answers the scope question."""

    id: str
    name: str
    role: str
    collections: tuple[str, ...]
    visibility: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    expires_at: float | None = None
    last_used_at: float | None = None

    def active(self, now: float | None = None) -> bool:
        """Not revoked and not past its expiry."""
        now = time.time() if now is None else now
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def can_use(self, collection: str) -> bool:
        return "*" in self.collections or collection in self.collections

    def has_role(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def sees_everything(self) -> bool:
        return "*" in self.visibility

    def visible(self) -> tuple[str, ...] | None:
        """The visibility labels this key may see, None for all."""
        return None if self.sees_everything else self.visibility


def _record(row) -> ApiKey:
    return ApiKey(
        row[0], row[1], row[2], tuple(json.loads(row[3])), tuple(json.loads(row[4])), row[5], row[6], row[7], row[8]
    )


def _columns(con: sqlite3.Connection) -> str:
    """COLUMNS for this store; a store from before the later columns (read-only, say) reads them as NULL."""
    have = {r[1] for r in con.execute("PRAGMA table_info(keys)")}
    return ", ".join(c if c in have or c not in dict(LATER_COLUMNS) else f"NULL AS {c}" for c in COLUMNS.split(", "))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _names(values: list[str] | tuple[str, ...], what: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    if not out:
        raise KBError(f"a key needs at least one {what} (or * for all)")
    for v in out:
        if v != "*" and not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", v):
            raise KBError(f"{what} {v!r}: use lower-case letters, digits, - and _, or *")
    return out


class KeyStore:
    """The key table in a small SQLite file (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        if not write and not self.path.exists():
            raise KBError(f"no API key store at {self.path}: create a key with `kb keys create`")
        try:
            if write and not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # never readable by others
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise KBError(f"cannot open the API key store {self.path}: {exc}") from exc
        try:
            if write:
                con.executescript(SCHEMA)
                have = {r[1] for r in con.execute("PRAGMA table_info(keys)")}
                for column, kind in LATER_COLUMNS:
                    if column not in have:
                        con.execute(f"ALTER TABLE keys ADD COLUMN {column} {kind}")
            yield con
        except sqlite3.DatabaseError as exc:
            raise KBError(
                f"the API key store {self.path} cannot be used ({exc}); restore it or create new keys in a new file"
            ) from exc
        finally:
            con.close()

    def create(
        self, name: str, role: str, collections: list[str], visibility: list[str], expires_at: float | None = None
    ) -> tuple[str, ApiKey]:
        """(the key, shown once and never stored, its record). Raises KBError for a bad role, scope or expiry."""
        if expires_at is not None and not expires_at > time.time():
            raise KBError("a key's expiry must be in the future")
        if role not in ROLES:
            raise KBError(f"role {role!r}: choose one of {', '.join(ROLES)}")
        if not name.strip() or len(name) > 100 or any(c in name for c in "\r\n\t"):
            raise KBError("a key needs a name of 1-100 characters on one line (what or who uses it)")
        cols, vis = _names(collections, "collection"), _names(visibility, "visibility")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        record = ApiKey(key_id, name.strip(), role, cols, vis, time.time(), expires_at=expires_at)
        with self._connect(write=True) as con:
            con.execute(
                "INSERT INTO keys (id, name, secret_sha256, role, collections, visibility, created_at, "
                "expires_at) VALUES (?,?,?,?,?,?,?,?)",
                (key_id, record.name, _hash(secret), role, json.dumps(cols), json.dumps(vis), record.created_at, expires_at),
            )
        return f"hkb_{key_id}_{secret}", record

    def list(self) -> list[ApiKey]:
        if not self.path.exists():
            return []
        with self._connect() as con:
            rows = con.execute(f"SELECT {_columns(con)} FROM keys ORDER BY created_at").fetchall()
        return [_record(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        with self._connect(write=True) as con:
            cur = con.execute("UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id))
        if cur.rowcount != 1:
            raise KBError(f"no active key with id {key_id!r}; `kb keys list` shows the ids")
        return next(k for k in self.list() if k.id == key_id)

    def verify(self, token: str | None) -> ApiKey | None:
        """The active key a presented token proves, or None. Constant-time in the secret."""
        match = _TOKEN.match(token or "")
        key_id, secret = (match.group(1), match.group(2)) if match else ("", "x" * 43)
        row = None
        if match and self.path.exists():
            with self._connect() as con:
                row = con.execute(f"SELECT {_columns(con)}, secret_sha256 FROM keys WHERE id = ?", (key_id,)).fetchone()
        ok = hmac.compare_digest(_hash(secret), row[9] if row else _DUMMY)
        if not (ok and row):
            return None
        key = _record(row)
        if not key.active():
            return None
        now = time.time()
        if key.last_used_at is None or now - key.last_used_at > LAST_USE_EVERY:
            try:
                with self._connect(write=True) as con:
                    con.execute("UPDATE keys SET last_used_at = ? WHERE id = ?", (now, key.id))
            except (KBError, sqlite3.Error):
                pass  # a read-only or busy store still authenticates; last use is a convenience
        return key
