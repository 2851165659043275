"""The API's structure, in process and without a model: one router per OpenAPI tag, the caller dependency on every
route, and conflicts as typed 409s."""

from __future__ import annotations

import time

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api import KeyStore, create_app, load_config, openai_compat
from api.auth import authenticate
from api.errors import Conflict, EmptyCollection
from api.jobs import JobRunning, SyncJob
from api.keys import ApiKey
from api.limits import OPEN_PATHS
from api.routes import admin, answers, documents, insights
from tests.api_server import write_server_config


@pytest.fixture()
def app_and_keys(tmp_path):
    for folder in ("public", "internal", "it"):
        (tmp_path / folder).mkdir()
    config = load_config(
        write_server_config(tmp_path / "server.toml", tmp_path / "public", tmp_path / "internal", tmp_path / "it")
    )
    store = KeyStore(config.keys_path)
    keys = {
        "reader": store.create("bot", "read", ["support"], ["public"])[0],
        "other": store.create("it bot", "read", ["it"], ["*"])[0],
    }
    return create_app(config), keys  # no `with TestClient`: the lifespan (loading the model) never runs


def served_routes() -> dict[tuple[str, str], APIRoute]:
    """(path, method) -> route of every route the routers hold (api.openai_compat's is included by answers')."""
    out = {}
    for router in (admin.router, documents.router, answers.router, insights.router, openai_compat.router):
        for route in router.routes:
            if isinstance(route, APIRoute):
                out.update({(route.path_format, m.lower()): route for m in route.methods})
    return out


def calls(dependant) -> set:
    out = set()
    for sub in dependant.dependencies:
        out |= {sub.call} | calls(sub)
    return out


def test_the_app_serves_exactly_the_routes_of_its_routers(app_and_keys):
    app, _ = app_and_keys
    served = {(path, method) for path, ops in app.openapi()["paths"].items() for method in ops}
    assert served == set(served_routes())


def test_every_route_but_liveness_and_the_docs_takes_its_caller_through_authenticate():
    unchecked = [path for (path, _), r in served_routes().items() if authenticate not in calls(r.dependant)]
    assert unchecked == ["/v1/health"] and "/v1/health" in OPEN_PATHS


def test_each_route_lives_in_the_router_module_named_by_its_openapi_tag(app_and_keys):
    app, _ = app_and_keys
    paths = app.openapi()["paths"]
    for (path, method), route in served_routes().items():
        [tag] = paths[path][method]["tags"]
        assert route.endpoint.__module__ in (f"api.routes.{tag}", "api.openai_compat"), (path, tag)
        assert route.endpoint.__module__ != "api.openai_compat" or tag == "answers"


def test_a_collection_still_empty_is_a_409_conflict_naming_the_fix_and_scopes_still_apply(app_and_keys):
    app, keys = app_and_keys
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {keys['reader']}"}
    empty = client.get("/v1/collections/support/documents", headers=headers)
    assert empty.status_code == 409 and "upload documents or start a sync first" in empty.json()["detail"]
    assert client.get("/v1/collections", headers=headers).json() == [{"name": "support", "documents": 0, "chunks": 0}]
    assert client.get("/v1/collections/it/documents", headers=headers).status_code == 403
    assert (
        client.get("/v1/collections/nope/documents", headers={"Authorization": f"Bearer {keys['other']}"}).status_code == 403
    )
    assert client.get("/v1/collections/support/documents").status_code == 401
    assert issubclass(EmptyCollection, Conflict) and issubclass(JobRunning, Conflict)


def test_a_running_sync_is_a_conflict_that_names_its_job_only_to_its_starter_and_all_seeing_admins():
    def key(key_id: str, role: str, visibility: tuple[str, ...]) -> ApiKey:
        return ApiKey(key_id, key_id, role, ("*",), visibility, time.time())

    running = JobRunning(SyncJob("job123", "support", ("public",), False, started_by="starter"))
    starter, admin = key("starter", "write", ("public",)), key("ops", "admin", ("*",))
    other, scoped_admin = key("other", "write", ("*",)), key("ops2", "admin", ("public",))
    for k in (starter, admin):
        assert running.detail_for(k) == "a sync of 'support' is already running (job job123); wait for it"
    for k in (other, scoped_admin, None):
        assert running.detail_for(k) == "a sync of 'support' is already running; wait for it"
