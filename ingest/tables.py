"""Tables as readable lines: each row keeps its header, so one row can be found and quoted alone.

    >>> render_rows(["Plan", "Requests per minute"], [["Team", "300"], ["Business", "1,200"]])
    ['Plan: Team | Requests per minute: 300', 'Plan: Business | Requests per minute: 1,200']

Markdown pipe tables and HTML <table>s are rewritten to these lines (one paragraph per row,
so no row is split or merged with the next table) before the loaders cut sections.
"""

from __future__ import annotations

import re

ROW_SEPARATOR = " | "
ROWS_PER_BLOCK = 50  # a sheet's rows per section ("rows 51-100"), so a citation says where to look
_SPACE = re.compile(r"\s+")


def _cell(text: str) -> str:
    return _SPACE.sub(" ", text).strip().replace("|", "/")


def render_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    """One line per row: "Header: cell | Header: cell"; empty cells are left out; no header, cells only."""
    header = [_cell(h) for h in header]
    out = []
    for row in rows:
        cells = [_cell(c) for c in row]
        if any(header):
            parts = [f"{h}: {c}" if h else c for h, c in zip(header + [""] * len(cells), cells) if c]
        else:
            parts = [c for c in cells if c]
        if parts:
            out.append(ROW_SEPARATOR.join(parts))
    return out


def markdown_tables(text: str) -> str:
    """text with every pipe table (GFM) replaced by its rendered rows, one paragraph each."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables: list[tuple[int, int, list[str], list[list[str]]]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type != "table_open" or not tok.map:
            i += 1
            continue
        header: list[str] = []
        rows: list[list[str]] = []
        current: list[str] | None = None
        in_head = False
        i += 1
        while i < len(tokens) and tokens[i].type != "table_close":
            t = tokens[i]
            if t.type == "thead_open":
                in_head = True
            elif t.type == "thead_close":
                in_head = False
            elif t.type == "tr_open":
                current = []
            elif t.type == "tr_close" and current is not None:
                (header.extend if in_head else rows.append)(current)
                current = None
            elif t.type == "inline" and current is not None:
                current.append(t.content)
            i += 1
        tables.append((tok.map[0], tok.map[1], header, rows))
    if not tables:
        return text
    lines = text.split("\n")
    for first, last, header, rows in reversed(tables):
        rendered = "\n\n".join(render_rows(header, rows))
        lines[first:last] = [rendered]
    return "\n".join(lines)


def html_table_lines(table) -> list[str]:
    """Rendered rows of a BeautifulSoup <table>: the header is the <th> row (or <thead>), if any."""
    header: list[str] = []
    rows: list[list[str]] = []
    for tr in table.find_all("tr"):
        if tr.find_parent("table") is not table:
            continue  # a row of a nested table is rendered with that table
        cells = tr.find_all(["th", "td"], recursive=False)
        texts = [c.get_text(" ", strip=True) for c in cells]
        if not header and not rows and cells and (all(c.name == "th" for c in cells) or tr.find_parent("thead")):
            header = texts
        else:
            rows.append(texts)
    return render_rows(header, rows)


def row_sections(header: list[str], rows: list[list[str]], name: str | None = None) -> list[tuple[str, str]]:
    """(section, rendered rows) for every ROWS_PER_BLOCK rows of a sheet: section is name when it holds them all,
    else "name, rows 51-100" (or "rows 51-100" without a name)."""
    out = []
    for first in range(0, len(rows), ROWS_PER_BLOCK):
        lines = render_rows(header, rows[first : first + ROWS_PER_BLOCK])
        span = f"rows {first + 1}-{min(first + ROWS_PER_BLOCK, len(rows))}"
        section = span if name is None else name if len(rows) <= ROWS_PER_BLOCK else f"{name}, {span}"
        if lines:
            out.append((section, "\n\n".join(lines)))
    return out
