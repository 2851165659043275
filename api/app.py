"""The HTTP service chatbots call: search, cited answers (JSON or streamed), documents, sync jobs, feedback.

Every route but /v1/health and the API docs needs a key (Authorization: Bearer hkb_..., or
X-API-Key), scoped to the collection the path names and to a role. A key scoped to some
visibility labels (say public) never sees, is never cited from and is never answered from a
document with another label: the filter is applied inside the search, not to its results.
The MCP server (tools search, ask, get_document, list_documents; documents as resources) is at
/mcp, streamable HTTP, with the same keys, scopes and limits. The service calls what the `kb`
command line calls (ingest, make_retriever, answer) and imports nothing from the app or the CLI.

Where things are: the routes in api/routes/ (answers, documents, admin, insights: one router per tag), the
key and visibility check every route takes in api/auth.py, the typed refusals in api/errors.py,
what the routes share in api/services.py, the front gate in api/limits.py.
"""

from __future__ import annotations

import contextlib
import threading
from typing import AsyncIterator

from fastapi import FastAPI
from starlette.routing import Route

from api.auth import KeyCache
from api.config import ServerConfig
from api.errors import add_handlers
from api.limits import Gate, GateLimits
from api.mcp_server import McpEndpoint
from api.openapi_links import LinkedAPI
from api.routes import admin, answers, documents, insights
from api.services import Services


def create_app(config: ServerConfig) -> FastAPI:
    """The FastAPI application for config (run it with uvicorn; `kb serve` does)."""
    services = Services.build(config)
    mcp = McpEndpoint(services)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Warm in the background: the server answers /v1/health (not ready) while the models load.
        threading.Thread(target=services.warm_up, name="warm-up", daemon=True).start()
        async with mcp.run():
            yield

    app = LinkedAPI(
        title="hopfield-kb",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        openapi_tags=[{"name": "answers"}, {"name": "documents"}, {"name": "admin"}, {"name": "insights"}],
    )
    app.state.services = services
    app.state.collections = services.collections
    app.state.jobs = services.jobs
    # Key, rate, concurrency and body size are checked first; metrics (added after, so outside it) counts its refusals.
    app.add_middleware(
        Gate,
        authenticate=KeyCache(services.keys),
        limits=GateLimits(
            json_bytes=config.max_request_kb * 1024,
            upload_bytes=config.max_upload_mb * 2**20 + 64 * 1024,
            rate=config.rate_limit,
            feedback=config.feedback_limit,
            concurrency=config.concurrency_per_key,
        ),
    )
    app.middleware("http")(services.metrics.middleware)
    add_handlers(app, config)
    for router in (admin.router, documents.router, answers.router, insights.router):
        app.include_router(router)
    # The MCP server (streamable HTTP): behind the same gate, so the same keys, scopes and limits (api/mcp_server.py).
    app.router.routes.append(Route("/mcp", endpoint=mcp, include_in_schema=False))
    return app
