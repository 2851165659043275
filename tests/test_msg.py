"""Outlook .msg e-mail (written by tests/outlook.py), read like an .eml: subject, from, date, body, quoted reply
left out."""

from __future__ import annotations

import pytest

from ingest import LoadError, check_upload, load
from kb import DocumentFilter, KnowledgeBase
from tests.outlook import SENT, write_msg

BODY = (
    "Hi team,\n\nA duplicated invoice is refunded within 5 working days of the customer's request.\n\n"
    "On Mon, 2 Mar 2026 at 09:00, Ana <ana@example.com> wrote:\n> Refunds take 30 days, right?\n> Thanks\n"
)


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
