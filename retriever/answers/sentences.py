"""Sentence spans inside chunk text, and a typo-tolerant lexical overlap, for the extractive reader.

Chunk text is raw document text: Markdown with headings, lists and tables, or PDF
text wrapped at the page width. Spans are character offsets into the text given,
so a quoted sentence is always text[start:end], verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

# A line that starts a new block: heading, list item, numbered item, quote, table row.
_BLOCK_START = re.compile(r"^\s*(#{1,6}\s|[-*+•]\s|\d{1,3}[.)]\s|>\s?|\|)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_LEAD_MARKER = re.compile(r"^(#{1,6}\s+|[-*+•]\s+|\d{1,3}[.)]\s+|>\s*|\|\s*)")
_TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]*-{3,}[\s:|-]*\|?\s*$")
# Sentence end: . ! ? (optionally closed by a quote or bracket) then space and an upper-case start.
_SENT_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|approx|incl|no|dr|mr|mrs|ms|st|inc|ltd|co|fig|cf)\.|\b[A-Z]\.)$", re.I)
_FOOTER = re.compile(r"\bpage \d+ of \d+\b", re.I)
WORDS = re.compile(r"\w+", re.UNICODE)

# Lines shorter than this that end without punctuation, followed by a capitalised line, are
# headings in PDF text (wrapped body lines run close to the page width, ~90 characters).
_SHORT_LINE = 60

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers him
    his how i if in into is it its itself just me more most my no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their theirs them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you your yours
    customer customers get got does do can cant please need want know tell us hi hello thanks""".split()
)


# A table row as ingest.tables renders it: "Plan: Team | Requests per minute: 300".
TABLE_ROW = re.compile(r"^[^|\n]{1,80}: [^|\n]*(?: \| [^|\n]+)+$")


@dataclass(frozen=True)
class SentenceSpan:
    """text[start:end] is one candidate sentence; heading marks titles that never answer by themselves."""

    start: int
    end: int
    heading: bool = False


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, end excluding the newline."""
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, pos + len(line)))
        pos += len(line) + 1
    return out


def _blocks(text: str) -> list[tuple[int, int, bool]]:
    """Runs of lines that belong together: (start, end, is_heading)."""
    blocks: list[tuple[int, int, bool]] = []
    current: list[int] | None = None  # [start, end, heading]
    prev_line = ""
    for start, end in _lines(text):
        line = text[start:end]
        stripped = line.strip()
        if not stripped or _TABLE_RULE.match(line):
            if current:
                blocks.append((current[0], current[1], bool(current[2])))
            current = None
            prev_line = ""
            continue
        prev = prev_line.rstrip()
        new_block = (
            current is None
            or _BLOCK_START.match(line) is not None
            or bool(current[2])
            or (prev.lstrip().startswith("|"))
            or (
                len(prev) < _SHORT_LINE
                and prev[-1:] not in ".,;:!?-("
                and stripped[:1].isupper()
                and not _BLOCK_START.match(prev)
            )
        )
        if new_block:
            if current:
                blocks.append((current[0], current[1], bool(current[2])))
            current = [start, end, 1 if _HEADING.match(line) else 0]
        else:
            assert current is not None  # new_block is true whenever no block is open
            current[1] = end
        prev_line = line
    if current:
        blocks.append((current[0], current[1], bool(current[2])))
    return blocks


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span past surrounding whitespace, a leading list/heading marker and table pipes."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    marker = _LEAD_MARKER.match(text[start:end])
    if marker:
        start += marker.end()
    while end > start and (text[end - 1] == "|" or text[end - 1].isspace()):
        end -= 1
    while start < end and text[start].isspace():
        start += 1
    return start, end


def split_sentences(text: str) -> list[SentenceSpan]:
    """Sentence spans of text, in order; text[s.start:s.end] is the sentence verbatim."""
    spans: list[SentenceSpan] = []
    for b_start, b_end, heading in _blocks(text):
        block = text[b_start:b_end]
        if TABLE_ROW.match(block.strip()):
            start, end = _trim(text, b_start, b_end)
            spans.append(SentenceSpan(start, end, False))  # a row is one statement, whatever its cells hold
            continue
        cuts = [0]
        for m in _SENT_END.finditer(block):
            if _ABBREV.search(block[: m.start()]):
                continue
            cuts.append(m.end())
        cuts.append(len(block))
        for a, b in zip(cuts, cuts[1:]):
            start, end = _trim(text, b_start + a, b_start + b)
            if end > start:
                spans.append(SentenceSpan(start, end, heading))
    return spans


def is_candidate(sentence: str, heading: bool, min_words: int = 4) -> bool:
    """Sentences worth quoting: not headings, questions, list intros, page footers or fragments."""
    # "...pay with these card networks:" introduces a list; on its own it answers nothing.
    if heading or sentence.rstrip().endswith(("?", ":")) or _FOOTER.search(sentence):
        return False
    if TABLE_ROW.match(sentence):
        return True
    if "|" in sentence:
        return False  # a raw pipe-table fragment (a KB ingested before tables were rendered as rows)
    words = WORDS.findall(sentence)
    if len(words) < min_words:
        return False
    # Short unpunctuated lines are titles (PDF headings).
    return not (len(words) < 7 and sentence[-1:].isalpha())


def content_tokens(text: str) -> tuple[str, ...]:
    """Lower-cased words without stopwords: what lexical overlap compares."""
    return tuple(w for w in (t.lower() for t in WORDS.findall(text)) if w not in STOPWORDS and (len(w) > 1 or w.isdigit()))


_HOW_WORDS = frozenset("long much many often soon far".split())


def quantity_words(text: str) -> frozenset[str]:
    """The words that, after "how", ask for a quantity and name no subject: {"long"} of "How long is the refund
    window?" (the answer says "within 14 days"; an FAQ entry may repeat "how long")."""
    words = [t.lower() for t in WORDS.findall(text)]
    return frozenset(w for before, w in zip(words, words[1:]) if before == "how" and w in _HOW_WORDS)


@lru_cache(maxsize=65536)
def _similar(a: str, b: str) -> bool:
    if a == b:
        return True
    # Typos seldom hit the first letter, and words that differ there are different words
    # (iphone / phone); short words are too close to tell apart.
    if min(len(a), len(b)) < 4 or a[0] != b[0]:
        return False
    if a[:4] == b[:4] and (a.startswith(b) or b.startswith(a)):
        return True  # refund / refunds / refunded
    return SequenceMatcher(None, a, b).ratio() >= 0.8  # refnd / refund, anual / annual


def lexical_overlap(question_tokens: tuple[str, ...], sentence_tokens: tuple[str, ...]) -> float:
    """Share of the question's distinct content words (0..1) found in the sentence, allowing typos and inflection."""
    wanted = set(question_tokens)
    if not wanted:
        return 0.0
    have = set(sentence_tokens)
    hits = sum(1 for w in wanted if w in have or any(_similar(w, h) for h in have))
    return hits / len(wanted)
