"""E-mail (.eml, RFC 5322, read with the standard library): subject, from and date, then the body.

The plain-text part is preferred; an HTML-only message is read as HTML (ingest.loaders.load_html's text).
Quoted replies (lines starting with ">" and the "On ... wrote:" line above them) are left out: the message
they quote is a document of its own, and repeating it would make two passages answer the same question.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Callable

from ingest.parsed import Block, LoadError, ParsedText

# "On Tue, 3 Mar 2026 at 10:02, Ana <ana@example.com> wrote:" and its common variants.
ATTRIBUTION = re.compile(r"^\s*(On\s.{0,200}\swrote:|-----\s*Original Message\s*-----)\s*$", re.I)


def load_email(path: Path, data: bytes, html_text: Callable[[Path, str], str]) -> ParsedText:
    """ParsedText of an .eml file's bytes; html_text(path, html) turns an HTML body into text.
    LoadError when the message has no readable body."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise LoadError(path, "not an e-mail message (no headers)")
    heads = {name: _header(message, name) for name in ("From", "Date", "Subject")}
    return message_text(path, heads, _body(path, message, html_text), _sent_at(message), "email")


def message_text(path: Path, heads: dict[str, str], body: str, sent_at: str, kind: str) -> ParsedText:
    """The one way an e-mail (.eml or Outlook .msg) becomes text: its From, Date and Subject lines (heads; empty
    ones left out) above its body (quoted replies already out); the subject is the title and the section,
    sent_at (ISO 8601) the document's updated_at. LoadError for a message without a text body."""
    if not body.strip():
        raise LoadError(path, "the message has no text body")
    subject = heads.get("Subject", "")
    head = "\n".join(f"{name}: {value}" for name in ("From", "Date", "Subject") if (value := heads.get(name, "")))
    text = f"{head}\n\n{body}" if head else body
    return ParsedText(
        title=subject or path.stem,
        kind=kind,
        text=text,
        blocks=(Block(0, len(text), section=subject or None),),
        updated_at=sent_at,
    )


def _sent_at(message: EmailMessage) -> str:
    """The Date header as ISO 8601 (what exports give as updated_at), or "" when missing or unreadable."""
    try:
        return email.utils.parsedate_to_datetime(_header(message, "date")).isoformat()
    except (TypeError, ValueError, IndexError):
        return ""


def _header(message: EmailMessage, name: str) -> str:
    try:
        return " ".join(str(message.get(name, "") or "").split())
    except (ValueError, TypeError):  # a malformed header the policy cannot parse
        return ""


def _body(path: Path, message: EmailMessage, html_text: Callable[[Path, str], str]) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError) as exc:  # an unknown charset or a broken transfer encoding
        raise LoadError(path, f"unreadable message body ({exc})") from exc
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        content = html_text(path, content)
    return without_quoted_reply(content)


def without_quoted_reply(text: str) -> str:
    """text less quoted lines ("> ...") and the attribution line that introduces them."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    while kept and (not kept[-1].strip() or ATTRIBUTION.match(kept[-1])):
        kept.pop()
    out = [line for line in kept if not ATTRIBUTION.match(line)]
    return "\n".join(out).strip()
