"""Errors as exceptions: every refusal of the server is a KBClientError subclass carrying the HTTP status and the
server's own message (its JSON "detail"); a request that got no reply is a KBConnectionError (status None)."""

from __future__ import annotations


class KBClientError(Exception):
    """status: the HTTP status (None when no reply came); message: the server's reason, or what went wrong."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status
        self.message = message


class InvalidRequest(KBClientError):
    """400 or 422: a value the server refuses (the message names the field)."""


class Unauthorized(KBClientError):
    """401: no key, or an invalid, expired or revoked one."""


class Forbidden(KBClientError):
    """403: the key may not use this collection or lacks the role."""


class NotFound(KBClientError):
    """404: no such collection or document, or one the key may not see."""


class Conflict(KBClientError):
    """409: the collection's state refuses it for now (still empty, a sync running)."""


class TooLarge(KBClientError):
    """413: the request body is over the server's limit."""


class RateLimited(KBClientError):
    """429: the key is over its rate or concurrency limit; retry_after: seconds to wait."""

    def __init__(self, message: str, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class ServerError(KBClientError):
    """5xx: the server failed (its log has the details) or is not ready yet (503)."""


class KBConnectionError(KBClientError):
    """No reply: the server could not be reached, or the request timed out."""


BY_STATUS: dict[int, type[KBClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: InvalidRequest,
}


def error_for(status: int, message: str, retry_after: str | None = None) -> KBClientError:
    """The exception for a refusal with this status and server message."""
    if status == 429:
        seconds = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
        return RateLimited(message, status, seconds)
    return BY_STATUS.get(status, ServerError if status >= 500 else KBClientError)(message, status)
