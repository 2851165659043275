"""Fault tests for `kb sync` with real processes: kill -9, a disk that fills up, a read-only KB,
readers searching while syncs commit, and two syncs at once.

Most syncs run in children of tests/fault_server.py (real processes running the `kb` CLI, with
the model preloaded so each costs ~0.3 s instead of ~5 s); one test in each family also runs the
installed `kb` console script itself. After every fault the KB must open, pass `kb check`, and
hold exactly the old or the new revision of tests/fault_corpus.py, never a mix.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from kb import FAULT_POINTS, KnowledgeBase
from tests.fault_corpus import CODE, State, assert_consistent, code, snapshot_tokens, write_revision
from tests.fault_server import ForkServer

# Kills at a point before the SQLite commit must leave the old revision; after it, the new one.
COMMITTED_AT = {p: p == "after-sqlite-commit" for p in FAULT_POINTS}
# Points reached after the new chunks' vectors were saved to the embedding cache.
AFTER_EMBEDDING = {p for p in FAULT_POINTS if p != "locked"}

TALLY: Counter = Counter()  # faults injected / KB found consistent, printed at the end (pytest -s)


@pytest.fixture(scope="module")
def server():
    srv = ForkServer()
    yield srv
    srv.close()
    print(f"\nfault tally: {dict(TALLY)}")


def _kb_script() -> list[str]:
    script = Path(sys.executable).with_name("kb")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli"]


def _sync(server: ForkServer, docs: Path, kb_dir: Path, *extra, **kw):
    return server.run(["sync", str(docs), "--kb-dir", str(kb_dir), *extra], **kw)


def _fresh_kb(server: ForkServer, root: Path) -> tuple[Path, Path, State]:
    docs, kb_dir = root / "docs", root / "kb"
    state = write_revision(docs, 0)
    res = _sync(server, docs, kb_dir)
    assert res.rc == 0, res.stderr
    return docs, kb_dir, state


def _consistent(server: ForkServer, kb_dir: Path, allowed: list[State], embedder) -> State:
    """assert_consistent, plus the `kb check` command itself in a separate process."""
    state = assert_consistent(kb_dir, allowed, embedder)
    res = server.run(["check", "--kb-dir", str(kb_dir)])
    assert res.rc == 0 and res.stdout.rstrip().endswith("ok"), res.stdout + res.stderr
    TALLY["consistent after fault"] += 1
    return state


def _lock_holder(kb_dir: Path) -> set[int]:
    """Pids holding a lock on kb_dir/write.lock, read from /proc/locks (without touching the lock)."""
    inode = os.stat(kb_dir / "write.lock").st_ino
    pids = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[5].rsplit(":", 1)[-1] == str(inode):
            pids.add(int(fields[4]))
    return pids


def _wait_for_lock(kb_dir: Path, pid: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (kb_dir / "write.lock").exists() and pid in _lock_holder(kb_dir):
            return True
        time.sleep(0.005)
    return False


def _one_error_line(stderr: str) -> str:
    """The single `error: ...` line of a failed command; no traceback allowed."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


# ---- kill -9 at named points --------------------------------------------------------------
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_sync_killed_at_a_named_point_keeps_old_kb_or_commits_new_never_a_mix(point, server, tmp_path, embedder):
    docs, kb_dir, prev = _fresh_kb(server, tmp_path)
    for rev in (1, 2, 3):
        new = write_revision(docs, rev)
        res = _sync(server, docs, kb_dir, env={"HOPFIELD_KB_FAULT": point})
        assert res.killed, f"sync did not die at {point}: rc {res.rc}\n{res.stderr}"
        TALLY[f"kill at {point}"] += 1
        got = _consistent(server, kb_dir, [prev, new], embedder)
        assert got is (new if COMMITTED_AT[point] else prev), f"killed at {point}, KB holds revision {got.rev}"

        resumed = _sync(server, docs, kb_dir, "--json")
        assert resumed.rc == 0, resumed.stderr
        report = json.loads(resumed.stdout)
        if COMMITTED_AT[point]:
            assert report["counts"] == {"added": 0, "updated": 0, "unchanged": 5, "removed": 0, "failed": 0}
        else:
            assert report["counts"] == {"added": 1, "updated": 2, "unchanged": 2, "removed": 1, "failed": 0}
            # The killed run's vectors were cached: the rerun embeds nothing new.
            assert report["chunks_embedded"] == (0 if point in AFTER_EMBEDDING else 5), report
        assert_consistent(kb_dir, [new], embedder)
        kb = KnowledgeBase(kb_dir)
        assert snapshot_tokens(kb_dir) == {kb.token()}, "stale snapshot files were not cleaned up"
        prev = new
    history = KnowledgeBase(kb_dir).history("policy.md")
    assert [(h.version, h.event) for h in history] == [(1, "added"), (2, "updated"), (3, "updated"), (4, "updated")]


