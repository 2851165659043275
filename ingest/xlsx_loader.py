"""Spreadsheets (.xlsx, openpyxl in read-only mode): each sheet a section, each row one line that keeps its header.

Cached formula results are read, not the formulas; empty rows and sheets are skipped. Large sheets are cut
into sections of ROWS_PER_BLOCK rows ("Prices, rows 51-100") so a citation says where to look.
"""

from __future__ import annotations

from pathlib import Path

from ingest.csv_loader import ROWS_PER_BLOCK
from ingest.ooxml import checked_archive
from ingest.parsed import Block, LoadError, ParsedText
from ingest.tables import render_rows


def load_xlsx(path: Path, data: bytes) -> ParsedText:
    """ParsedText of an .xlsx file's bytes; LoadError for an unreadable or empty workbook."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(checked_archive(path, data), read_only=True, data_only=True)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a damaged workbook
        raise LoadError(path, f"unreadable spreadsheet ({type(exc).__name__}: {exc})") from exc
    parts: list[str] = []
    blocks: list[Block] = []
    offset = 0
    try:
        for sheet in book.worksheets:
            rows = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            rows = [r for r in rows if any(r)]
            if len(rows) < 2:
                continue
            header, body = rows[0], rows[1:]
            for first in range(0, len(body), ROWS_PER_BLOCK):
                lines = render_rows(header, body[first : first + ROWS_PER_BLOCK])
                if not lines:
                    continue
                chunk = "\n\n".join(lines)
                if parts:
                    parts.append("\n\n")
                    offset += 2
                parts.append(chunk)
                section = (
                    sheet.title
                    if len(body) <= ROWS_PER_BLOCK
                    else (f"{sheet.title}, rows {first + 1}-{min(first + ROWS_PER_BLOCK, len(body))}")
                )
                blocks.append(Block(offset, offset + len(chunk), section=section))
                offset += len(chunk)
    finally:
        book.close()
    if not blocks:
        raise LoadError(path, "no sheet holds a header row and data rows")
    title = path.stem.replace("-", " ").replace("_", " ")
    return ParsedText(title=title, kind="xlsx", text="".join(parts), blocks=tuple(blocks))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
