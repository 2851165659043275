"""Outlook e-mail (.msg, an OLE compound file, read with extract-msg): the same text as an .eml's.

Subject, sender and delivery date above the body (plain text preferred, else the HTML body read as HTML);
quoted replies left out (ingest.email_loader.message_text and without_quoted_reply: one place for both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ingest.email_loader import message_text, without_quoted_reply
from ingest.parsed import LoadError, ParsedText


def open_msg(path: Path, data: bytes):
    """The extract_msg message of data; LoadError naming why it is not one."""
    import extract_msg

    try:
        message = extract_msg.openMsg(data)
    except Exception as exc:  # noqa: BLE001 - olefile and extract-msg raise many types on foreign bytes
        raise LoadError(path, f"not a readable Outlook message ({type(exc).__name__}: {exc})") from None
    if not hasattr(message, "body"):
        message.close()
        raise LoadError(path, f"an Outlook file that is not an e-mail ({type(message).__name__})")
    return message


def load_msg(path: Path, data: bytes, html_text: Callable[[Path, str], str]) -> ParsedText:
    """ParsedText of an Outlook .msg file's bytes; html_text(path, html) turns an HTML body into text."""
    message = open_msg(path, data)
    try:
        body = message.body or ""
        if not body.strip() and message.htmlBody:
            body = html_text(path, message.htmlBody.decode("utf-8", "replace"))
        sent = message.date
        heads = {
            "From": " ".join(str(message.sender or "").split()),
            "Date": sent.strftime("%a, %d %b %Y %H:%M:%S %z").strip() if sent else "",
            "Subject": " ".join(str(message.subject or "").split()),
        }
        return message_text(path, heads, without_quoted_reply(body), sent.isoformat() if sent else "", "msg")
    finally:
        message.close()