def test_first_sync_killed_before_commit_leaves_an_empty_kb_that_the_next_sync_fills(server, tmp_path, embedder):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    state = write_revision(docs, 0)
    res = _sync(server, docs, kb_dir, env={"HOPFIELD_KB_FAULT": "before-sqlite-commit"})
    assert res.killed, res.stderr
    TALLY["kill at before-sqlite-commit (first sync)"] += 1
    check = server.run(["check", "--kb-dir", str(kb_dir)])
    empty = "0 documents, 0 chunks, 0 vectors (0 compared with kb.sqlite): ok"
    assert check.rc == 0 and check.stdout.startswith(empty), check.stdout
    search = server.run(["search", "travel", "--kb-dir", str(kb_dir), "--retriever", "dense"])
    assert search.rc == 2 and "is empty" in _one_error_line(search.stderr)
    TALLY["consistent after fault"] += 1
    resumed = _sync(server, docs, kb_dir, "--json")
    assert resumed.rc == 0 and json.loads(resumed.stdout)["chunks_embedded"] == 0, resumed.stdout
    assert_consistent(kb_dir, [state], embedder)


def test_sync_killed_at_random_moments_from_outside_leaves_a_consistent_kb(server, tmp_path, embedder):
    docs, kb_dir, prev = _fresh_kb(server, tmp_path)
    new = write_revision(docs, 1)
    started = time.perf_counter()
    assert _sync(server, docs, kb_dir).rc == 0
    duration = time.perf_counter() - started  # a whole run, start to exit
    prev = assert_consistent(kb_dir, [new], embedder)
    rng = np.random.default_rng(7)
    outcomes = Counter()
    for rev in range(2, 12):
        new = write_revision(docs, rev)
        res = server.kill_after(["sync", str(docs), "--kb-dir", str(kb_dir)], delay=float(rng.uniform(0, duration)))
        assert res.killed or res.rc == 0, res.stderr
        TALLY["kill at random moment"] += res.killed
        got = _consistent(server, kb_dir, [prev, new], embedder)
        outcomes[
            "killed, old kept"
            if res.killed and got is prev
            else "killed, new committed"
            if res.killed
            else "finished before the kill"
        ] += 1
        assert _sync(server, docs, kb_dir).rc == 0
        prev = assert_consistent(kb_dir, [new], embedder)
    assert outcomes["killed, old kept"] + outcomes["killed, new committed"] >= 3, outcomes


