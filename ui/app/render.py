"""Safe rendering of document text and answers for the app.

Document text is data, never markup: everything that comes from a document, an upload
name or a question is HTML-escaped before it goes into st.html (which is not iframed),
and markdown-escaped before it goes into a label that Streamlit renders as Markdown.
A document holding <script>, <img onerror=...> or [a](javascript:...) shows those
characters literally.
"""

from __future__ import annotations

import html
import re

from kb import location_label
from ui.app.turns import SourceView, TurnView

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&\"'])")
_MARKER = re.compile(r"\[(\d+)\]")

PASSAGE_STYLE = (
    "white-space: pre-wrap; font-size: 0.92rem; line-height: 1.5; padding: 0.6rem 0.8rem; "
    "border-left: 3px solid #c9c9d4; background: rgba(127,127,127,0.06); border-radius: 4px;"
)
MARK_STYLE = "background: #ffe08a; color: #1f1f1f; padding: 0 2px; border-radius: 2px;"
CITE_STYLE = "text-decoration: none; font-weight: 600; font-size: 0.8em; vertical-align: super;"


def md_escape(text: str) -> str:
    """Text for a Markdown label (expander titles, captions): every Markdown/HTML character backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def anchor_id(turn: int, n: int) -> str:
    return f"src-{turn}-{n}"


def _cite_link(turn: int, n: int) -> str:
    return f'<a class="kb-cite" href="#{anchor_id(turn, n)}" style="{CITE_STYLE}">[{n}]</a>'


def answer_html(turn: TurnView, index: int) -> str:
    """The answer as escaped HTML whose [n] markers link to (and open) the sources below it."""
    if turn.mode == "extractive" and turn.sources:
        parts = [f"{html.escape(' '.join(s.quote.split()))} {_cite_link(index, s.n)}" for s in turn.sources]
        body = " ".join(parts)
    else:
        valid = {s.n for s in turn.sources}
        body = _MARKER.sub(
            lambda m: _cite_link(index, int(m.group(1))) if int(m.group(1)) in valid else m.group(0), html.escape(turn.text)
        )
    return f'<div class="kb-answer" style="font-size: 1rem; line-height: 1.6;">{body}</div>'


def highlight_html(text: str, start: int, end: int, anchor: str | None = None) -> str:
    """text escaped, with text[start:end] wrapped in <mark>; whitespace and line breaks kept.

    anchor: an id for the passage, the target of the answer's [n] link (see ui/app/cite.py)."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    before, quote, after = (html.escape(p) for p in (text[:start], text[start:end], text[end:]))
    id_attr = f' id="{html.escape(anchor)}"' if anchor else ""
    return (
        f'<div class="kb-passage"{id_attr} style="{PASSAGE_STYLE}">{before}'
        f'<mark class="kb-quote" style="{MARK_STYLE}">{quote}</mark>{after}</div>'
    )


def passage_html(text: str) -> str:
    """A whole passage, escaped, without a highlight."""
    return f'<div class="kb-passage" style="{PASSAGE_STYLE}">{html.escape(text)}</div>'


def citation_label(s: SourceView) -> str:
    """Expander label for source [n] (or a closest passage, n = 0): title, page/section, file and version
    (Markdown-escaped)."""
    place = location_label(s.page, s.section, s.ocr_confidence)
    prefix = f"[{s.n}] " if s.n else ""
    return md_escape(f"{prefix}{s.doc_title}" + (f" — {place}" if place else "") + f" · {s.doc_name} v{s.doc_version}")
