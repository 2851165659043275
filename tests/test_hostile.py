"""Hostile input and damage at rest, through the real `kb` commands: each case fails with a reason or is
synced, never stalls past its budget, never prints a traceback, and leaves a KB that checks clean and
answers from the good documents exactly as before. Cases live in tests/hostile.py; the full-size
tally is `python -m bench.hostile_tally`."""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from tests.hostile import DAMAGE_CASES, GOOD, GOOD_QUESTION, SYNC_CASES
from ui.cli import main
from ui.cli.terminal import safe_text

SCALE = 0.1  # a tenth of the adversarial report's sizes: same shapes, seconds instead of minutes
PARSE_SECONDS = 8  # the budget the tests give each file


def kb(*args, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def no_traceback(result) -> None:
    text = result.stdout + result.stderr
    assert "Traceback" not in text and "\x1b" not in text, text[-2000:]
    for line in result.stderr.splitlines():
        assert line.startswith(("failed: ", "warning: ", "error: ", "interrupted")), line


@pytest.fixture(scope="module")
def base(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("hostile")
    docs, kb_dir = root / "docs", root / "kb"
    docs.mkdir()
    for name, text in GOOD.items():
        (docs / name).write_text(text)
    assert kb("sync", docs, "--kb-dir", kb_dir).exit_code == 0
    hit = KnowledgeBase(kb_dir).chunks(KnowledgeBase(kb_dir).snapshot().ids)
    return docs, kb_dir, {h.doc_source: h.text for h in hit}


@pytest.fixture
def fresh(base, tmp_path):
    docs, kb_dir, texts = base
    shutil.copytree(docs, tmp_path / "docs")
    shutil.copytree(kb_dir, tmp_path / "kb")
    return tmp_path / "docs", tmp_path / "kb", texts


def assert_good_documents_intact(kb_dir: Path, texts: dict) -> None:
    kbase = KnowledgeBase(kb_dir)
    res = kb("search", GOOD_QUESTION[0], "--kb-dir", kb_dir, "--retriever", "dense", "-k", "1", "--json")
    assert res.exit_code == 0, res.output
    import json

    hit = json.loads(res.stdout)["hits"][0]
    assert hit["text"] == texts[GOOD_QUESTION[1]]  # (a link to refunds.md inside the folder is the same text)
    stored = {c.doc_source: c.text for c in kbase.chunks(kbase.snapshot().ids) if c.doc_source in texts}
    assert stored == texts


@pytest.mark.parametrize("case", SYNC_CASES, ids=[c.name for c in SYNC_CASES])
def test_a_hostile_file_fails_with_a_reason_or_syncs_and_the_rest_is_kept(fresh, case):
    docs, kb_dir, texts = fresh
    name = case.make(docs, SCALE)
    started = time.perf_counter()
    res = kb("sync", docs, "--kb-dir", kb_dir, "--parse-seconds", PARSE_SECONDS)
    elapsed = time.perf_counter() - started
    assert elapsed < PARSE_SECONDS + 60, f"{case.name}: {elapsed:.0f} s"
    assert res.exit_code == case.exit, res.output
    no_traceback(res)
    failed = [line for line in res.stderr.splitlines() if line.startswith("failed: ")]
    if case.reason is None:
        assert not failed, failed
        names = [safe_text(d.name) for d in KnowledgeBase(kb_dir).documents()]  # what every output shows
        assert name in names, names
    else:
        assert len(failed) == 1 and name in failed[0] and case.reason in failed[0].lower(), failed
    assert kb("check", "--kb-dir", kb_dir, "--deep").exit_code == 0
    assert_good_documents_intact(kb_dir, texts)


def test_names_and_text_with_control_characters_print_one_escaped_line_each(fresh):
    docs, kb_dir, _ = fresh
    from tests.hostile import newline_name

    newline_name(docs, SCALE)
    res = kb("sync", docs, "--kb-dir", kb_dir, "--dry-run")
    assert res.exit_code == 0 and "\x1b" not in res.stdout
    assert "  added: two\\nlines\\x1b[31m.md" in res.stdout.splitlines()
    kb("sync", docs, "--kb-dir", kb_dir)
    found = kb("search", "a name with a newline and an escape", "--kb-dir", kb_dir, "--retriever", "bm25", "-k", "1")
    assert "\x1b" not in found.stdout and "\\x1b[2J" in found.stdout


@pytest.mark.parametrize("damage", DAMAGE_CASES, ids=[d[0] for d in DAMAGE_CASES])
def test_damage_at_rest_is_named_never_used_never_copied_and_repaired(fresh, damage):
    docs, kb_dir, texts = fresh
    name, hurt = damage
    hurt(kb_dir)
    check = kb("check", "--kb-dir", kb_dir)
    assert check.exit_code == 1 and "PROBLEMS" in check.stdout, check.stdout
    assert "snapshot files damaged" in check.stdout or "snapshot" in check.stdout
    no_traceback(check)
    assert_good_documents_intact(kb_dir, texts)  # answered from vectors rebuilt from kb.sqlite
    (docs / "hours.txt").write_text(GOOD["hours.txt"] + "Saturday support is by email.\n")
    assert kb("sync", docs, "--kb-dir", kb_dir).exit_code == 0  # the next snapshot is built from kb.sqlite
    after = kb("check", "--kb-dir", kb_dir, "--deep")
    assert after.exit_code == 0, after.stdout
    hurt(kb_dir)
    repaired = kb("check", "--kb-dir", kb_dir, "--repair")
    assert repaired.exit_code == 0 and "before repair: 1 problem" in repaired.stdout.replace("problem(s)", "problem")
    assert kb("check", "--kb-dir", kb_dir, "--deep").exit_code == 0


def test_a_damaged_database_gets_one_line_naming_the_fix(fresh):
    _, kb_dir, _ = fresh
    db = kb_dir / "kb.sqlite"
    for path in kb_dir.glob("kb.sqlite-*"):
        path.unlink()
    db.write_bytes(db.read_bytes()[:1000])
    for command in (["check"], ["stats"], ["search", "refunds"], ["sync", kb_dir.parent / "docs"]):
        res = kb(*command, "--kb-dir", kb_dir)
        assert res.exit_code == 2, (command, res.output)
        no_traceback(res)
        assert res.stderr.count("\n") == 1 and "damaged" in res.stderr and "backup" in res.stderr, res.stderr


def test_reads_work_on_read_only_media_and_write_nothing(fresh, monkeypatch):
    _, kb_dir, texts = fresh
    with sqlite3.connect(kb_dir / "kb.sqlite") as con:  # as after a sync: checkpointed, no -wal or -shm left
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in kb_dir.glob("kb.sqlite-*"):
        path.unlink()
    # Root ignores file modes, so read-only media are what the access check reports for the KB folder.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if Path(p) == kb_dir and mode & os.W_OK else real_access(p, mode, **kw)
    )
    before = sorted((p.name, p.stat().st_mtime_ns) for p in kb_dir.iterdir())
    assert kb("check", "--kb-dir", kb_dir).exit_code == 0
    assert_good_documents_intact(kb_dir, texts)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in kb_dir.iterdir()) == before
    assert kb("sync", kb_dir.parent / "docs", "--kb-dir", kb_dir).exit_code == 2  # a write says so in one line


