"""api: the HTTP service chatbots call (FastAPI), an interface on the top floor beside the app and the CLI.

Public surface:
    create_app(ServerConfig) -> FastAPI      the application (kb serve runs it with uvicorn)
    ServerConfig, CollectionConfig, SourceConfig, load_config, single_collection   what it serves
    KeyStore, ApiKey, ROLES                  API keys: created once, stored hashed, scoped
    serve, keys                              the `kb serve` and `kb keys` commands (a `kb` plug-in)
    RayServeConfig, serve_until_stopped      `kb serve --ray`: the same app replicated on Ray Serve (api/ray_serve.py)

Inside: the routes in api/routes/ (answers, documents, admin: one router per OpenAPI tag), the key, collection and
visibility check every route takes in api/auth.py, typed refusals (Conflict: 409) in api/errors.py, what routes share
in api/services.py, the wire models in api/schemas.py (the replies themselves come from retriever.answer_dict and
its kin, the one JSON the CLI and the app use too).
"""

from api.app import create_app
from api.commands import keys, serve
from api.config import CollectionConfig, ServerConfig, SourceConfig, load_config, single_collection
from api.keys import ROLES, ApiKey, KeyStore
from api.ray_serve import RayServeConfig, serve_until_stopped

__all__ = [
    "create_app",
    "keys",
    "serve",
    "CollectionConfig",
    "ServerConfig",
    "SourceConfig",
    "load_config",
    "single_collection",
    "ROLES",
    "ApiKey",
    "KeyStore",
    "RayServeConfig",
    "serve_until_stopped",
]
