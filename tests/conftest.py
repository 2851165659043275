"""Shared fixtures: one real embedding model per session, sample KB built once, seeded data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from ingest import IngestConfig, ingest
from kb import Embedder, KnowledgeBase, load_embedder

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real packaged model, loaded once for the whole run."""
    return load_embedder()


@pytest.fixture(scope="session")
def sample_kb_dir(tmp_path_factory, embedder) -> Path:
    """The sample docs ingested once; tests that change a KB must copy it (see kb_copy)."""
    kb_dir = tmp_path_factory.mktemp("sample_kb")
    report = ingest([SAMPLE_DOCS], kb_dir, IngestConfig(), embedder=embedder)
    assert not report.failed, report.failed
    return kb_dir


@pytest.fixture
def sample_kb(sample_kb_dir) -> KnowledgeBase:
    return KnowledgeBase(sample_kb_dir)


@pytest.fixture
def kb_copy(sample_kb_dir, tmp_path) -> Path:
    """A private copy of the sample KB directory that a test may change."""
    dest = tmp_path / "kb"
    shutil.copytree(sample_kb_dir, dest)
    return dest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); these tests need the shared real-world data")
    return SHARED
