"""ingest(): counts and incremental work, bad inputs, pages, sections, HTML cleaning, in-memory records.

Real files (PDFs from tests/helpers.make_pdf), the session's real model, real FAISS; each test
builds its own tiny folder and KB under tmp_path.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from ingest import ChunkConfig, IngestConfig, TextRecord, chunk, ingest, ingest_texts, load
from kb import KBError, KnowledgeBase
from retriever import make_retriever
from tests.helpers import make_pdf

SECTIONS = {
    "Refunds": "Annual plans are refunded pro rata for whole unused months after the first fourteen days.",
    "Chargebacks": "A chargeback freezes the account until the bank closes the dispute.",
    "Cancellation": "Only the account owner can cancel a subscription from the billing page.",
}


def _policy_md(sections: dict[str, str]) -> str:
    return "# Refund Policy\n\n" + "".join(f"## {h}\n\n{body}\n\n" for h, body in sections.items())


def _small_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "policy.md").write_text(_policy_md(SECTIONS))
    (folder / "hours.txt").write_text("Support hours\n\nThe support desk is open from 8:00 to 18:00 CET on weekdays.\n")
    (folder / "sso.html").write_text(
        "<html><head><title>Single sign-on</title></head><body><h1>SSO</h1>"
        "<p>SAML single sign-on is available on the Business plan.</p></body></html>"
    )
    make_pdf(
        folder / "sla.pdf",
        [
            "Uptime commitment: 99.9 percent each calendar month.",
            "Service credits are capped at 30 percent of the monthly fee.",
        ],
    )
    return folder


def _ids_by_doc(kb: KnowledgeBase) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for rec in kb.chunks(kb.snapshot().ids):
        out.setdefault(rec.doc_name, []).append(rec.id)
    return out


def test_reingest_embeds_nothing_and_an_edit_re_embeds_only_the_changed_chunks(tmp_path, embedder):
    docs, kb_dir = _small_folder(tmp_path / "docs"), tmp_path / "kb"
    first = ingest(kb_dir, [docs], IngestConfig(), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    before = _ids_by_doc(kb)
    n_chunks = sum(len(v) for v in before.values())
    assert first.counts() == {"added": 4, "updated": 0, "unchanged": 0, "removed": 0, "failed": 0}
    assert sorted(first.added) == sorted(p.name for p in docs.iterdir())
    assert first.chunks_embedded == first.chunks_written == n_chunks and first.chunks_reused == 0
    assert len(before["policy.md"]) == len(SECTIONS) and len(before["sla.pdf"]) == 2

    token = kb.token()
    second = ingest(kb_dir, [docs], IngestConfig(), embedder=embedder)
    assert second.counts() == {"added": 0, "updated": 0, "unchanged": 4, "removed": 0, "failed": 0}
    assert second.chunks_embedded == second.chunks_written == second.chunks_reused == 0
    assert kb.token() == token and _ids_by_doc(kb) == before

    edited = dict(SECTIONS, Chargebacks="A chargeback now closes the account for good and the data is deleted.")
    (docs / "policy.md").write_text(_policy_md(edited))
    third = ingest(kb_dir, [docs], IngestConfig(), embedder=embedder)
    assert third.updated == ("policy.md",) and len(third.unchanged) == 3
    assert (third.chunks_embedded, third.chunks_reused, third.chunks_written) == (1, len(SECTIONS) - 1, len(SECTIONS))
    after = _ids_by_doc(kb)
    assert {k: v for k, v in after.items() if k != "policy.md"} == {k: v for k, v in before.items() if k != "policy.md"}
    old_ids = before["policy.md"]
    assert not set(after["policy.md"]) & set(old_ids)
    assert kb.chunks(old_ids) == [None] * len(old_ids), "old chunks are still in SQLite"
    assert not np.isin(old_ids, kb.snapshot().ids).any(), "old chunks are still in FAISS"
    doc = kb.document("policy.md")
    assert doc.version == 2 and doc.content_hash == hashlib.sha256((docs / "policy.md").read_bytes()).hexdigest()
    assert {r.doc_version for r in kb.chunks(after["policy.md"])} == {2}
    assert [h.event for h in kb.history("policy.md")] == ["added", "updated"]
    hit = make_retriever("dense", kb, embedder, top_k=1).search("what happens to the account after a chargeback").hits[0]
    assert hit.chunk.section == "Chargebacks" and "closes the account for good" in hit.chunk.text
    assert kb.check().ok


def _bad_folder(folder: Path) -> dict[str, str]:
    """Writes bad files next to good ones; returns bad file name -> word its reason must contain."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("   \n\n \t\n")
    (folder / "binary.txt").write_bytes(b"PK\x03\x04" + rng.bytes(3000) + b"\x00\x00")
    (folder / "slides.pptx").write_bytes(b"PK\x03\x04" + rng.bytes(500))  # a zip header, then noise
    (folder / "slides.key").write_bytes(b"PK\x03\x04" + rng.bytes(500))  # Keynote: not a type a sync reads
    good_pdf = make_pdf(folder / "good.pdf", ["Expense reports are due on the fifth working day."]).read_bytes()
    (folder / "corrupt.pdf").write_bytes(good_pdf[:100] + rng.bytes(len(good_pdf)))
    make_pdf(folder / "locked.pdf", ["Salary bands for managers."], password="hunter2")
    (folder / "huge.txt").write_text("Log line about nothing in particular.\n" * 400)  # ~15 KB > max_bytes below
    (folder / "good.md").write_text("# Travel\n\nTrain tickets are booked through the travel desk.\n")
    (folder / "good.txt").write_text("Parking permits are renewed every January.\n")
    os.mkfifo(folder / "pipe.txt")  # reading a named pipe would block the whole run
    (folder / "dangling.md").symlink_to(folder / "deleted-target.md")  # an unreadable path
    return {
        "pipe.txt": "not a regular file",
        "dangling.md": "cannot read",
        "empty.txt": "empty",
        "blank.md": "empty",
        "binary.txt": "binary",
        "slides.pptx": "not a readable office file",
        "slides.key": "unsupported",
        "corrupt.pdf": "corrupt",
        "locked.pdf": "password",
        "huge.txt": "limit",
    }


