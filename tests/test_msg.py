"""Outlook .msg e-mail: written here with extract-msg's own OLE writer (a real compound file, MAPI property
streams as Outlook names them), then read like an .eml: subject, from, date, body, quoted reply left out."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import pytest

from ingest import LoadError, check_upload, load
from kb import DocumentFilter, KnowledgeBase

SENT = datetime.datetime(2026, 3, 3, 10, 2, tzinfo=datetime.timezone.utc)
BODY = (
    "Hi team,\n\nA duplicated invoice is refunded within 5 working days of the customer's request.\n\n"
    "On Mon, 2 Mar 2026 at 09:00, Ana <ana@example.com> wrote:\n> Refunds take 30 days, right?\n> Thanks\n"
)


def write_msg(path: Path, subject: str, sender: str, body: str, sent: datetime.datetime = SENT) -> Path:
    """A minimal Outlook message: IPM.Note with subject, sender, plain body and delivery time (PT_SYSTIME)."""
    from extract_msg import OleWriter

    filetime = int((sent - datetime.datetime(1601, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds() * 10**7)
    header = b"\0" * 8 + struct.pack("<IIII", 0, 0, 0, 0) + b"\0" * 8  # top-level message: 32 bytes
    times = b"".join(struct.pack("<IIQ", tag, 6, filetime) for tag in (0x0E060040, 0x00390040))
    writer = OleWriter()
    writer.addEntry("__properties_version1.0", header + times)
    for tag, value in (("001A001F", "IPM.Note"), ("0037001F", subject), ("0C1A001F", sender), ("1000001F", body)):
        writer.addEntry(f"__substg1.0_{tag}", value.encode("utf-16-le"))
    writer.write(str(path))
    return path


def test_an_outlook_message_reads_like_an_eml(tmp_path):
    path = write_msg(tmp_path / "escalation.msg", "Duplicated invoice refunds", "Ana Silva", BODY)
    parsed = load(path, path.read_bytes())
    assert (parsed.kind, parsed.title, parsed.updated_at) == ("msg", "Duplicated invoice refunds", SENT.isoformat())
    assert parsed.text.startswith("From: Ana Silva\nDate: Tue, 03 Mar 2026 10:02:00 +0000\nSubject: Duplicated invoice")
    assert "within 5 working days" in parsed.text
    assert "30 days" not in parsed.text and "wrote:" not in parsed.text  # the quoted reply is not repeated


def test_a_file_that_is_not_an_outlook_message_fails_with_a_reason(tmp_path):
    path = tmp_path / "notes.msg"
    path.write_bytes(b"just some words, not an OLE file\n")
    with pytest.raises(LoadError, match="not a readable Outlook message"):
        load(path, path.read_bytes())


def test_msg_is_an_upload_type(tmp_path):
    assert check_upload(tmp_path, "mail.msg", b"x" * 10).name == "mail.msg"


@pytest.mark.slow
def test_a_synced_msg_is_searchable_and_filtered_by_kind(embedder, tmp_path):
    from ingest import IngestConfig, ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    write_msg(docs / "escalation.msg", "Duplicated invoice refunds", "Ana Silva", BODY)
    report = ingest(tmp_path / "kb", [docs], IngestConfig(mirror=True), embedder=embedder)
    assert report.added == ("escalation.msg",) and not report.failed
    found = KnowledgeBase(tmp_path / "kb").documents(DocumentFilter(kinds=("msg",)))
    assert [(d.name, d.kind) for d in found] == [("escalation.msg", "msg")]
