"""Tables in born-digital PDFs (pdfplumber): each row a line that keeps its header, text around it in order.

pypdf reads a ruled table as a run of cells ("Team plan credit Business plan credit 99.0% to less
than 99.9% 10% 15%"): no row can be quoted alone. pdfplumber finds ruled tables; a page with one
is re-read as the text above the first table, that table's rows (ingest.tables.render_rows, first
row as header), the text between, the next table, and so on, so a table never merges with the next.
"""

from __future__ import annotations

import io
import logging

from ingest.tables import render_rows

MIN_ROWS = 2  # a header and one row: a single ruled line of cells is a box around text, not a table


def pages_with_tables(data: bytes, numbers: list[int]) -> dict[int, str]:
    """page number (1-based) -> its text with tables as row lines, for the pages among numbers that hold
    a ruled table; pages without one are left out (their pypdf text stands)."""
    import pdfplumber

    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    out: dict[int, str] = {}
    with pdfplumber.open(io.BytesIO(data), password="") as pdf:
        for number in numbers:
            page = pdf.pages[number - 1]
            try:
                tables = [t for t in page.find_tables() if len(t.rows) >= MIN_ROWS]
                if tables:
                    out[number] = _page_text(page, tables)
            finally:
                page.close()  # pdfplumber keeps each page's layout objects until closed
    return out


def _page_text(page, tables) -> str:
    """The page as bands from top to bottom: text, table rows (one paragraph each), text, ..."""
    parts: list[str] = []
    top = page.bbox[1]
    x0, _, x1, bottom = page.bbox
    for table in sorted(tables, key=lambda t: t.bbox[1]):
        t_top, t_bottom = table.bbox[1], table.bbox[3]
        if t_top > top:
            parts.append(page.crop((x0, top, x1, t_top)).extract_text() or "")
        rows = [[cell or "" for cell in row] for row in table.extract()]
        parts.append("\n\n".join(render_rows(rows[0], rows[1:])))
        top = max(top, t_bottom)
    if top < bottom:
        parts.append(page.crop((x0, top, x1, bottom)).extract_text() or "")
    return "\n\n".join(p.strip() for p in parts if p.strip())