def test_kb_console_script_killed_while_holding_the_write_lock_leaves_a_consistent_kb(server, tmp_path, embedder):
    docs, kb_dir, prev = _fresh_kb(server, tmp_path)
    new = write_revision(docs, 1)
    proc = subprocess.Popen(
        [*_kb_script(), "sync", str(docs), "--kb-dir", str(kb_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert _wait_for_lock(kb_dir, proc.pid), "kb sync never took the write lock"
    time.sleep(0.02)  # inside the write: reading, embedding or committing
    proc.kill()
    _, err = proc.communicate(timeout=30)
    TALLY["kill of the kb console script"] += proc.returncode == -signal.SIGKILL
    _consistent(server, kb_dir, [prev, new], embedder)
    assert _sync(server, docs, kb_dir).rc == 0
    assert_consistent(kb_dir, [new], embedder)


# ---- disk full / read-only -----------------------------------------------------------------
def _bulk(docs: Path, n: int = 30) -> None:
    """Unique warehouse paragraphs: a big change whose SQLite writes outgrow the snapshot files."""
    rng = np.random.default_rng(3)
    words = "pallet forklift aisle inventory bin dock crate scanner barcode shelf loading quota".split()
    for i in range(n):
        (docs / f"bulk-{i:02d}.txt").write_text(" ".join(rng.choice(words, 90)) + f" batch {i}.\n")


def _state_of(docs: Path, rev: int) -> State:
    import hashlib

    return State(rev, {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in docs.iterdir()})


def test_disk_filling_up_mid_sync_fails_clearly_and_keeps_the_previous_kb(server, tmp_path, embedder):
    docs, kb_dir, prev = _fresh_kb(server, tmp_path)
    write_revision(docs, 1)
    _bulk(docs)
    new = _state_of(docs, 1)
    failures: list[tuple[int, bool]] = []
    # RLIMIT_FSIZE (SIGXFSZ ignored): any write past the limit fails with EFBIG, as on a full disk.
    # Small limits fail in the embedding cache, larger ones at the snapshot or the SQLite commit (which
    # rewrites the 16 MiB character n-gram document frequencies).
    for limit in (40_000, 80_000, 120_000, 160_000, 200_000, 300_000, 1 << 20, 1 << 24, 1 << 26):
        res = _sync(server, docs, kb_dir, fsize=limit)
        TALLY["disk-full run"] += 1
        if res.rc == 0:
            TALLY["disk full: limit large enough, sync committed"] += 1
            break
        assert res.rc == 2, res.stderr
        line = _one_error_line(res.stderr)
        assert f"cannot write the knowledge base at {kb_dir}" in line and "previous version" in line, line
        assert "file-size limit" in line or "disk is full" in line, line
        assert _consistent(server, kb_dir, [prev], embedder) is prev
        after_snapshot = len(snapshot_tokens(kb_dir)) > 1  # the new snapshot's files exist, uncommitted
        failures.append((limit, after_snapshot))
        TALLY["disk full: failed at the SQLite commit" if after_snapshot else "disk full: failed before the commit"] += 1
    assert res.rc == 0, "no limit was large enough for the sync"
    assert_consistent(kb_dir, [new], embedder)
    assert len(failures) >= 2, failures
    # Some runs died before the new snapshot existed, some after it was written (at the SQLite commit).
    assert {after for _, after in failures} == {False, True}, failures
    assert snapshot_tokens(kb_dir) == {KnowledgeBase(kb_dir).token()}


def test_kb_console_script_on_a_full_disk_prints_one_clear_error_and_exits_2(server, tmp_path, embedder):
    docs, kb_dir, prev = _fresh_kb(server, tmp_path)
    write_revision(docs, 1)
    _bulk(docs)

    def full_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    res = subprocess.run(
        [*_kb_script(), "sync", str(docs), "--kb-dir", str(kb_dir)],
        preexec_fn=full_disk,
        capture_output=True,
        text=True,
        timeout=120,
    )
    TALLY["disk-full run"] += 1
    assert res.returncode == 2, res.stderr
    line = _one_error_line(res.stderr)
    assert "file-size limit" in line and "Nothing was committed" in line, line
    assert _consistent(server, kb_dir, [prev], embedder) is prev


def test_read_only_kb_directory_fails_clearly_and_keeps_the_kb(server, embedder):
    # Root ignores file modes, so the sync runs as `nobody` over root-owned files; pytest's
    # tmp dirs are private (0700), hence a world-readable temp dir of our own.
    root = Path(tempfile.mkdtemp(prefix="kb-ro-"))
    try:
        os.chmod(root, 0o755)
        docs, kb_dir, prev = _fresh_kb(server, root)
        write_revision(docs, 1)
        if os.geteuid() == 0:
            # kb creates its files owner-only (0700/0600): let `nobody` read them, so that only writing fails.
            for p in [kb_dir, *kb_dir.rglob("*")]:
                p.chmod(p.stat().st_mode | (0o055 if p.is_dir() else 0o044))
            res = _sync(server, docs, kb_dir, uid=65534)
        else:
            for p in [kb_dir, *kb_dir.iterdir()]:
                p.chmod(p.stat().st_mode & ~0o222)
            res = _sync(server, docs, kb_dir)
            for p in [kb_dir, *kb_dir.iterdir()]:
                p.chmod(p.stat().st_mode | 0o200)
        TALLY["read-only run"] += 1
        assert res.rc == 2, res.stdout + res.stderr
        line = _one_error_line(res.stderr)
        assert str(kb_dir) in line, line
        assert _consistent(server, kb_dir, [prev], embedder) is prev
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- readers during syncs, two writers ---------------------------------------------------
def test_searches_in_another_process_during_syncs_never_see_a_half_applied_sync(server, tmp_path, embedder):
    docs, kb_dir, _ = _fresh_kb(server, tmp_path)
    out, stop = tmp_path / "searches.jsonl", tmp_path / "stop"
    loop = server.spawn([kb_dir, out, stop], call="tests.fault_search_loop:main")
    rng = np.random.default_rng(11)
    for rev in range(1, 9):
        time.sleep(0.15)  # let the reader search the committed revision
        write_revision(docs, rev)
        if rev % 3 == 0:  # a killed sync in between: readers must not notice it either
            res = server.kill_after(["sync", str(docs), "--kb-dir", str(kb_dir)], delay=float(rng.uniform(0.05, 0.3)))
            TALLY["kill during searches"] += res.killed
        assert _sync(server, docs, kb_dir).rc == 0
    time.sleep(0.15)
    stop.touch()
    done = server.wait(loop)
    assert done.rc == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    errors = [r["error"] for r in rows if "error" in r]
    assert not errors, errors[0]
    assert len(rows) >= 30, f"only {len(rows)} searches ran"
    seen = set()
    for r in rows:
        codes = {c for _, _, cs in r["hits"] for c in cs}
        assert len(codes) == 1, f"one search saw revisions {codes}: {r}"
        rev = int(next(iter(codes))[1:])
        seen.add(rev)
        for name, version, cs in r["hits"]:
            if name in ("policy.md", "notes.txt"):  # version 1 is revision 0, each sync adds one
                assert version == rev + 1, f"{name} v{version} cites text of revision {rev}"
        assert not r.get("check"), r["check"]
    assert len(seen) >= 3, f"the reader followed only revisions {sorted(seen)}"
    TALLY["searches during syncs"] += len(rows)


def test_two_syncs_at_once_the_second_fails_clearly_or_waits(server, tmp_path, embedder):
    docs, kb_dir, prev = _fresh_kb(server, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "holidays.txt").write_text("Public holidays: the office closes on the first Monday of May.\n")
    write_revision(docs, 1)
    first = server.spawn(["sync", docs, "--kb-dir", kb_dir], env={"HOPFIELD_KB_PAUSE": "locked=3"})
    assert _wait_for_lock(kb_dir, first), "the first sync never took the lock"

    second = _sync(server, other, kb_dir)
    assert second.rc == 2, second.stderr
    assert "another ingest or sync is writing" in _one_error_line(second.stderr)
    assert assert_consistent(kb_dir, [prev], embedder) is prev  # readers still see the old KB meanwhile

    waiting = server.spawn(["sync", other, "--kb-dir", kb_dir, "--wait", "60"])
    assert _lock_holder(kb_dir) == {first}, "the first sync let go of the lock too early for this test"
    first_done = server.wait(first)
    waited = server.wait(waiting)
    assert first_done.rc == 0, first_done.stderr
    assert waited.rc == 0, waited.stderr
    kb = KnowledgeBase(kb_dir)
    assert kb.check().ok
    holiday = kb.history("holidays.txt")
    policy = kb.history("policy.md")
    assert [h.event for h in holiday] == ["added"] and policy[-1].version == 2
    assert holiday[0].at >= policy[-1].at, "the waiting sync committed before the one holding the lock"
    # Mirroring other/ removed nothing under docs/: the first sync's revision is whole.
    assert {CODE.findall(c.text)[0] for c in kb.chunks(kb.snapshot().ids) if CODE.search(c.text)} == {code(1)}
