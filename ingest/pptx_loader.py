"""Slide decks (.pptx, python-pptx): each slide a section named by its number and title; its text boxes in
order, tables one line per row that keeps its header, and the speaker notes after them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.ooxml import checked_archive
from ingest.parsed import LoadError, ParsedText, joined
from ingest.tables import render_rows


def load_pptx(path: Path, data: bytes) -> ParsedText:
    """ParsedText of a .pptx file's bytes; LoadError for an unreadable deck or one without text."""
    from pptx import Presentation

    try:
        deck = Presentation(checked_archive(path, data))
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - python-pptx raises many types for a damaged deck
        raise LoadError(path, f"unreadable slide deck ({type(exc).__name__}: {exc})") from exc
    sections: list[tuple[str, str]] = []
    deck_title = ""
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join((title_shape.text_frame.text if title_shape is not None else "").split())
        deck_title = deck_title or title
        pieces = [piece for shape in slide.shapes if shape is not title_shape for piece in _shape_text(shape)]
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                pieces.append("Notes: " + notes.text.strip())
        slide_text = "\n\n".join(p for p in ([title] if title else []) + pieces if p.strip())
        sections.append((f"Slide {number}" + (f": {title}" if title else ""), slide_text))
    text, blocks = joined(sections)
    if not blocks:
        raise LoadError(path, "no slide holds text")
    return ParsedText(title=deck_title or path.stem.replace("-", " "), kind="pptx", text=text, blocks=blocks)


def _shape_text(shape: Any) -> list[str]:
    """The text of one shape: paragraphs of a text box, rows of a table, the shapes of a group, in order."""
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        return render_rows(rows[0], rows[1:]) if len(rows) > 1 else [" | ".join(rows[0])] if rows else []
    if shape.shape_type is not None and getattr(shape, "shapes", None) is not None:
        return [piece for inner in shape.shapes for piece in _shape_text(inner)]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = "\n".join(p.text.strip() for p in shape.text_frame.paragraphs if p.text.strip())
        return [text] if text else []
    return []
