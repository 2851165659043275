"""The API's typed refusals and how each becomes a JSON reply ({"detail": message}).

A route raises what went wrong, never a status chosen by matching a message's text:
    Conflict (409)       the request clashes with the collection's state: EmptyCollection (nothing
                         uploaded or synced yet), api.jobs.JobRunning (a sync is running); kb's
                         EmptyKBError and KBLockedError are conflicts too
    other KBError (400)  a value the KB refuses, with a message that names the fix
    HTTPException        401, 403, 404, 422, 429, raised where the refusal is decided
add_handlers(app, config) installs the handlers; messages never show a server path (scrub_paths).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.config import ServerConfig, scrub_paths
from kb import EmptyKBError, KBError, KBLockedError

log = logging.getLogger("hopfield_kb.api")


class Conflict(KBError):
    """409: the request cannot be done in the collection's present state; waiting or another request can fix it."""

    def detail_for(self, key) -> str:
        """The message for the key that asked (a subclass may tell the key that started a job more than others)."""
        return str(self)


class EmptyCollection(Conflict):
    """The collection has no KB yet: nothing was uploaded or synced to it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"collection {name!r} is empty: upload documents or start a sync first")


def add_handlers(app: FastAPI, config: ServerConfig) -> None:
    """KBError (409 for a Conflict, else 400), invalid requests (422, the fields named) and anything unexpected
    (500, details in the server log only)."""

    @app.exception_handler(KBError)
    def _kb_error(request: Request, exc: KBError) -> JSONResponse:
        if isinstance(exc, Conflict):
            detail, status = exc.detail_for(getattr(request.state, "api_key", None)), 409
        else:
            detail, status = str(exc), 409 if isinstance(exc, (EmptyKBError, KBLockedError)) else 400
        return JSONResponse({"detail": scrub_paths(detail, config)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()][:10]
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); the server log has the details"}, status_code=500
        )
