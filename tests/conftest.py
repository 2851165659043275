"""Shared fixtures: one real embedding model per session, sample KB built once, seeded data."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from data import SAMPLE_DOCS
from ingest import IngestConfig, ingest
from kb import Embedder, KnowledgeBase, load_embedder
from tests.helpers import private_kb_copy

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real packaged model, loaded once for the whole run."""
    return load_embedder()


@pytest.fixture(scope="session")
def sample_kb_dir(tmp_path_factory, embedder) -> Path:
    """The sample docs ingested once; tests that change a KB must copy it (see kb_copy)."""
    kb_dir = tmp_path_factory.mktemp("sample_kb")
    report = ingest(kb_dir, [SAMPLE_DOCS], IngestConfig(), embedder=embedder)
    assert not report.failed, report.failed
    return kb_dir


@pytest.fixture
def sample_kb(sample_kb_dir) -> KnowledgeBase:
    return KnowledgeBase(sample_kb_dir)


@pytest.fixture
def kb_copy(sample_kb_dir, tmp_path) -> Path:
    """A private copy of the sample KB as built, which a test may change (its question log emptied)."""
    return private_kb_copy(sample_kb_dir, tmp_path / "kb")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); these tests need the shared real-world data")
    return SHARED


@pytest.fixture(scope="session")
def api_server(tmp_path_factory) -> Iterator[dict]:
    """One real `kb serve` of the sample documents for the modules that only read from it (the MCP server, the
    client): tests.api_server.sample_server's collections and keys. test_api.py starts its own (it changes things)."""
    from tests.api_server import sample_server

    with sample_server(tmp_path_factory.mktemp("served")) as served:
        yield served


# The fast loop, `pytest -m "not slow"`: tests that need the embedding model, a built KB, ../shared, a server,
# a browser, a Ray cluster, OCR or killed processes are marked slow here, by the fixtures they take or their module.
SLOW_FIXTURES = frozenset({"embedder", "sample_kb_dir", "sample_kb", "kb_copy", "shared_dir", "api_server"})
SLOW_MODULES = frozenset(
    {
        "test_api",
        "test_api_fuzz",
        "test_api_insights",
        "test_app",
        "test_app_files",
        "test_browser",
        "test_browser_insights",
        "test_chat_cli",
        "test_cli_basic",
        "test_cross_encoder",
        "test_eval_conversations",
        "test_eval_run",
        "test_faults",
        "test_models",
        "test_ocr",
        "test_ray",
        "test_security",
        "test_sync",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        if module in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
