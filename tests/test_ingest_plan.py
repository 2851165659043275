"""ingest's plan and engines: the dry run's plan is the one the real run carries out, every parse goes
through the run's engine, and ingest(kb) serves the new documents from the KB object it was given.

Real files, the session's real model, real KBs under tmp_path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator

from ingest import Engine, IngestConfig, LocalEngine, ParseItem, RayEngine, ingest, plan_changes
from kb import KnowledgeBase
from retriever import make_retriever

FIELDS = ("added", "updated", "unchanged", "removed", "failed")


def _folder(folder: Path) -> Path:
    folder.mkdir()
    for name in ("keep.txt", "change.txt", "drop.txt"):
        (folder / name).write_text(f"The {name} policy text, first edition.\n")
    return folder


def test_the_dry_run_reports_the_plan_that_the_real_run_carries_out(tmp_path, embedder):
    docs, kb_dir = _folder(tmp_path / "docs"), tmp_path / "kb"
    config = IngestConfig(mirror=True, max_bytes=4096)
    ingest(kb_dir, [docs], config, embedder=embedder)
    (docs / "change.txt").write_text("The change policy text, second edition.\n")
    (docs / "drop.txt").unlink()
    (docs / "new.txt").write_text("A brand new policy on parking permits.\n")
    (docs / "big.txt").write_text("An oversized appendix. " * 400)  # over max_bytes: fails when read

    planned = plan_changes(kb_dir, [docs], config)
    dry = ingest(kb_dir, [docs], replace(config, dry_run=True), embedder=embedder)
    real = ingest(kb_dir, [docs], config, embedder=embedder)

    assert dry.dry_run and not real.dry_run
    assert {f: getattr(dry, f) for f in FIELDS} == {f: getattr(real, f) for f in FIELDS}
    assert (real.added, real.updated, real.unchanged, real.removed) == (
        planned.keys("added"),
        planned.keys("updated"),
        planned.keys("unchanged"),
        planned.removed,
    )
    assert (real.added, real.updated, real.unchanged, real.removed) == (
        ("new.txt",),
        ("change.txt",),
        ("keep.txt",),
        ("drop.txt",),
    )
    assert [Path(f.path).name for f in real.failed] == ["big.txt"] and "size limit" in real.failed[0].reason
    assert {c.key: c.reason for c in planned.changes} == {
        "change.txt": "bytes changed",
        "keep.txt": "same bytes and labels",
        "new.txt": "new",
    }
    after = plan_changes(kb_dir, [docs], config)
    assert after.keys("unchanged") == ("change.txt", "keep.txt", "new.txt") and not after.to_parse and not after.removed


def test_a_plan_against_a_directory_without_a_kb_adds_every_file_and_creates_nothing(tmp_path):
    docs, kb_dir = _folder(tmp_path / "docs"), tmp_path / "not-yet"
    planned = plan_changes(kb_dir, [docs], IngestConfig(mirror=True))
    assert planned.keys("added") == ("change.txt", "drop.txt", "keep.txt")
    assert all(c.reason == "new" and c.stored is None for c in planned.changes)
    assert planned.to_parse == planned.changes and not planned.removed
    assert not kb_dir.exists(), "a plan created a KB directory"


def test_new_labels_plan_every_file_as_updated_with_that_reason(tmp_path, embedder):
    docs, kb_dir = _folder(tmp_path / "docs"), tmp_path / "kb"
    ingest(kb_dir, [docs], IngestConfig(), embedder=embedder)
    planned = plan_changes(kb_dir, [docs], IngestConfig(visibility="public"))
    assert planned.keys("updated") == ("change.txt", "drop.txt", "keep.txt")
    assert {c.reason for c in planned.changes} == {"visibility or tags changed"}


class _RecordingEngine(LocalEngine):
    """The local engine, keeping the keys it was asked to parse."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def parse(self, items: Iterable[ParseItem], config: IngestConfig) -> Iterator:
        for key, outcome in super().parse(items, config):
            self.keys.append(key)
            yield key, outcome


def test_only_new_and_changed_files_reach_the_engine_and_its_results_are_committed(tmp_path, embedder):
    docs, kb_dir = _folder(tmp_path / "docs"), tmp_path / "kb"
    first = _RecordingEngine()
    ingest(kb_dir, [docs], IngestConfig(), embedder=embedder, engine=first)
    assert sorted(first.keys) == ["change.txt", "drop.txt", "keep.txt"]
    (docs / "change.txt").write_text("The change policy text, second edition.\n")
    second = _RecordingEngine()
    report = ingest(kb_dir, [docs], IngestConfig(), embedder=embedder, engine=second)
    assert second.keys == ["change.txt"] and report.updated == ("change.txt",)
    assert "second edition" in KnowledgeBase(kb_dir).document_text(KnowledgeBase(kb_dir).document("change.txt").id)


def test_the_local_and_the_ray_engine_are_both_engines():
    assert isinstance(LocalEngine(), Engine) and isinstance(RayEngine(), Engine)  # RayEngine() connects to nothing


def test_ingest_into_an_open_kb_serves_the_new_documents_without_refresh(tmp_path, embedder):
    docs = _folder(tmp_path / "docs")
    # A server's KB: a commit by another KnowledgeBase object would be loaded in the background, later.
    kb = KnowledgeBase(tmp_path / "kb", create=True, background_refresh=True)
    ingest(kb, [docs], IngestConfig(), embedder=embedder)
    first = kb.snapshot()
    assert first.token == kb.token()
    (docs / "quokka.md").write_text("# Quokka perks\n\nA quokka badge earns a zanzibar smoothie on Fridays.\n")
    report = ingest(kb, [docs], IngestConfig(), embedder=embedder)
    assert report.added == ("quokka.md",)
    now = kb.snapshot()
    assert now.token == kb.token() != first.token and len(now.ids) == len(first.ids) + 1
    hits = make_retriever("bm25", kb, top_k=1).search("quokka badge zanzibar smoothie").hits
    assert hits[0].chunk.doc_name == "quokka.md"
