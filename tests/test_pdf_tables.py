"""Ruled tables in born-digital PDFs: one readable line per row that keeps its header; tables never merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from data import SAMPLE_DOCS
from ingest import IngestConfig, ingest, load
from kb import KnowledgeBase
from retriever import answer, make_retriever

RATE_LIMITS = [["Plan", "Requests per minute"], ["Starter", "60"], ["Team", "300"], ["Business", "1,200"]]
STORAGE = [["Plan", "Attachment storage"], ["Starter", "2 GB"], ["Team", "50 GB"], ["Business", "500 GB"]]


@pytest.fixture(scope="module")
def two_tables(tmp_path_factory) -> Path:
    """A page with a heading, two ruled tables and the caption of the second between them (fpdf2 tables)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Plan limits\n\nTable 1: API rate limits by plan. Requests over the limit get HTTP 429.")
    pdf.ln(3)
    for title, rows in (("", RATE_LIMITS), ("Table 2: Attachment storage by plan, shared by the whole account.", STORAGE)):
        if title:
            pdf.ln(4)
            pdf.multi_cell(0, 6, title)
            pdf.ln(2)
        with pdf.table() as table:
            for row in rows:
                cells = table.row()
                for value in row:
                    cells.cell(value)
    pdf.ln(4)
    pdf.multi_cell(0, 6, "Limits are reviewed every quarter; the account owner is told 30 days before a change.")
    path = tmp_path_factory.mktemp("tables") / "plan-limits.pdf"
    pdf.output(str(path))
    return path


def test_the_sample_sla_credit_table_reads_one_row_per_line_with_its_header():
    path = SAMPLE_DOCS / "service-level-agreement.pdf"
    parsed = load(path, path.read_bytes())
    row = "Monthly Uptime Percentage: Less than 95.0% | Team plan credit: 50% | Business plan credit: 60%"
    page2 = next(b for b in parsed.blocks if b.page == 2)
    assert row in parsed.text[page2.start : page2.end]
    # The sentence that introduces the table stays above it, the one after it below it.
    assert (
        parsed.text.index("according\nto the table below")
        < parsed.text.index(row)
        < parsed.text.index("For annual subscriptions")
    )


def test_two_tables_on_a_page_never_merge_and_keep_their_caption_between_them(two_tables):
    parsed = load(two_tables, two_tables.read_bytes())
    lines = [line for line in parsed.text.split("\n") if line.strip()]
    rate = [i for i, line in enumerate(lines) if "Requests per minute:" in line]
    storage = [i for i, line in enumerate(lines) if "Attachment storage:" in line]
    caption = next(i for i, line in enumerate(lines) if line.startswith("Table 2:"))
    assert len(rate) == 3 and len(storage) == 3
    assert max(rate) < caption < min(storage)
    assert "Plan: Business | Requests per minute: 1,200" in lines
    assert "Plan: Team | Attachment storage: 50 GB" in lines
    assert not any("Requests per minute" in line and "Attachment storage" in line for line in lines)
    assert lines[-1].startswith("Limits are reviewed every quarter")


def test_a_question_about_one_pdf_table_row_retrieves_and_quotes_that_row(two_tables, embedder, tmp_path):
    report = ingest(tmp_path / "kb", [two_tables, SAMPLE_DOCS / "billing-faq.html"], IngestConfig(), embedder=embedder)
    assert not report.failed, report.failed
    retriever = make_retriever("hopfield", KnowledgeBase(tmp_path / "kb"), embedder, top_k=5)
    ans = answer("How much attachment storage does the Team plan get?", retriever)
    assert not ans.abstained
    assert ans.citations[0].doc_source == "plan-limits.pdf"
    assert "Plan: Team | Attachment storage: 50 GB" in ans.citations[0].quote