def test_bad_inputs_are_each_reported_once_with_a_reason_and_good_files_are_ingested(tmp_path, embedder):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    bad = _bad_folder(docs)
    missing = tmp_path / "no-such-folder"
    config = IngestConfig(max_bytes=8 * 1024)

    def stalled(signum, frame):
        raise TimeoutError("ingest stalled on a bad input (a named pipe?)")

    previous = signal.signal(signal.SIGALRM, stalled)
    signal.alarm(60)
    try:
        report = ingest(kb_dir, [docs, missing], config, embedder=embedder)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert len(report.failed) == len(failed) == len(bad) + 1, [str(f) for f in report.failed]
    assert "no such file" in failed.pop("no-such-folder")
    assert failed["huge.txt"] == f"file is {(docs / 'huge.txt').stat().st_size / 1024:.1f} KB, over the 8.0 KB size limit"
    for name, word in bad.items():
        assert word in failed[name].lower(), (name, failed[name])
        line = str(next(f for f in report.failed if Path(f.path).name == name))
        assert line.startswith(str(docs.resolve() / name) + ": ") and "\n" not in line
    assert sorted(Path(s).name for s in report.added) == ["good.md", "good.pdf", "good.txt"]
    kb = KnowledgeBase(kb_dir)
    assert sorted(d.name for d in kb.documents()) == ["good.md", "good.pdf", "good.txt"]
    assert kb.check().ok

    # Nothing already stored is lost when the next run meets the same bad files again.
    again = ingest(kb_dir, [docs], config, embedder=embedder)
    assert sorted(Path(f.path).name for f in again.failed) == sorted(bad)
    assert len(again.unchanged) == 3 and again.chunks_embedded == 0
    assert sorted(d.name for d in kb.documents()) == ["good.md", "good.pdf", "good.txt"]


def test_files_parsed_side_by_side_give_the_kb_and_failures_of_one_at_a_time(tmp_path, embedder):
    docs = tmp_path / "docs"
    _bad_folder(docs)
    _small_folder(docs / "more")
    runs = {}
    for workers in (1, 2):
        kb_dir = tmp_path / f"kb{workers}"
        report = ingest(kb_dir, [docs], IngestConfig(max_bytes=8 * 1024, parse_workers=workers), embedder=embedder)
        kb = KnowledgeBase(kb_dir)
        stored = sorted((r.doc_name, r.text) for r in kb.chunks(kb.snapshot().ids))
        runs[workers] = (sorted(map(str, report.failed)), sorted(report.added), stored)
    assert len(runs[2][1]) == 7 and len(runs[2][0]) == 10
    assert runs[1] == runs[2]
    with pytest.raises(KBError, match="parse_workers must be at least 1, not 0"):
        IngestConfig(parse_workers=0)


