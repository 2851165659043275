"""Word (.docx) files: headings become sections, list items keep a bullet, tables become one line per row
that keeps its header (ingest.tables), in reading order. Text is taken from the document body's w:t runs:
tracked deletions (w:delText) and comments (a separate part of the file) are never ingested; tracked
insertions are, as Word shows them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ingest.parsed import Block, LoadError, ParsedText
from ingest.tables import render_rows


def load_docx(path: Path, data: bytes) -> ParsedText:
    """ParsedText of a .docx file's body: one Block per heading's section (the first, before any heading, has
    none); the title is the document's core title, its first Title or Heading 1, or the file name."""
    import docx
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(path, f"not a readable Word document ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - python-docx raises its own and lxml's errors for damaged parts
        raise LoadError(path, f"not a readable Word document ({type(exc).__name__})") from None
    pieces: list[tuple[str, str | None, bool]] = []  # (text, section it belongs to, starts a section)
    section: str | None = None
    title = (document.core_properties.title or "").strip()
    for child in document.element.body.iterchildren():
        if child.tag == qn("w:p"):
            text = "".join(t.text or "" for t in child.iter(qn("w:t"))).strip()
            if not text:
                continue
            paragraph_style = Paragraph(child, document).style
            style = ((paragraph_style.name if paragraph_style is not None else None) or "").lower()
            if style == "title" or style.startswith("heading"):
                if not title and (style == "title" or style == "heading 1"):
                    title = text
                section = text
                pieces.append((text, section, True))
            elif style.startswith("list") or child.find(f"{qn('w:pPr')}/{qn('w:numPr')}") is not None:
                pieces.append(("- " + text, section, False))
            else:
                pieces.append((text, section, False))
        elif child.tag == qn("w:tbl"):
            rows = [[cell.text for cell in row.cells] for row in Table(child, document).rows]
            if rows:
                lines = render_rows(rows[0], rows[1:]) if len(rows) > 1 else render_rows([], rows)
                if lines:
                    pieces.append(("\n".join(lines), section, False))
    if not any(not heading for _, _, heading in pieces):
        raise LoadError(path, "no text content")
    text, blocks, start, current = "", [], 0, None
    for body, name, heading in pieces:
        if heading and text:
            blocks.append(Block(start, len(text), section=current))
            start = len(text)
        current = name
        text += body + "\n\n"
    blocks.append(Block(start, len(text), section=current))
    # A heading straight above another heading is a block of a few words: its sub-sections carry it.
    kept = tuple(b for b in blocks if "\n\n" in text[b.start : b.end].strip())
    return ParsedText(title=title or path.stem.replace("-", " "), kind="docx", text=text, blocks=kept or tuple(blocks))
