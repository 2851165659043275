"""CSV: one paragraph per row that keeps its header ("Plan: Team | Price: 300"), like tables in documents.

The delimiter (comma, semicolon, tab or pipe) is sniffed from the first lines; the first row is the header.
A row can then be found and quoted alone, and a citation names its row number.

    >>> load_csv(Path("plans.csv"), "Plan,Price\\nTeam,300\\n").text
    'Plan: Team | Price: 300'
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ingest.parsed import LoadError, ParsedText, joined
from ingest.tables import row_sections

DELIMITERS = ",;\t|"
MAX_FIELD_CHARS = 1_000_000  # one cell; csv's own limit (131,072) refuses real exports with long notes


def load_csv(path: Path, text: str, warnings: tuple[str, ...] = ()) -> ParsedText:
    """ParsedText of a decoded CSV file; LoadError for a file with no header or no data rows."""
    rows = _rows(path, text.lstrip("\ufeff"))
    header, body = rows[0], [r for r in rows[1:] if any(c.strip() for c in r)]
    if not body:
        raise LoadError(path, "no data rows under the header")
    text, blocks = joined(row_sections(header, body))
    if not blocks:
        raise LoadError(path, "no text content")
    title = path.stem.replace("-", " ").replace("_", " ")
    return ParsedText(title=title, kind="csv", text=text, blocks=blocks, warnings=warnings)


def _rows(path: Path, text: str) -> list[list[str]]:
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:
        dialect = csv.excel  # one column, or nothing to tell from: plain commas
    limit = csv.field_size_limit()
    csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), dialect) if row]
    except csv.Error as exc:
        raise LoadError(path, f"unreadable CSV ({exc})") from exc
    finally:
        csv.field_size_limit(limit)
    if not rows:
        raise LoadError(path, "empty CSV")
    return rows
