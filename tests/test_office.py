"""Spreadsheets and slide decks as documents: each sheet a section and each row one line keeping its header;
each slide a section with its title, text, tables and notes; a zip bomb is refused before it inflates."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook
from pptx import Presentation
from pptx.util import Inches

from ingest import LoadError, load


def _xlsx(path: Path) -> Path:
    book = Workbook()
    plans = book.active
    plans.title = "Plans"
    plans.append(["Plan", "Seats", "Price per month"])
    plans.append(["Team", 10, 300])
    plans.append(["Business", 50, "=B3*24"])  # a formula: its cached value (none here) or nothing
    plans.append([None, None, None])
    plans.append(["Enterprise", "unlimited", "on request"])
    regions = book.create_sheet("Regions")
    regions.append(["Region", "Support hours"])
    regions.append(["EU", "08:00-18:00 CET"])
    book.create_sheet("Empty")
    book.save(path)
    return path


def _pptx(path: Path) -> Path:
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Onboarding a new customer"
    first.placeholders[1].text = "Create the workspace\nInvite the admins"
    first.notes_slide.notes_text_frame.text = "Remind them that SSO needs the Business plan."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Response times"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([["Priority", "First response"], ["Urgent", "1 hour"], ["Normal", "1 business day"]]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    deck.save(path)
    return path


def test_xlsx_sheets_are_sections_and_rows_keep_their_header(tmp_path):
    path = _xlsx(tmp_path / "plan-matrix.xlsx")
    parsed = load(path, path.read_bytes())
    assert parsed.kind == "xlsx" and parsed.title == "plan matrix"
    sections = {b.section: parsed.text[b.start : b.end] for b in parsed.blocks}
    assert list(sections) == ["Plans", "Regions"]  # the empty sheet is skipped
    assert sections["Plans"].split("\n\n") == [
        "Plan: Team | Seats: 10 | Price per month: 300",
        "Plan: Business | Seats: 50",
        "Plan: Enterprise | Seats: unlimited | Price per month: on request",
    ]
    assert sections["Regions"] == "Region: EU | Support hours: 08:00-18:00 CET"


def test_pptx_slides_are_sections_with_text_tables_and_notes(tmp_path):
    path = _pptx(tmp_path / "onboarding.pptx")
    parsed = load(path, path.read_bytes())
    assert parsed.kind == "pptx" and parsed.title == "Onboarding a new customer"
    sections = {b.section: parsed.text[b.start : b.end] for b in parsed.blocks}
    assert list(sections) == ["Slide 1: Onboarding a new customer", "Slide 2: Response times"]
    first = sections["Slide 1: Onboarding a new customer"]
    assert "Create the workspace\nInvite the admins" in first
    assert first.endswith("Notes: Remind them that SSO needs the Business plan.")
    assert "Priority: Urgent | First response: 1 hour" in sections["Slide 2: Response times"]


@pytest.mark.parametrize("name", ["bomb.xlsx", "bomb.pptx"])
def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path, name):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (300 * 2**20))  # 300 MB of zeros: ~300 KB zipped
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    assert path.stat().st_size < 2**20
    with pytest.raises(LoadError, match="decompresses to 300 MB .* zip bomb"):
        load(path, path.read_bytes())


@pytest.mark.parametrize("name", ["broken.xlsx", "broken.pptx"])
def test_a_file_that_is_not_an_office_archive_fails_naming_it(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 but not really a zip")
    with pytest.raises(LoadError, match=name):
        load(path, path.read_bytes())
