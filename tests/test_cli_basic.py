"""The `kb` command line basics: ingest exit codes and report, stats/check/search output, clear errors.

Commands run in-process through click's CliRunner (the real CLI with the session's model); the
missing-KB case also runs the installed `kb` script as a real process to show there is no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import FORMAT_VERSION
from tests.helpers import make_pdf
from ui.cli import main


def kb_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nStaff get 25 days of paid leave a year.\n")
    make_pdf(docs / "expenses.pdf", ["Taxi receipts are refunded up to forty pounds.", "Hotels need pre-approval."])
    return docs


def test_ingest_exits_0_and_reports_counts_then_reports_everything_unchanged(folder, tmp_path, embedder):
    kb_dir = tmp_path / "kb"
    res = kb_cli("ingest", folder, "--kb-dir", kb_dir)
    assert res.exit_code == 0, res.output
    assert "2 added, 0 updated, 0 unchanged, 0 removed, 0 failed; 3 chunks embedded, 0 reused" in res.stdout
    assert res.stderr == ""
    again = kb_cli("ingest", folder, "--kb-dir", kb_dir, "--json")
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert report["counts"] == {"added": 0, "updated": 0, "unchanged": 2, "removed": 0, "failed": 0}
    assert report["chunks_embedded"] == 0 and sorted(Path(s).name for s in report["unchanged"]) == [
        "expenses.pdf",
        "leave.md",
    ]


def test_ingest_with_a_failed_file_exits_1_and_names_it_on_stderr(folder, tmp_path, embedder):
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n" + b"\x8f\x00garbage" * 200)
    res = kb_cli("ingest", folder, "--kb-dir", tmp_path / "kb")
    assert res.exit_code == 1
    failed = [line for line in res.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed: {(folder / 'broken.pdf').resolve()}: corrupt")
    assert "2 added, 0 updated, 0 unchanged, 0 removed, 1 failed" in res.stdout
    assert "Traceback" not in res.output


def test_search_stats_and_check_on_a_missing_kb_exit_2_with_a_clear_message(tmp_path):
    missing = tmp_path / "nowhere"
    for command in (["search", "refund policy"], ["stats"], ["check"]):
        res = kb_cli(*command, "--kb-dir", missing)
        assert res.exit_code == 2, (command, res.output)
        assert res.stderr == f"error: no knowledge base at {missing}: run `kb ingest PATH --kb-dir {missing}` first\n"
    script = Path(sys.executable).with_name("kb")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli"]
    proc = subprocess.run(
        [*cmd, "search", "refund policy", "--kb-dir", str(missing)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "no knowledge base at" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not missing.exists(), "a read command created a KB directory"


def test_stats_json_parses_and_counts_the_sample_kb(sample_kb_dir, sample_kb):
    res = kb_cli("stats", "--kb-dir", sample_kb_dir, "--json")
    assert res.exit_code == 0
    stats = json.loads(res.stdout)
    docs = sample_kb.documents()
    assert stats["documents"] == len(docs) == 12 and stats["chunks"] == sum(d.n_chunks for d in docs)
    assert (stats["model"], stats["dim"], stats["format_version"]) == ("all-MiniLM-L6-v2", 384, FORMAT_VERSION)
    assert stats["documents_by_kind"] == {"html": 3, "markdown": 5, "pdf": 3, "text": 1}
    assert stats["disk_bytes"] > 0
    text = kb_cli("stats", "--kb-dir", sample_kb_dir)
    assert text.exit_code == 0 and f"documents: {len(docs)}" in text.stdout


def test_check_exits_0_on_a_sound_kb_and_1_when_its_snapshot_is_gone(kb_copy):
    res = kb_cli("check", "--kb-dir", kb_copy)
    assert res.exit_code == 0 and res.stdout.rstrip().endswith(": ok"), res.output
    report = json.loads(kb_cli("check", "--kb-dir", kb_copy, "--json").stdout)
    assert report["ok"] is True and report["problems"] == [] and report["n_chunks"] == report["n_vectors"] > 100
    for snapshot_file in kb_copy.glob("index-*.faiss"):
        snapshot_file.unlink()
    broken = kb_cli("check", "--kb-dir", kb_copy)
    assert broken.exit_code == 1 and "PROBLEMS" in broken.stdout and "snapshot files" in broken.stdout


def test_dense_search_prints_cited_passages(sample_kb_dir, embedder):
    question = "What is the deadline for submitting an SLA service credit claim?"
    res = kb_cli("search", question, "--kb-dir", sample_kb_dir, "--retriever", "dense", "-k", "3", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["query"] == question and [h["rank"] for h in out["hits"]] == [1, 2, 3]
    top = out["hits"][0]
    assert (top["name"], top["page"]) == ("service-level-agreement.pdf", 4)
    text = kb_cli("search", question, "--kb-dir", sample_kb_dir, "--retriever", "dense", "-k", "2")
    assert text.exit_code == 0
    assert text.stdout.startswith("[1] ") and "(service-level-agreement.pdf v1, p. 4)" in text.stdout.splitlines()[0]


def test_search_and_ask_json_are_the_api_replies_plus_the_owners_details(sample_kb_dir, embedder):
    """`kb search/ask --json` print what the API sends (retriever/serialize.py), with a few fields more."""
    from api.schemas import AnswerResponse, Citation, HitOut, SearchResponse

    api_keys = {model: set(model.model_fields) for model in (AnswerResponse, Citation, HitOut, SearchResponse)}
    found = json.loads(kb_cli("search", "refund policy", "--kb-dir", sample_kb_dir, "--json").stdout)
    assert set(found) - api_keys[SearchResponse] == {"seconds"} and api_keys[SearchResponse] <= set(found)
    assert found["hits"] and all(set(h) == api_keys[HitOut] for h in found["hits"])
    answered = json.loads(
        kb_cli(
            "ask", "How long do I have to cancel an annual plan for a full refund?", "--kb-dir", sample_kb_dir, "--json"
        ).stdout
    )
    assert set(answered) - api_keys[AnswerResponse] == {"mode", "retriever", "signals", "diagnostics"}
    assert api_keys[AnswerResponse] <= set(answered) and not answered["abstained"]
    assert answered["citations"] and all(set(c) - {"score"} == api_keys[Citation] for c in answered["citations"])
    abstained = json.loads(kb_cli("ask", "Who is the CEO of Tallyo?", "--kb-dir", sample_kb_dir, "--json").stdout)
    assert abstained["abstained"] and abstained["closest"]
    assert all(set(h) == api_keys[HitOut] for h in abstained["closest"])


def test_a_kb_from_a_newer_version_is_refused_without_a_traceback(kb_copy):
    manifest = json.loads((kb_copy / "manifest.json").read_text())
    (kb_copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    res = kb_cli("stats", "--kb-dir", kb_copy)
    assert res.exit_code == 2 and "upgrade hopfield-kb" in res.stderr and "Traceback" not in res.output


def test_ingesting_the_folder_that_holds_the_kb_skips_the_kbs_own_files(folder, monkeypatch, embedder):
    monkeypatch.chdir(folder)  # `kb ingest .` with the default --kb-dir ./kb_data inside the folder
    assert kb_cli("ingest", ".").exit_code == 0
    assert (folder / "kb_data" / "kb.sqlite").exists()
    again = kb_cli("ingest", ".", "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["counts"] == {"added": 0, "updated": 0, "unchanged": 2, "removed": 0, "failed": 0}
    plan = kb_cli("sync", ".", "--dry-run")
    assert plan.exit_code == 0 and "0 added, 0 updated, 2 unchanged, 0 removed, 0 failed" in plan.stdout
    # Documents kept in a subfolder of the KB (the app saves uploads there) are still ingested.
    (folder / "kb_data" / "uploads").mkdir()
    (folder / "kb_data" / "uploads" / "parking.md").write_text("# Parking\n\nPermits renew in January.\n")
    report = json.loads(kb_cli("ingest", ".", "--json").stdout)
    assert [Path(s).name for s in report["added"]] == ["parking.md"] and report["counts"]["failed"] == 0


def test_kb_ui_refuses_other_machines_without_a_password_and_stops_with_its_server(tmp_path, sample_kb_dir):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from click.testing import CliRunner

    from ui.app.server import free_port
    from ui.cli import main

    refused = CliRunner().invoke(
        main, ["ui", "--kb-dir", str(sample_kb_dir), "--host", "0.0.0.0"], env={"HOPFIELD_KB_UI_PASSWORD": ""}
    )
    assert refused.exit_code == 2 and "sign-in password" in refused.output
    short = CliRunner().invoke(
        main, ["ui", "--kb-dir", str(sample_kb_dir), "--host", "0.0.0.0"], env={"HOPFIELD_KB_UI_PASSWORD": "short"}
    )
    assert short.exit_code == 2

    port = free_port()
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "ui", "--kb-dir", str(sample_kb_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    deadline = time.monotonic() + 120
    while not healthy():
        assert proc.poll() is None and time.monotonic() < deadline, "kb ui did not come up"
        time.sleep(0.3)
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "kb ui should run streamlit as a child process"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while any(
        os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read().lower() for pid in children
    ):
        assert time.monotonic() < deadline, "the streamlit child outlived kb ui"
        time.sleep(0.2)
    assert not healthy()
