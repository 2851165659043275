"""Word files: real .docx files written with python-docx (headings, a list, a table, a tracked change, a
comment), parsed, ingested into a real KB and searched with the real model."""

from __future__ import annotations

from pathlib import Path

import docx
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls

from ingest import IngestConfig, ingest, load
from kb import KnowledgeBase
from retriever import make_retriever


def _partner_docx(path: Path) -> Path:
    d = docx.Document()
    d.add_heading("Partner programme", 0)
    intro = d.add_paragraph("Partners resell Tallyo to their own clients under a reseller agreement.")
    d.add_comment(intro.runs, text="INTERNAL: check the Zorblax margin before publishing", author="Ana")
    d.add_heading("Rate limits", 1)
    d.add_paragraph("Each partner plan has its own API request limits.")
    table = d.add_table(rows=3, cols=2)
    for r, row in enumerate([("Plan", "Requests per minute"), ("Team", "300"), ("Business", "1200")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Badges", 1)
    d.add_paragraph("Gold partners get a badge on every invoice.", style="List Bullet")
    changed = d.add_paragraph("The badge colour is ")
    changed._p.append(
        parse_xml(
            f'<w:del {nsdecls("w")} w:id="1" w:author="Ana" w:date="2026-01-01T00:00:00Z">'
            "<w:r><w:delText>teal</w:delText></w:r></w:del>"
        )
    )
    changed._p.append(
        parse_xml(
            f'<w:ins {nsdecls("w")} w:id="2" w:author="Ana" w:date="2026-01-01T00:00:00Z">'
            "<w:r><w:t>orange</w:t></w:r></w:ins>"
        )
    )
    d.save(path)
    return path


def test_a_word_file_keeps_sections_lists_and_table_rows_and_drops_deletions_and_comments(tmp_path):
    path = _partner_docx(tmp_path / "partners.docx")
    parsed = load(path, path.read_bytes())
    assert parsed.kind == "docx" and parsed.title == "Partner programme"
    text = parsed.text
    assert "Plan: Business | Requests per minute: 1200" in text and "Plan: Team | Requests per minute: 300" in text
    assert "- Gold partners get a badge on every invoice." in text
    assert "The badge colour is orange" in text and "teal" not in text  # the tracked change as Word shows it
    assert "Zorblax" not in text and "INTERNAL" not in text  # comments are not the document
    sections = {b.section: text[b.start : b.end] for b in parsed.blocks}
    assert "1200" in sections["Rate limits"] and "badge" in sections["Badges"]
    assert "reseller" in sections["Partner programme"]


def test_a_question_about_one_table_row_finds_that_row_in_its_section(kb_copy, embedder, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    _partner_docx(docs / "partners.docx")
    report = ingest(kb_copy, [docs], IngestConfig(), embedder=embedder)
    assert not report.failed and report.added == ("partners.docx",)
    kb = KnowledgeBase(kb_copy)  # the sample KB has its own (HTML) rate-limit table: the Word one must win here
    hits = make_retriever("hopfield", kb, embedder).search("partner plan requests per minute for Business").hits
    hit = next(h for h in hits[:3] if h.chunk.doc_name == "partners.docx")
    assert hit.chunk.section == "Rate limits" and "Plan: Business | Requests per minute: 1200" in hit.chunk.text


def test_a_damaged_word_file_is_named_with_a_reason_and_the_rest_is_ingested(kb_copy, embedder, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    good = _partner_docx(docs / "partners.docx")
    raw = bytearray(good.read_bytes())
    (docs / "broken.docx").write_bytes(bytes(raw[: len(raw) // 3]))  # truncated zip
    (docs / "not-word.docx").write_bytes(b"just some text pretending to be a Word file\n")
    before = KnowledgeBase(kb_copy).stats()["documents"]
    report = ingest(kb_copy, [docs], IngestConfig(), embedder=embedder)
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert set(failed) == {"broken.docx", "not-word.docx"}
    assert all("not a readable Word document" in reason for reason in failed.values()), failed
    assert report.added == ("partners.docx",) and KnowledgeBase(kb_copy).stats()["documents"] == before + 1
