"""E-mail attachments (.eml and Outlook .msg) as documents of their own.

An attachment of a type a sync reads (ATTACHMENT_TYPES) becomes a document keyed
"<message key>#<attachment name>" ("escalations/2026-03.eml#refund-table.xlsx"), named the same, parsed
by its own extension under the parse budget like any file. The scan (ingest.sources) lists them beside
their message, as it lists a Zendesk export's articles: a changed message re-hashes its attachments (only
changed ones are re-embedded), an attachment no longer in its message is removed, and a removed message
takes its attachments with it. Names lose any folder part and control characters; a second attachment of
the same name gets "-2" before its extension. Limits: MAX_ATTACHMENTS per message, MAX_PARTS MIME parts
walked, the run's max_bytes per attachment; past them a warning names the message. Forwarded messages
(.eml / .msg attached) are not opened: one level only.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ingest.parsed import LoadError

MESSAGE_TYPES = (".eml", ".msg")
ATTACHMENT_TYPES = (".pdf", ".docx", ".txt", ".md", ".markdown", ".html", ".htm", ".csv", ".xlsx", ".pptx")
MAX_ATTACHMENTS = 20
MAX_PARTS = 500


@dataclass(frozen=True)
class Attachment:
    """One attachment a sync reads: its document name (unique within its message) and bytes."""

    name: str
    data: bytes


def is_message(path: Path) -> bool:
    return path.suffix.lower() in MESSAGE_TYPES


def attachments(path: Path, data: bytes, max_bytes: int) -> tuple[list[Attachment], list[str]]:
    """(the attachments of a message's bytes that a sync reads, in order; warnings naming what limits left
    out). LoadError when the message cannot be opened to look (too deeply nested, not a message)."""
    raw = _msg_parts(path, data) if path.suffix.lower() == ".msg" else _eml_parts(path, data)
    out: list[Attachment] = []
    taken: set[str] = set()
    too_big: list[str] = []
    warnings: list[str] = []
    for filename, payload in raw:
        name = _clean(filename)
        if PurePosixPath(name).suffix.lower() not in ATTACHMENT_TYPES or not payload:
            continue
        if len(payload) > max_bytes:
            too_big.append(name)
            continue
        if len(out) == MAX_ATTACHMENTS:
            warnings.append(f"{path}: more than {MAX_ATTACHMENTS} attachments; the first {MAX_ATTACHMENTS} were read")
            break
        name = _unique(name, taken)
        taken.add(name)
        out.append(Attachment(name, payload))
    warnings += [f"{path}: attachment {n} is over the {max_bytes:,}-byte size limit; skipped" for n in too_big]
    return out, warnings


def attachment(path: Path, data: bytes, name: str, max_bytes: int) -> bytes:
    """The bytes of the attachment called name in the message; LoadError when it is no longer there."""
    for found in attachments(path, data, max_bytes)[0]:
        if found.name == name:
            return found.data
    raise LoadError(f"{path}#{name}", "the attachment is no longer in its message")


def _eml_parts(path: Path, data: bytes) -> list[tuple[str, bytes]]:
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
        out = []
        for n, part in enumerate(message.walk()):
            if n >= MAX_PARTS:
                break
            filename = part.get_filename() if not part.is_multipart() else None
            if filename:
                payload = part.get_payload(decode=True)
                out.append((str(filename), payload if isinstance(payload, bytes) else b""))
        return out
    except RecursionError:
        raise LoadError(path, "MIME parts nested too deeply to look for attachments") from None
    except (LookupError, ValueError, TypeError) as exc:
        raise LoadError(path, f"attachments unreadable ({type(exc).__name__}: {exc})") from None


def _msg_parts(path: Path, data: bytes) -> list[tuple[str, bytes]]:
    from ingest.msg_loader import open_msg

    message = open_msg(path, data)
    try:
        out = []
        for part in list(message.attachments)[:MAX_PARTS]:
            filename = getattr(part, "longFilename", None) or getattr(part, "shortFilename", None) or ""
            payload = getattr(part, "data", None)
            if isinstance(payload, bytes):  # an embedded message is an object, not bytes: not opened
                out.append((str(filename), payload))
        return out
    finally:
        message.close()


def _clean(filename: str) -> str:
    """The attachment's own name: no folder part, no control characters, no '#' (it separates the key's parts)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch if ch.isprintable() and ch != "#" else "_" for ch in base).strip(" .")
    return base[:200] or "attachment"


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    n = 2
    while f"{stem}-{n}{suffix}" in taken:
        n += 1
    return f"{stem}-{n}{suffix}"
