"""What a loader returns: the parsed text with its blocks, or a LoadError naming the file and the reason."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable


class LoadError(Exception):
    """A file that cannot be ingested; str() is one line naming the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Block:
    """A span of ParsedText.text with its page (1-based, PDFs) or section heading; ocr_confidence (0-1)
    when the page was read by OCR."""

    start: int
    end: int
    page: int | None = None
    section: str | None = None
    ocr_confidence: float | None = None


@dataclass(frozen=True)
class ParsedText:
    """title and section names are capped at MAX_LABEL characters; encoding: how text files were decoded.
    url, updated_at: an exported page's address (relative to the wiki's base URL when it has none) and
    last-updated time (ISO 8601); content_hash: set when the file's bytes change without its content
    (an export stamps its time on every page), else the bytes' hash is used."""

    title: str
    kind: str
    text: str
    blocks: tuple[Block, ...]
    warnings: tuple[str, ...] = ()
    encoding: str = ""
    url: str = ""
    updated_at: str = ""
    content_hash: str = ""


def first_line(text: str) -> str:
    """The first non-blank line of text, less Markdown heading marks, at most 120 characters: a title of last resort."""
    for line in text.splitlines():
        line = line.strip(" #\t")
        if line:
            return line[:120]
    return ""


def joined(sections: Iterable[tuple[str | None, str]]) -> tuple[str, tuple[Block, ...]]:
    """(text, blocks) of (section name, text) pairs joined by blank lines, one block each; empty texts left out.

    >>> joined([("Plans", "Plan: Team"), ("Regions", "Region: EU")])[1][1]
    Block(start=12, end=22, page=None, section='Regions', ocr_confidence=None)
    """
    return joined_blocks((Block(0, 0, section=section), text) for section, text in sections)


def joined_blocks(pieces: Iterable[tuple[Block, str]]) -> tuple[str, tuple[Block, ...]]:
    """(text, blocks) of (block, text) pieces joined by blank lines: each block placed at its text's span (the
    start and end it comes with are ignored; its page, section and OCR confidence kept); empty texts left out."""
    parts: list[str] = []
    blocks: list[Block] = []
    offset = 0
    for block, text in pieces:
        if not text.strip():
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(text)
        blocks.append(replace(block, start=offset, end=offset + len(text)))
        offset += len(text)
    return "".join(parts), tuple(blocks)
