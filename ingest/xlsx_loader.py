"""Spreadsheets (.xlsx, openpyxl in read-only mode): each sheet a section, each row one line that keeps its header.

Cached formula results are read, not the formulas; empty rows and sheets are skipped. Large sheets are cut
into sections of 50 rows ("Prices, rows 51-100", ingest.tables.row_sections) so a citation says where to look.
"""

from __future__ import annotations

from pathlib import Path

from ingest.ooxml import checked_archive
from ingest.parsed import LoadError, ParsedText, joined
from ingest.tables import row_sections


def load_xlsx(path: Path, data: bytes) -> ParsedText:
    """ParsedText of an .xlsx file's bytes; LoadError for an unreadable or empty workbook."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(checked_archive(path, data), read_only=True, data_only=True)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a damaged workbook
        raise LoadError(path, f"unreadable spreadsheet ({type(exc).__name__}: {exc})") from exc
    sections: list[tuple[str, str]] = []
    try:
        for sheet in book.worksheets:
            rows = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            rows = [r for r in rows if any(r)]
            if len(rows) >= 2:  # a header and at least one row
                sections += row_sections(rows[0], rows[1:], sheet.title)
    finally:
        book.close()
    text, blocks = joined(sections)
    if not blocks:
        raise LoadError(path, "no sheet holds a header row and data rows")
    title = path.stem.replace("-", " ").replace("_", " ")
    return ParsedText(title=title, kind="xlsx", text=text, blocks=blocks)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
