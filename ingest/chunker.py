"""Token-aware chunking: paragraphs, then sentences, then token windows.

Sizes are in cl100k_base tokens. The defaults (180 tokens, 30 overlap) keep a
chunk plus its heading line under the 256 wordpiece tokens the embedding model
reads. Chunks never cross a block (a PDF page or a Markdown/HTML section), so
each cites one page or section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.loaders import ParsedText
from ingest.tokens import cl100k
from kb import KBError, NewChunk

PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+|\n")


@dataclass(frozen=True)
class ChunkConfig:
    """size and overlap in cl100k tokens; min_tokens drops shards such as a bare heading."""

    size: int = 180
    overlap: int = 30
    min_tokens: int = 4

    def __post_init__(self) -> None:
        if self.size < 16:
            raise KBError(f"chunk size must be at least 16 tokens, not {self.size}")
        if not 0 <= self.overlap < self.size // 2:
            raise KBError(f"chunk overlap must be between 0 and half the size ({self.size // 2}), not {self.overlap}")


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


def _spans(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-blank pieces of text[start:end] between matches of pattern, as absolute spans."""
    out, pos = [], start
    for m in pattern.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    trimmed = []
    for a, b in out:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        tail = len(piece.rstrip())
        if tail > lead:
            trimmed.append((a + lead, a + tail))
    return trimmed


def _token_windows(text: str, start: int, end: int, size: int) -> list[_Unit]:
    enc = cl100k()
    tokens = enc.encode_ordinary(text[start:end])
    # Character offset of every token in the decoded piece (equal to the source for valid text).
    _, offsets = enc.decode_with_offsets(tokens)
    units = []
    for i in range(0, len(tokens), size):
        n = min(size, len(tokens) - i)
        a = start + offsets[i]
        b = start + offsets[i + n] if i + n < len(offsets) else end
        units.append(_Unit(a, b, n))
    return units


def _units(text: str, start: int, end: int, size: int) -> list[_Unit]:
    """Pieces of at most size tokens: whole paragraphs where they fit, else sentences, else windows."""
    enc = cl100k()
    units: list[_Unit] = []
    for pa, pb in _spans(text, start, end, PARAGRAPH_BREAK):
        n = len(enc.encode_ordinary(text[pa:pb]))
        if n <= size:
            units.append(_Unit(pa, pb, n))
            continue
        for sa, sb in _spans(text, pa, pb, SENTENCE_END):
            m = len(enc.encode_ordinary(text[sa:sb]))
            units.extend([_Unit(sa, sb, m)] if m <= size else _token_windows(text, sa, sb, size))
    return units


def chunk(parsed: ParsedText, config: ChunkConfig = ChunkConfig()) -> list[NewChunk]:
    """Split a parsed document into chunks; spans point into parsed.text."""
    text = parsed.text
    chunks: list[NewChunk] = []
    for block in parsed.blocks:
        units = _units(text, block.start, block.end, config.size)
        i = 0
        while i < len(units):
            total, j = 0, i
            while j < len(units) and total + units[j].tokens <= config.size:
                total += units[j].tokens
                j += 1
            j = max(j, i + 1)
            a, b = units[i].start, units[j - 1].end
            if total >= config.min_tokens or not chunks:
                chunks.append(
                    NewChunk(
                        text=text[a:b],
                        char_start=a,
                        char_end=b,
                        n_tokens=total,
                        page=block.page,
                        section=block.section,
                        ocr_confidence=block.ocr_confidence,
                    )
                )
            if j >= len(units):
                break
            # Start the next chunk with trailing units of this one, up to overlap tokens.
            back, k = 0, j
            while k - 1 > i and back + units[k - 1].tokens <= config.overlap:
                back += units[k - 1].tokens
                k -= 1
            i = k
    return chunks
