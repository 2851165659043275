"""Outlook .msg files for the tests, written with extract-msg's own OLE writer: a real compound file with the
MAPI property streams Outlook writes (no library writes whole .msg files, and none is committed)."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path
from typing import Sequence

SENT = datetime.datetime(2026, 3, 3, 10, 2, tzinfo=datetime.timezone.utc)


def write_msg(
    path: Path,
    subject: str,
    sender: str,
    body: str,
    attachments: Sequence[tuple[str, bytes]] = (),
    sent: datetime.datetime = SENT,
) -> Path:
    """An IPM.Note with subject, sender, plain body, delivery time (PT_SYSTIME) and attachments (name, bytes)
    stored by value (PR_ATTACH_METHOD 1)."""
    from extract_msg import OleWriter

    def text(value: str) -> bytes:
        return value.encode("utf-16-le")

    filetime = int((sent - datetime.datetime(1601, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds() * 10**7)
    # The top-level property stream: 8 reserved bytes, next recipient id, next attachment id, recipient and
    # attachment counts, 8 reserved; then 16-byte entries (tag, flags, value).
    header = b"\0" * 8 + struct.pack("<IIII", 0, len(attachments), 0, len(attachments)) + b"\0" * 8
    times = b"".join(struct.pack("<IIQ", tag, 6, filetime) for tag in (0x0E060040, 0x00390040))
    writer = OleWriter()
    writer.addEntry("__properties_version1.0", header + times)
    for tag, value in (("001A001F", "IPM.Note"), ("0037001F", subject), ("0C1A001F", sender), ("1000001F", body)):
        writer.addEntry(f"__substg1.0_{tag}", text(value))
    writer.addEntry("__nameid_version1.0", storage=True)  # named properties: empty, but present as Outlook writes
    for stream in ("00020102", "00030102", "00040102"):
        writer.addEntry(f"__nameid_version1.0/__substg1.0_{stream}", b"")
    for n, (name, data) in enumerate(attachments):
        folder = f"__attach_version1.0_#{n:08X}"
        writer.addEntry(folder, storage=True)
        writer.addEntry(f"{folder}/__properties_version1.0", b"\0" * 8 + struct.pack("<IIQ", 0x37050003, 6, 1))
        writer.addEntry(f"{folder}/__substg1.0_3707001F", text(name))
        writer.addEntry(f"{folder}/__substg1.0_37010102", data)
    writer.write(str(path))
    return path
