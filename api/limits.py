"""The API's front gate, as ASGI middleware: the key is checked before any body is read, then per-key rate and
concurrency limits, then the body limit of the route (not of the content type).

Order matters: an unauthenticated request is answered 401 from its headers alone (the body is never
read or spooled, however large); a key over its rate or concurrency limit gets 429 with Retry-After,
also before its body is read; a body is counted as it arrives and cut off at the route's limit (a
missing or false Content-Length cannot get past). Every refusal is JSON with a message.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import anyio
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

# Routes that answer without a key: liveness and the API docs.
OPEN_PATHS = frozenset({"/v1/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
UPLOAD_ROUTE = re.compile(r"^/v1/collections/[^/]+/documents/?$")
FEEDBACK_ROUTE = re.compile(r"^/v1/collections/[^/]+/feedback/?$")


@dataclass(frozen=True)
class GateLimits:
    """json_bytes: body limit of every route but upload; upload_bytes: of POST .../documents; rate and feedback:
    "limits" rate strings per key; concurrency: requests of one key in progress at once."""

    json_bytes: int
    upload_bytes: int
    rate: str = "1200/10 seconds"
    feedback: str = "30/minute"
    concurrency: int = 48


class Gate:
    """ASGI middleware. authenticate(token) returns the key a token proves (or None); the key is put in
    scope["state"]["api_key"] for the routes."""

    def __init__(self, app, limits: GateLimits, authenticate: Callable[[str | None], object | None]) -> None:
        self.app = app
        self.limits = limits
        self.authenticate = authenticate
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._rate = parse_many(limits.rate)
        self._feedback = parse_many(limits.feedback)
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method", "")
        limit = self.limits.upload_bytes if method == "POST" and UPLOAD_ROUTE.match(path) else self.limits.json_bytes
        headers = dict(scope.get("headers") or [])
        if path in OPEN_PATHS:
            return await self._bounded(scope, receive, send, limit, headers)
        key = await anyio.to_thread.run_sync(self.authenticate, _token(headers))  # a key store read: off the loop
        if key is None:
            return await _reply(
                send,
                401,
                "an API key is needed: send Authorization: Bearer <key> (kb keys create)"
                if not _token(headers)
                else "invalid, expired or revoked API key",
                [(b"www-authenticate", b"Bearer")],
            )
        wait = self._over_rate(key.id, self._rate, "all")
        if wait is None and method == "POST" and FEEDBACK_ROUTE.match(path):
            wait = self._over_rate(key.id, self._feedback, "feedback")
        if wait is not None:
            return await _reply(
                send, 429, f"this key is over its rate limit; retry after {wait} s", [(b"retry-after", str(wait).encode())]
            )
        with self._lock:
            active = self._active.get(key.id, 0)
            if active >= self.limits.concurrency:
                busy = True
            else:
                busy = False
                self._active[key.id] = active + 1
        if busy:
            return await _reply(
                send,
                429,
                f"this key has {self.limits.concurrency} requests in progress, its limit; retry when one has finished",
                [(b"retry-after", b"1")],
            )
        scope.setdefault("state", {})["api_key"] = key
        try:
            await self._bounded(scope, receive, send, limit, headers)
        finally:
            with self._lock:
                self._active[key.id] -= 1
                if not self._active[key.id]:
                    del self._active[key.id]

    def _over_rate(self, key_id: str, rates, bucket: str) -> int | None:
        """None when the key may go on; else the seconds until it may (each window is hit only when all allow)."""
        if all(self._limiter.test(r, key_id, bucket) for r in rates):
            for r in rates:
                self._limiter.hit(r, key_id, bucket)
            return None
        waits = [
            self._limiter.get_window_stats(r, key_id, bucket).reset_time - time.time()
            for r in rates
            if not self._limiter.test(r, key_id, bucket)
        ]
        return max(1, math.ceil(max(waits, default=1)))

    async def _bounded(self, scope, receive, send, limit: int, headers: dict) -> None:
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(send, limit)
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        async def tracked(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await _too_large(send, limit)


def _token(headers: dict) -> str | None:
    header = headers.get(b"authorization", b"").decode("latin-1")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    value = headers.get(b"x-api-key")
    return value.decode("latin-1").strip() or None if value else None


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    await _reply(send, 413, f"request body over the {limit // 1024} KB limit")


async def _reply(send, status: int, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})