def test_reads_work_on_a_full_disk(fresh):
    _, kb_dir, _ = fresh
    with sqlite3.connect(kb_dir / "kb.sqlite") as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in kb_dir.glob("kb.sqlite-*"):
        path.unlink()

    def full_disk() -> None:  # no file may grow past 0 bytes: writing anything fails with EFBIG
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    for command in (["check"], ["search", GOOD_QUESTION[0], "--retriever", "dense"]):
        res = subprocess.run(
            [sys.executable, "-m", "ui.cli", *command, "--kb-dir", str(kb_dir)],
            capture_output=True,
            text=True,
            preexec_fn=full_disk,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            timeout=300,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        assert "Traceback" not in res.stderr


@pytest.mark.parametrize("point,committed", [("before-sqlite-commit", False), ("after-sqlite-commit", True)])
def test_ctrl_c_says_whether_the_change_was_committed(fresh, point, committed):
    docs, kb_dir, _ = fresh
    (docs / "new.md").write_text("# New\n\nA new policy about webhooks and retries.\n")
    token = KnowledgeBase(kb_dir).token()
    res = kb("sync", docs, "--kb-dir", kb_dir, env={"HOPFIELD_KB_INTERRUPT": point})
    assert res.exit_code == 130
    assert ("after the commit: the changes are saved" in res.stderr) == committed, res.stderr
    assert ("nothing was changed" in res.stderr) == (not committed), res.stderr
    assert (KnowledgeBase(kb_dir).token() != token) == committed
    assert kb("check", "--kb-dir", kb_dir).exit_code == 0