def test_a_changed_file_that_is_now_unreadable_keeps_its_previous_version(tmp_path, embedder):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    notes = docs / "notes.txt"
    notes.write_text("Laptops are replaced every four years by the IT team.\n")
    other = docs / "other.md"
    other.write_text("# Desks\n\nHot desks are booked a day ahead.\n")
    ingest(kb_dir, [docs], IngestConfig(), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    ids, good_hash = _ids_by_doc(kb), kb.document("notes.txt").content_hash

    notes.write_bytes(b"\x00\x01binary garbage\x00" * 50)
    other.write_text("# Desks\n\nHot desks are booked two days ahead.\n")
    report = ingest(kb_dir, [docs], IngestConfig(), embedder=embedder)
    assert [(Path(f.path).name, "binary" in f.reason) for f in report.failed] == [("notes.txt", True)]
    assert [Path(s).name for s in report.updated] == ["other.md"], "the good change in the same run was lost"
    doc = kb.document("notes.txt")
    assert (doc.version, doc.content_hash) == (1, good_hash)
    assert _ids_by_doc(kb)["notes.txt"] == ids["notes.txt"]
    hit = make_retriever("dense", kb, embedder, top_k=1).search("how often are laptops replaced").hits[0]
    assert hit.chunk.doc_name == "notes.txt" and "four years" in hit.chunk.text
    assert kb.check().ok


def test_pdf_chunks_carry_the_number_of_the_page_their_text_came_from(tmp_path, embedder):
    topics = {1: "harbour ferry dock pier", 3: "orchard apple pear blossom", 4: "glacier ice moraine crevasse"}
    pages = []
    for number in range(1, 5):  # page 2 is blank: numbering must not shift
        words = topics.get(number, "").split()
        pages.append(" ".join(f"Sentence {i} on page {number} mentions {words[i % 4]}." for i in range(40)) if words else "")
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "atlas.pdf", pages)
    ingest(tmp_path / "kb", [docs], IngestConfig(chunking=ChunkConfig(size=60, overlap=10)), embedder=embedder)
    kb = KnowledgeBase(tmp_path / "kb")
    records = kb.chunks(kb.snapshot().ids)
    text = kb.document_text(records[0].doc_id)
    seen = set()
    for r in records:
        assert r.text == text[r.char_start : r.char_end]
        assert f"on page {r.page} " in r.text
        for other in set(topics) - {r.page}:
            assert f"on page {other} " not in r.text, "a chunk crosses a page boundary"
            assert not any(w in r.text for w in topics[other].split())
        seen.add(r.page)
    assert seen == {1, 3, 4} and len(records) >= 6
    assert [r.ordinal for r in records] == list(range(len(records)))


