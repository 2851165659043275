"""`kb sync` behaviour without faults: incremental work, bad inputs, failed updates, history, dry run.

The commands run in-process through click's CliRunner (the real CLI code and the session's
model); tests/test_faults.py covers what happens to real processes that die or fail mid-sync.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ingest import IngestConfig, ingest
from kb import KnowledgeBase
from retriever import make_retriever
from tests.helpers import make_pdf
from ui.cli import main


def kb_cli(*args) -> "click.testing.Result":  # noqa: F821
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _chunk_ids_by_doc(kb: KnowledgeBase) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for rec in kb.chunks(kb.snapshot().ids):
        out.setdefault(rec.doc_name, []).append(rec.id)
    return out


def test_resync_embeds_only_changed_documents_and_replaces_only_their_chunks(tmp_path, embedder):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    texts = {
        "a.txt": "Annual plans renew on the signup date.",
        "b.txt": "Invoices are sent on the first day.",
        "c.md": "# Leave\n\nStaff get 25 days of paid leave.",
        "d.txt": "The VPN is required off site.",
    }
    for name, text in texts.items():
        (docs / name).write_text(text + "\n")
    first = ingest(kb_dir, [docs], IngestConfig(mirror=True), embedder=embedder)
    assert first.counts()["added"] == 4 and first.chunks_embedded == 4
    kb = KnowledgeBase(kb_dir)
    before = _chunk_ids_by_doc(kb)

    (docs / "b.txt").write_text("Invoices are sent on the second working day.\n\nLate fees start after 30 days.\n")
    (docs / "d.txt").unlink()
    second = ingest(kb_dir, [docs], IngestConfig(mirror=True), embedder=embedder)
    assert second.counts() == {"added": 0, "updated": 1, "unchanged": 2, "removed": 1, "failed": 0}
    after = _chunk_ids_by_doc(kb)
    assert second.chunks_embedded == second.chunks_written == len(after["b.txt"]) >= 1
    assert after["a.txt"] == before["a.txt"] and after["c.md"] == before["c.md"], "unchanged docs were rewritten"
    assert not set(after["b.txt"]) & set(before["b.txt"]), "the changed doc kept old chunks"
    assert "d.txt" not in after and kb.document("d.txt") is None
    assert [h.event for h in kb.history("d.txt")] == ["added", "removed"]
    assert kb.document("b.txt").version == 2 and kb.document("a.txt").version == 1

    token = kb.token()
    third = ingest(kb_dir, [docs], IngestConfig(mirror=True), embedder=embedder)
    assert third.counts()["unchanged"] == 3 and third.chunks_embedded == 0
    assert kb.token() == token, "a sync with nothing to do still committed"
    assert kb.check().ok


def _bad_corpus(folder: Path) -> tuple[dict[str, str], set[str]]:
    """(bad file name -> word its failure reason must contain, names that must be synced)."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    (folder / "good.md").write_text("# Returns\n\nItems can be returned within 30 days of delivery.\n")
    make_pdf(folder / "good.pdf", ["Warranty claims need the original receipt. " * 5, "Repairs take ten days."])
    data = (folder / "good.pdf").read_bytes()
    make_pdf(folder / "encrypted.pdf", ["Payroll calendar for managers only."], password="s3cret")
    (folder / "truncated.pdf").write_bytes(data[: len(data) // 2])
    (folder / "corrupt.pdf").write_bytes(data[:300] + rng.bytes(2000) + data[2300:])
    (folder / "binary-as.pdf").write_bytes(rng.bytes(4000))
    (folder / "zero-byte.txt").write_bytes(b"")
    # Valid but hostile inputs: must be synced, not crash or stall the run.
    words = np.array("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split())
    (folder / "huge-single-line.txt").write_text(" ".join(rng.choice(words, 150_000)) + ".")  # ~1 MB, one line
    (folder / "repetitive.txt").write_text("The same boilerplate sentence again and again. " * 20_000)
    (folder / "deeply-nested.html").write_text(
        "<html><body>" + "<div>" * 3000 + "Nested notice: the canteen opens at eight." + "</div>" * 3000 + "</body></html>"
    )
    (folder / "latin1.txt").write_bytes("Café policy: crème brûlée is served on Fridays.\n".encode("cp1252"))
    bad = {
        "encrypted.pdf": "password",
        "truncated.pdf": "corrupt",
        "corrupt.pdf": "corrupt",
        "binary-as.pdf": "corrupt",
        "zero-byte.txt": "empty",
        "repetitive.txt": "repetitive",
    }
    good = {"good.md", "good.pdf", "huge-single-line.txt", "deeply-nested.html", "latin1.txt"}
    return bad, good


def test_bad_inputs_are_each_reported_once_and_the_rest_is_synced(tmp_path, embedder):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    bad, good = _bad_corpus(docs)
    # No wall-clock bound here (the machine may be busy): each file's parse budget is tested in test_hostile.py.
    res = kb_cli("sync", docs, "--kb-dir", kb_dir, "--json")
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    failed = [Path(f["path"]).name for f in report["failed"]]
    assert sorted(failed) == sorted(bad), report["failed"]
    for f in report["failed"]:
        assert bad[Path(f["path"]).name] in f["reason"].lower(), f
    assert {Path(s).name for s in report["added"]} == good
    assert [w for w in report["warnings"] if "latin1.txt" in w and "UTF-8" in w] == report["warnings"][:1]
    assert len(report["warnings"]) == 1, report["warnings"]

    again = kb_cli("sync", docs, "--kb-dir", kb_dir)  # text mode: what a person reads
    assert again.exit_code == 1
    lines = again.stderr.splitlines()
    for name in bad:
        assert sum(line.startswith("failed: ") and f"/{name}: " in line for line in lines) == 1, again.stderr
    assert f"0 added, 0 updated, 5 unchanged, 0 removed, {len(bad)} failed" in again.stdout
    assert "Traceback" not in again.output

    kb = KnowledgeBase(kb_dir)
    assert kb.check().ok
    hits = make_retriever("bm25", kb, top_k=1).search("crème brûlée Fridays").hits
    assert hits[0].chunk.doc_name == "latin1.txt" and "crème brûlée" in hits[0].chunk.text
    hits = make_retriever("dense", kb, embedder=embedder, top_k=1).search("when does the canteen open").hits
    assert hits[0].chunk.doc_name == "deeply-nested.html"


@pytest.mark.shared
def test_real_world_bad_pdfs_are_reported_clearly_and_the_rest_is_synced(shared_dir, tmp_path, embedder):
    bad_dir = shared_dir / "docs" / "bad_pdf"
    if not bad_dir.is_dir():
        pytest.skip(f"{bad_dir} is absent: ../shared has no bad_pdf folder")
    good = tmp_path / "good"
    good.mkdir()
    (good / "returns.md").write_text("# Returns\n\nItems can be returned within 30 days.\n")
    res = kb_cli("sync", bad_dir, good, "--kb-dir", tmp_path / "kb", "--json")
    report = json.loads(res.stdout)
    failed = {Path(f["path"]).name: f["reason"] for f in report["failed"]}
    added = [Path(s).name for s in report["added"]]
    names = sorted(p.name for p in bad_dir.iterdir()) + ["returns.md"]
    assert sorted(added + list(failed)) == names, "a file was reported twice or not at all"
    assert res.exit_code == (1 if failed else 0)
    for name in ("pypdf-libreoffice-writer-password.pdf", "pypdf-crazyones-encrypted-aes256.pdf"):
        assert "password" in failed.get(name, ""), failed
    assert "pdfminer-issue-1113-evil-xobjects.pdf" in failed
    assert "returns.md" in added
    assert {"pypdf-issue-297-broken-xref.pdf", "pdfminer-zen_of_python_corrupted.pdf"} <= set(added)  # recoverable
    assert KnowledgeBase(tmp_path / "kb").check().ok


def test_changed_document_that_now_fails_keeps_its_previous_version_searchable(tmp_path, embedder):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    pdf = make_pdf(docs / "expenses.pdf", ["Taxi receipts are refunded up to forty pounds per journey."])
    good_hash = sha(pdf)
    assert kb_cli("sync", docs, "--kb-dir", kb_dir).exit_code == 0

    pdf.write_bytes(pdf.read_bytes()[:200] + b"\x00garbage" * 100)  # the new version is corrupt
    res = kb_cli("sync", docs, "--kb-dir", kb_dir, "--json")
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert [Path(f["path"]).name for f in report["failed"]] == ["expenses.pdf"]
    assert report["removed"] == [] and report["updated"] == []
    kb = KnowledgeBase(kb_dir)
    doc = kb.document("expenses.pdf")
    assert doc.version == 1 and doc.content_hash == good_hash
    hit = make_retriever("dense", kb, embedder=embedder, top_k=1).search("how much is refunded for a taxi").hits[0]
    assert "Taxi receipts" in hit.chunk.text and hit.chunk.doc_version == 1 and hit.chunk.page == 1
    assert [h.version for h in kb.history("expenses.pdf")] == [1]

    make_pdf(pdf, ["Taxi receipts are refunded up to sixty pounds per journey from May."])
    assert kb_cli("sync", docs, "--kb-dir", kb_dir).exit_code == 0
    out = json.loads(
        kb_cli(
            "search", "how much is refunded for a taxi", "--kb-dir", kb_dir, "--retriever", "dense", "-k", "1", "--json"
        ).stdout
    )
    assert "sixty pounds" in out["hits"][0]["text"] and out["hits"][0]["version"] == 2


HISTORY_LINE = re.compile(r"^v(\d+)\s+(added|updated|removed)\s+(\S+)\s+(\d+) chunks\s+([0-9a-f]{12})\s+(\S+)$")


def test_history_lists_every_version_with_hash_time_and_chunk_count(tmp_path):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    doc = docs / "refunds.md"
    started = time.time()
    expected = []
    for n_sections in (1, 3, 2):
        doc.write_text(
            "# Refunds\n\n"
            + "".join(f"## Case {i}\n\nRefund case {i} is paid in {i + n_sections} days.\n\n" for i in range(n_sections))
        )
        assert kb_cli("sync", docs, "--kb-dir", kb_dir).exit_code == 0
        expected.append((sha(doc), KnowledgeBase(kb_dir).document("refunds.md").n_chunks))
    doc.unlink()
    assert kb_cli("sync", docs, "--kb-dir", kb_dir).exit_code == 0
    counts = [n for _, n in expected]
    assert counts[1] > counts[2] > counts[0] >= 1, counts  # 1, 3, 2 sections

    res = kb_cli("history", "refunds.md", "--kb-dir", kb_dir)
    assert res.exit_code == 0, res.output
    rows = [HISTORY_LINE.match(line) for line in res.stdout.splitlines()]
    assert all(rows), res.stdout
    got = [(int(m[1]), m[2], m[4], m[5]) for m in rows]
    assert got == [
        (1, "added", str(counts[0]), expected[0][0][:12]),
        (2, "updated", str(counts[1]), expected[1][0][:12]),
        (3, "updated", str(counts[2]), expected[2][0][:12]),
        (3, "removed", "0", expected[2][0][:12]),
    ]
    for m in rows:
        assert started - 1 <= dt.datetime.fromisoformat(m[3]).timestamp() <= time.time() + 1
        assert m[6] == doc.name  # the key: the path relative to the synced folder
    as_json = json.loads(kb_cli("history", "refunds.md", "--kb-dir", kb_dir, "--json").stdout)
    assert [(e["version"], e["content_hash"], e["n_chunks"]) for e in as_json] == [
        (1, expected[0][0], counts[0]),
        (2, expected[1][0], counts[1]),
        (3, expected[2][0], counts[2]),
        (3, expected[2][0], 0),
    ]

    missing = kb_cli("history", "nothing.md", "--kb-dir", kb_dir)
    assert missing.exit_code == 2 and "no document 'nothing.md'" in missing.stderr


def _kb_state(kb_dir: Path) -> tuple:
    kb = KnowledgeBase(kb_dir)
    files = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in kb_dir.iterdir() if not p.name.endswith(("-wal", "-shm"))
    )
    return (
        kb.token(),
        kb.hashes(),
        [(h.source, h.version, h.event) for d in kb.documents() for h in kb.history(d.source)],
        files,
    )


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    for name in ("keep.txt", "change.txt", "drop.txt"):
        (docs / name).write_text(f"The {name} policy text, first edition.\n")
    assert kb_cli("sync", docs, "--kb-dir", kb_dir).exit_code == 0
    (docs / "change.txt").write_text("The change policy text, second edition.\n")
    (docs / "drop.txt").unlink()
    (docs / "new.txt").write_text("A brand new policy.\n")
    before = _kb_state(kb_dir)

    res = kb_cli("sync", docs, "--kb-dir", kb_dir, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "plan (dry run): 1 added, 1 updated, 1 unchanged, 1 removed, 0 failed" in res.stdout
    for label, name in (("added", "new.txt"), ("updated", "change.txt"), ("removed", "drop.txt")):
        assert f"  {label}: {name}" in res.stdout.splitlines()
    assert "keep.txt" not in res.stdout
    assert _kb_state(kb_dir) == before, "a dry run changed the KB"

    fresh = tmp_path / "not-yet"
    res = kb_cli("sync", docs, "--kb-dir", fresh, "--dry-run")
    assert res.exit_code == 0 and "plan (dry run): 3 added" in res.stdout, res.output
    assert not fresh.exists(), "a dry run created a KB directory"


def test_a_document_keeps_one_identity_whether_it_arrives_by_sync_or_as_a_single_file(tmp_path, embedder):
    from ingest import IngestConfig, ingest

    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    (docs / "policies").mkdir(parents=True)
    (docs / "policies" / "refunds.md").write_text("# Refunds\n\nRefunds are possible within 14 days.\n")
    (docs / "hours.txt").write_text("Support hours are 9 to 5 on weekdays.\n")
    first = ingest(kb_dir, [docs], IngestConfig(mirror=True), embedder=embedder)
    assert sorted(first.added) == ["hours.txt", "policies/refunds.md"]
    upload = tmp_path / "inbox" / "hours.txt"
    upload.parent.mkdir()
    upload.write_text("Support hours are 8 to 6 on weekdays.\n")
    second = ingest(kb_dir, [upload], IngestConfig(), embedder=embedder)
    assert second.updated == ("hours.txt",) and not second.added
    kb = KnowledgeBase(kb_dir)
    doc = kb.document("hours.txt")
    assert doc.version == 2 and doc.path == str(upload.resolve()) and doc.root == ""
    assert [h.event for h in kb.history("hours.txt")] == ["added", "updated"]
    assert len(kb.documents()) == 2
    # The folder's own sync does not remove a document that now comes from elsewhere.
    (docs / "hours.txt").unlink()
    third = ingest(kb_dir, [docs], IngestConfig(mirror=True), embedder=embedder)
    assert third.removed == () and kb.document("hours.txt").version == 2


def test_two_folders_with_the_same_relative_name_fail_clearly_instead_of_overwriting(tmp_path, embedder):
    from ingest import IngestConfig, ingest

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, text in ((a, "Alpha handbook."), (b, "Beta handbook.")):
        folder.mkdir()
        (folder / "README.txt").write_text(text + " It explains the team's on-call rota.\n")
    report = ingest(tmp_path / "kb", [a, b], IngestConfig(), embedder=embedder)
    assert report.added == ("README.txt",) and len(report.failed) == 1
    assert "same document key 'README.txt'" in report.failed[0].reason and str(a / "README.txt") in report.failed[0].reason
    prefixed = ingest(tmp_path / "kb", [b], IngestConfig(key_prefix="beta/"), embedder=embedder)
    assert prefixed.added == ("beta/README.txt",)


def test_a_kb_keyed_by_absolute_paths_moves_to_relative_keys_on_the_next_sync(tmp_path, embedder):
    import sqlite3

    from ingest import IngestConfig, ingest

    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds are possible within 14 days.\n")
    ingest(kb_dir, [docs], IngestConfig(mirror=True), embedder=embedder)
    old = str((docs / "refunds.md").resolve())
    with sqlite3.connect(kb_dir / "kb.sqlite") as con:  # what a KB written before relative keys holds
        con.execute("UPDATE documents SET source = ?, root = '', path = ''", (old,))
        con.execute("UPDATE history SET source = ?", (old,))
    report = ingest(kb_dir, [docs], IngestConfig(mirror=True), embedder=embedder)
    assert report.added == () and report.removed == () and report.chunks_embedded == 0
    kb = KnowledgeBase(kb_dir)
    assert [d.source for d in kb.documents()] == ["refunds.md"] and kb.check().ok
    assert [(h.source, h.event) for h in kb.history("refunds.md")][0] == ("refunds.md", "added")


def test_a_moved_folder_keeps_versions_and_its_sync_still_removes_deleted_files(tmp_path, embedder):
    from ingest import IngestConfig, ingest

    first, kb_dir = tmp_path / "first", tmp_path / "kb"
    first.mkdir()
    (first / "keep.txt").write_text("Invoices are sent on the first working day of the month.\n")
    (first / "drop.txt").write_text("The old office closes on Fridays at noon.\n")
    ingest(kb_dir, [first], IngestConfig(mirror=True), embedder=embedder)
    moved = tmp_path / "moved"
    first.rename(moved)
    again = ingest(kb_dir, [moved], IngestConfig(mirror=True), embedder=embedder)
    assert again.counts()["unchanged"] == 2 and again.chunks_embedded == 0
    kb = KnowledgeBase(kb_dir)
    assert kb.document("keep.txt").version == 1 and kb.document("keep.txt").root == str(moved.resolve())
    (moved / "drop.txt").unlink()
    third = ingest(kb_dir, [moved], IngestConfig(mirror=True), embedder=embedder)
    assert third.removed == ("drop.txt",) and kb.document("drop.txt") is None and kb.check().ok


UNGUARDED_SCRIPT = """
from ingest import ingest
report = ingest({kb!r}, [{docs!r}])
print("INGESTED", report.counts())
"""


@pytest.mark.slow  # a script and its parse worker, each a fresh interpreter
def test_a_script_calling_ingest_outside_a_main_guard_stops_with_the_fix_and_stores_nothing(tmp_path):
    import subprocess
    import sys

    docs, kb_dir = tmp_path / "docs", tmp_path / "store"  # not "kb": the script's folder comes first on sys.path
    docs.mkdir()
    (docs / "refunds.txt").write_text("Refunds take five business days after we receive the item.")
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT.format(kb=str(kb_dir), docs=str(docs)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    # Spawn re-ran the script in the parse worker: it stopped there instead of ingesting a second time, and the
    # run stopped with the fix named instead of failing the file at its 60 s budget.
    assert done.returncode == 1 and "INGESTED" not in done.stdout, done.stdout + done.stderr[-2000:]
    assert "hopfield-kb: the script that runs this ingest calls it outside" in done.stderr  # the worker's line
    assert 'KBError: the script that runs this ingest calls it outside `if __name__ == "__main__":`' in done.stderr
    assert not kb_dir.exists() or KnowledgeBase(kb_dir).n_chunks() == 0
