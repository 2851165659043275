"""Admin: liveness (open), readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse

from api.auth import Caller, authenticate

router = APIRouter(tags=["admin"])


@router.get("/v1/health")
def health() -> dict:
    """Liveness, without a key: says only that the process answers."""
    return {"status": "ok"}


@router.get("/v1/ready")
def readiness(caller: Caller = Depends(authenticate)) -> JSONResponse:
    """503 until the model is loaded and each collection's indexes are built."""
    ready = caller.services.ready.is_set()
    return JSONResponse({"status": "ready" if ready else "loading"}, status_code=200 if ready else 503)


@router.get("/v1/metrics", response_class=PlainTextResponse)
def prometheus(caller: Caller = Depends(authenticate)) -> PlainTextResponse:
    """Prometheus text format: requests, latencies, KB size, last sync. Needs an admin key; one scoped to some
    collections or labels sees only their figures."""
    if not caller.key.has_role("admin"):
        raise HTTPException(403, "metrics need an admin key")
    body, content_type = caller.services.metrics.render(caller.key)
    return PlainTextResponse(body, media_type=content_type)