def test_markdown_sections_and_html_visible_text_reach_the_stored_chunks(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text(
        "Intro before any heading explains the guide.\n\n# Onboarding Guide\n\nWelcome to the team.\n\n"
        "## Accounts\n\nYour laptop account is created on day one.\n\n### Passwords\n\n"
        "Passwords rotate every ninety days.\n\n## Equipment\n\nMonitors are ordered through the service desk.\n\n"
        "## Hardware\n\n### Laptops\n\nLaptops are replaced every four years.\n"
    )
    (docs / "page.html").write_text(
        "<html><head><title>Security FAQ</title><style>body { zqxstyle: 1 }</style>"
        "<script>var zqxheadscript = 1;</script></head><body><nav>zqxnav Home</nav>"
        "<h1>Encryption</h1><p>Data at rest uses AES-256.</p><script>track('zqxscript')</script>"
        "<noscript>zqxnoscript</noscript><h2>Access</h2><p>Staff access needs a hardware key.</p>"
        "<h2>Keys</h2><h3>Lost keys</h3><p>Report a lost key to security at once.</p>"
        "<footer>zqxfooter</footer></body></html>"
    )
    report = ingest(tmp_path / "kb", [docs], IngestConfig(), embedder=embedder)
    assert not report.failed
    kb = KnowledgeBase(tmp_path / "kb")
    by_doc: dict[str, list] = {}
    for r in kb.chunks(kb.snapshot().ids):
        by_doc.setdefault(r.doc_name, []).append(r)
    md = {r.section: r.text for r in by_doc["guide.md"]}
    assert "Intro before any heading" in md[None]
    assert "laptop account" in md["Accounts"] and "ninety days" in md["Passwords"]
    assert "Monitors" in md["Equipment"] and "Welcome" in md["Onboarding Guide"]
    # A heading with nothing under it but a sub-heading is not a chunk of its own.
    assert "Hardware" not in md and "Laptops are replaced" in md["Laptops"]
    assert {r.doc_title for r in by_doc["guide.md"]} == {"Onboarding Guide"}

    html = by_doc["page.html"]
    assert {r.doc_title for r in html} == {"Security FAQ"}
    assert {r.section: r.text for r in html} == {
        "Encryption": "Encryption\n\nData at rest uses AES-256.",
        "Access": "Access\n\nStaff access needs a hardware key.",
        "Lost keys": "Lost keys\n\nReport a lost key to security at once.",
    }
    stored = kb.document_text(html[0].doc_id)
    assert "zqx" not in stored and "track(" not in stored and "Home" not in stored


@pytest.mark.parametrize(
    "newline, oddity", [("\n", "\f"), ("\n", "\u2028"), ("\n", "\x1c"), ("\r\n", "\x85"), ("\r", "\x0b")]
)
def test_markdown_sections_survive_odd_line_breaks(tmp_path, newline, oddity):
    # Form feeds, U+2028 and friends are line breaks to str.splitlines but not to Markdown.
    body = (
        f"# Guide{newline}{newline}Intro{oddity}with an odd break.{newline}{newline}"
        f"## Refunds{newline}{newline}Refunds take ten days.{oddity}Really.{newline}{newline}"
        f"## Billing{newline}{newline}Invoices go out monthly.{newline}"
    )
    path = tmp_path / "guide.md"
    path.write_bytes(body.encode("utf-8"))
    parsed = load(path, path.read_bytes())
    chunks = {c.section: c.text for c in chunk(parsed)}
    assert list(chunks) == ["Guide", "Refunds", "Billing"]
    assert "Intro" in chunks["Guide"] and "Refunds take" not in chunks["Guide"]
    assert "Refunds take ten days." in chunks["Refunds"] and "Invoices" not in chunks["Refunds"]
    assert chunks["Billing"].startswith("## Billing") and "Invoices go out monthly." in chunks["Billing"]


def test_ingest_texts_adds_reuses_and_updates_in_memory_records(tmp_path, embedder):
    kb_dir = tmp_path / "kb"
    records = [
        TextRecord("doc-1", "Refunds", "Refunds are paid within ten days."),
        TextRecord("doc-2", "Payouts", "Payouts go out every Friday.", name="payouts"),
        TextRecord("doc-3", "Limits", " ".join(f"Endpoint {i} allows {10 * i} requests per minute." for i in range(80))),
    ]
    first = ingest_texts(kb_dir, records, IngestConfig(), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    assert first.counts()["added"] == 3 and not first.failed
    assert first.chunks_embedded == first.chunks_written == len(kb.snapshot().ids) > 3  # doc-3 is several chunks
    for r in kb.chunks(kb.snapshot().ids):
        assert r.text == kb.document_text(r.doc_id)[r.char_start : r.char_end]
    assert kb.document("payouts").source == "doc-2" and kb.document("doc-1").title == "Refunds"

    token = kb.token()
    second = ingest_texts(kb_dir, records, IngestConfig(), embedder=embedder)
    assert second.counts()["unchanged"] == 3 and second.chunks_embedded == 0 and kb.token() == token

    changed = [
        records[0],
        TextRecord("doc-2", "Payouts", "Payouts go out every Monday."),
        records[2],
        TextRecord("doc-4", "Holidays", "The office closes on public holidays."),
        TextRecord("doc-4", "Duplicate", "A second record with the same id."),
        TextRecord("doc-5", "Empty", "   "),
    ]
    third = ingest_texts(kb_dir, changed, IngestConfig(), embedder=embedder)
    assert (third.added, third.updated, third.unchanged) == (("doc-4",), ("doc-2",), ("doc-1", "doc-3"))
    assert {f.path: f.reason for f in third.failed} == {
        "doc-4": "duplicate source id; only the first record was kept",
        "doc-5": "empty text",
    }
    assert third.chunks_embedded == 2
    assert kb.document("doc-2").version == 2 and kb.document("doc-4").title == "Holidays"
    hit = make_retriever("dense", kb, embedder, top_k=1).search("which day are payouts sent").hits[0]
    assert hit.chunk.doc_source == "doc-2" and "Monday" in hit.chunk.text
    assert kb.check().ok


@pytest.mark.shared
def test_the_empty_password_dmca_pdf_opens_with_every_page_cited(shared_dir, tmp_path, embedder):
    pdf = shared_dir / "docs" / "pdf" / "dmca.pdf"
    if not pdf.is_file():
        pytest.skip(f"{pdf} is absent from ../shared")
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    assert reader.is_encrypted  # encrypted with an empty user password: it must open
    reader.decrypt("")
    pages = [" ".join((p.extract_text() or "").split()) for p in reader.pages]
    report = ingest(tmp_path / "kb", [pdf], IngestConfig(), embedder=embedder)
    assert not report.failed and len(report.added) == 1
    kb = KnowledgeBase(tmp_path / "kb")
    records = kb.chunks(kb.snapshot().ids)
    assert {r.page for r in records} == {i + 1 for i, p in enumerate(pages) if p}
    for r in records:
        assert " ".join(r.text.split()) in pages[r.page - 1], (r.page, r.text[:60])
    assert kb.document("dmca.pdf").title == "The Digital Millennium Copyright Act of 1998"
    hits = make_retriever("dense", kb, embedder, top_k=5).search("limitations on liability of online service providers").hits
    assert any("limitations on liability" in h.chunk.text.lower() for h in hits)


@pytest.mark.shared
def test_shared_bad_pdfs_fail_clearly_or_are_recovered(shared_dir, tmp_path, embedder):
    bad_dir = shared_dir / "docs" / "bad_pdf"
    if not bad_dir.is_dir():
        pytest.skip(f"{bad_dir} is absent from ../shared")
    report = ingest(tmp_path / "kb", [bad_dir], IngestConfig(), embedder=embedder)
    failed = {Path(f.path).name: f.reason for f in report.failed}
    added = {Path(s).name for s in report.added}
    assert sorted(added | set(failed)) == sorted(p.name for p in bad_dir.iterdir()) and not added & set(failed)
    for name in ("pypdf-libreoffice-writer-password.pdf", "pypdf-crazyones-encrypted-aes256.pdf"):
        assert "password" in failed[name], failed
    assert "corrupt" in failed["pdfminer-issue-1113-evil-xobjects.pdf"]
    kb = KnowledgeBase(tmp_path / "kb")
    text = {d.name: kb.document_text(d.id) for d in kb.documents()}
    assert "Beautiful is better than ugly." in text["pdfminer-zen_of_python_corrupted.pdf"]
    assert text["pypdf-issue-297-broken-xref.pdf"].strip() == "test example"
    assert kb.check().ok


def test_the_texts_to_embed_go_to_the_embedder_longest_first_in_parts(tmp_path, embedder):
    from ingest.embed import CACHE_EVERY

    class Recorded:
        """The real model, keeping the texts of each call (one call per part of CACHE_EVERY)."""

        name, dim = embedder.name, embedder.dim
        calls: list[list[str]] = []

        def encode(self, texts, progress=False):
            self.calls.append(list(texts))
            return embedder.encode(texts)

    records = [
        TextRecord(f"r{i}", f"Note {i}", f"Ticket {i} was closed." + " The customer was refunded." * (i % 9))
        for i in range(CACHE_EVERY + 44)
    ]
    recorded = Recorded()
    report = ingest_texts(tmp_path / "kb", records, embedder=recorded)
    assert report.chunks_embedded == len(records) and [len(c) for c in recorded.calls] == [CACHE_EVERY, 44]
    lengths = [[len(t) for t in call] for call in recorded.calls]
    # Each part holds like lengths (the embedder's batches pad little): the first part's shortest text is
    # no shorter than the second part's longest.
    assert min(lengths[0]) >= max(lengths[1]) and lengths[0] == sorted(lengths[0], reverse=True)
    # and every chunk got its own text's vector back, whatever order the texts were embedded in
    kb = KnowledgeBase(tmp_path / "kb")
    snap = kb.snapshot()
    ids, texts = kb.chunk_texts()
    assert np.array_equal(ids, snap.ids)
    assert float(np.sum(snap.vectors * embedder.encode(texts), axis=1).min()) > 0.999


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_parse_workers_follow_the_cpus_the_process_may_run_on_not_the_hosts_count():
    import subprocess
    import sys

    # A container pinned to one of the host's CPUs: one parse worker (OCR and the rebuild's pool size alike).
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from ingest import IngestConfig\nfrom kb import usable_cpus\n"
        "print(IngestConfig().parallel_parses, usable_cpus(), os.cpu_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    parses, usable, count = map(int, out.stdout.split())
    assert (parses, usable) == (1, 1)
    assert IngestConfig().parallel_parses == min(len(os.sched_getaffinity(0)), 4)
    assert count == os.cpu_count()  # the host's count did not change: the affinity did
