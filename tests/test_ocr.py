"""Scanned PDFs through OCR: real pages rendered to images and back to PDF, read by the real Tesseract."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from data.make_scans import scanned_copy
from ingest import Budget, IngestConfig, LoadError, OcrConfig, ingest, load
from kb import DocumentFilter, KnowledgeBase
from retriever import make_retriever
from tests.helpers import make_pdf

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="Tesseract is not installed (scripts/test.sh installs Debian's tesseract-ocr)"
)

FIRST = (
    "Refunds for annual plans are prorated by whole unused months. A cancelled monthly plan runs to the end of "
    "the month that was paid for, and nothing is refunded for the days left in it."
)
SECOND = (
    "Chargebacks are answered by the payments team within five working days. The customer keeps access while "
    "the bank reviews the dispute, and the account is frozen only if the card issuer rules against them."
)
FILLER = (
    "Support agents record each request in the help desk with its category, the plan of the account and the "
    "channel it came from, so that the weekly report can count them."
)


@pytest.fixture(scope="module")
def born(tmp_path_factory) -> bytes:
    """A two-page born-digital policy: FIRST on page 1, SECOND at the top of page 2."""
    path = make_pdf(
        tmp_path_factory.mktemp("born") / "born.pdf",
        ["Refund and chargeback handbook\n\n" + FIRST + "\n\n" + FILLER, SECOND + "\n\n" + FILLER],
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def scans(born, tmp_path_factory) -> Path:
    """scan.pdf (clean, 300 dpi), poor.pdf (page 1 stored at 50 dpi: hard to read), notes.md (text)."""
    folder = tmp_path_factory.mktemp("scans")
    (folder / "scan.pdf").write_bytes(scanned_copy(born))
    (folder / "poor.pdf").write_bytes(scanned_copy(_first_page(born), scan_dpi=50))
    (folder / "notes.md").write_text("# Notes\n\nThe escalation rota is kept in the team calendar.\n")
    return folder


def _first_page(pdf: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_page(PdfReader(io.BytesIO(pdf)).pages[0])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_scanned_pdf_is_read_by_ocr_with_its_page_numbers_and_confidence(born, scans):
    import jiwer
    from pypdf import PdfReader

    path = scans / "scan.pdf"
    parsed = load(path, path.read_bytes())
    assert [b.page for b in parsed.blocks] == [1, 2]
    assert all(b.ocr_confidence is not None and b.ocr_confidence > 0.9 for b in parsed.blocks)
    page2 = parsed.blocks[1]
    assert "Chargebacks are answered by the payments team" in " ".join(parsed.text[page2.start : page2.end].split())
    for block, page in zip(parsed.blocks, PdfReader(io.BytesIO(born)).pages):
        truth = " ".join(page.extract_text().split())
        read = " ".join(parsed.text[block.start : block.end].split())
        assert 1 - jiwer.cer(truth, read) >= 0.98, (block.page, read[:200])


def test_a_kb_synced_from_scans_cites_ocr_pages_and_flags_the_hard_one(scans, embedder, tmp_path):
    report = ingest(tmp_path / "kb", [scans], IngestConfig(mirror=True), embedder=embedder)
    assert not report.failed, report.failed
    assert sorted(report.added) == ["notes.md", "poor.pdf", "scan.pdf"]
    assert any("poor.pdf" in w and "page 1" in w and "low confidence" in w for w in report.warnings), report.warnings
    kb = KnowledgeBase(tmp_path / "kb")
    stats = kb.stats()
    assert stats["ocr_pages"] == 3
    assert [(p["document"], p["page"]) for p in stats["low_confidence_pages"]] == [("poor.pdf", 1)]
    hits = make_retriever("hopfield", kb, embedder).search("how fast does the payments team answer a chargeback").hits
    top = hits[0].chunk
    assert (top.doc_source, top.page) == ("scan.pdf", 2)
    assert top.where.startswith("p. 2 (OCR ") and "low confidence" not in top.where
    poor = _chunks(kb, "poor.pdf")
    assert poor and all("low confidence: check the scan" in c.where for c in poor)
    from click.testing import CliRunner

    from ui.cli import main

    shown = CliRunner().invoke(main, ["stats", "--kb-dir", str(tmp_path / "kb")], catch_exceptions=False).output
    assert "low OCR confidence: poor.pdf p. 1" in shown and "scan.pdf" not in shown


def test_without_tesseract_a_scan_is_named_with_the_fix_and_the_rest_goes_on(scans, born, embedder, tmp_path):
    from pypdf import PdfReader, PdfWriter

    folder = tmp_path / "docs"
    shutil.copytree(scans, folder)
    mixed = PdfWriter()  # page 1 has a text layer, page 2 is a scan
    mixed.add_page(PdfReader(io.BytesIO(born)).pages[0])
    mixed.add_page(PdfReader(folder / "scan.pdf").pages[1])
    mixed.write(folder / "mixed.pdf")
    config = IngestConfig(ocr=OcrConfig(tesseract_cmd=str(tmp_path / "no-such-tesseract")))
    report = ingest(tmp_path / "kb", [folder], config, embedder=embedder)
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert set(failed) == {"scan.pdf", "poor.pdf"}
    assert "need OCR" in failed["scan.pdf"] and "apt-get install tesseract-ocr" in failed["scan.pdf"]
    assert sorted(report.added) == ["mixed.pdf", "notes.md"]
    assert any("mixed.pdf" in w and "page(s) 2" in w and "tesseract-ocr" in w for w in report.warnings)
    assert [c.page for c in _chunks(KnowledgeBase(tmp_path / "kb"), "mixed.pdf")] == [1]


def _chunks(kb: KnowledgeBase, source: str):
    return kb.chunks(kb.chunk_ids(DocumentFilter(key_prefix=source)).tolist())


def test_a_page_over_the_ocr_time_limit_is_skipped_with_the_reason(scans):
    path = scans / "poor.pdf"
    with pytest.raises(LoadError, match=r"page 1 has no text layer and was skipped: OCR took over the 0.01 s"):
        load(path, path.read_bytes(), OcrConfig(page_seconds=0.01))


def test_a_scan_longer_than_the_ocr_page_cap_keeps_the_pages_read_and_names_the_rest(scans):
    path = scans / "scan.pdf"
    parsed = load(path, path.read_bytes(), OcrConfig(max_pages=1))
    assert [b.page for b in parsed.blocks] == [1]
    assert parsed.warnings == (f"{path}: page 2 has no text layer and was skipped: past the 1 pages OCR reads in one file",)


def test_ocr_pages_add_their_own_time_to_the_parse_budget(scans):
    from ingest import ChunkConfig
    from ingest.worker import ParseWorker

    worker = ParseWorker(Budget(seconds=600))
    try:
        notes = scans / "notes.md"
        worker.parse(notes, notes.read_bytes(), ChunkConfig())  # started and warm: imports are not the test
        # Reading two scanned pages takes longer than one second here; each page announces its own limit.
        worker.budget = Budget(seconds=1.0)
        scan = scans / "scan.pdf"
        doc, _ = worker.parse(scan, scan.read_bytes(), ChunkConfig(), key="scan.pdf")
        assert {c.page for c in doc.chunks} == {1, 2}
    finally:
        worker.stop()


def test_ocr_settings_are_checked_with_the_fix_named():
    from kb import KBError

    with pytest.raises(KBError, match="dpi must be between 72 and 600"):
        OcrConfig(dpi=2000)
    with pytest.raises(KBError, match="page_seconds > 0"):
        OcrConfig(page_seconds=0)
    with pytest.raises(KBError, match="workers must be at least 1"):
        OcrConfig(workers=0)
