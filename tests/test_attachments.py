"""E-mail attachments as documents of their own: "<message>#<attachment>", parsed by their own type, removed
with their message or when it no longer carries them."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest import IngestConfig, ingest
from ingest.attachments import MAX_ATTACHMENTS, attachments
from kb import KnowledgeBase
from retriever import make_retriever
from tests.outlook import write_msg

PLANS = "Plan,Seats,Price\nStarter,1,$15\nTeam,5,$39\nBusiness,25,$89\n"
NOTES = "# Escalation notes\n\nA Sev-1 ticket is escalated to the on-call engineer within 15 minutes.\n"


def eml(path: Path, parts: list[tuple[str, bytes, str]], body: str = "The tables are attached.") -> Path:
    message = EmailMessage()
    message["From"], message["Subject"], message["Date"] = "ana@example.com", "Plans", "Tue, 03 Mar 2026 10:02:00 +0000"
    message.set_content(body)
    for name, data, kind in parts:
        maintype, subtype = kind.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    path.write_bytes(bytes(message))
    return path


def test_an_eml_yields_its_readable_attachments_with_safe_unique_names(tmp_path):
    path = eml(
        tmp_path / "m.eml",
        [
            ("plans.csv", PLANS.encode(), "text/csv"),
            ("../../etc/notes.md", NOTES.encode(), "text/markdown"),
            ("logo.png", b"\x89PNG....", "image/png"),  # not a type a sync reads
            ("plans.csv", b"Plan,Seats\nTeam,6\n", "text/csv"),
        ],
    )
    found, warnings = attachments(path, path.read_bytes(), 10**6)
    assert [a.name for a in found] == ["plans.csv", "notes.md", "plans-2.csv"] and not warnings
    assert found[0].data == PLANS.encode()


def test_limits_on_count_and_size_are_named(tmp_path):
    many = [(f"n{i}.txt", b"note %d" % i, "text/plain") for i in range(MAX_ATTACHMENTS + 3)]
    path = eml(tmp_path / "many.eml", many + [("big.txt", b"x" * 2000, "text/plain")])
    found, warnings = attachments(path, path.read_bytes(), 1000)
    assert len(found) == MAX_ATTACHMENTS
    assert any(f"more than {MAX_ATTACHMENTS} attachments" in w for w in warnings)


def test_an_outlook_message_yields_its_attachments(tmp_path):
    path = write_msg(tmp_path / "m.msg", "Plans", "Ana", "See attached.", [("plans.csv", PLANS.encode())])
    found, _ = attachments(path, path.read_bytes(), 10**6)
    assert [(a.name, a.data) for a in found] == [("plans.csv", PLANS.encode())]


@pytest.mark.slow
def test_attachments_sync_as_documents_and_go_with_their_message(embedder, tmp_path):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    eml(docs / "plans.eml", [("plans.csv", PLANS.encode(), "text/csv"), ("notes.md", NOTES.encode(), "text/markdown")])
    write_msg(docs / "memo.msg", "Memo", "Ana", "Notes attached.", [("sev1.txt", b"Sev-1 pages go out within 5 minutes.")])
    config = IngestConfig(mirror=True)
    first = ingest(kb_dir, [docs], config, embedder=embedder)
    assert set(first.added) == {"plans.eml", "plans.eml#plans.csv", "plans.eml#notes.md", "memo.msg", "memo.msg#sev1.txt"}
    kb = KnowledgeBase(kb_dir)
    table = kb.document("plans.eml#plans.csv")
    assert (table.kind, table.name, Path(table.path).name) == ("csv", "plans.eml#plans.csv", "plans.eml")
    hit = make_retriever("hopfield", kb, embedder).search("how many seats does the Team plan include").hits[0]
    assert hit.chunk.doc_source == "plans.eml#plans.csv" and "Team" in hit.chunk.text

    # The message now carries only the table: the notes go, the table is unchanged (no re-embedding).
    eml(docs / "plans.eml", [("plans.csv", PLANS.encode(), "text/csv")], body="Only the table now.")
    second = ingest(kb_dir, [docs], config, embedder=embedder)
    assert second.removed == ("plans.eml#notes.md",) and "plans.eml#plans.csv" in second.unchanged
    assert second.updated == ("plans.eml",)

    (docs / "memo.msg").unlink()  # a removed message takes its attachments with it
    third = ingest(kb_dir, [docs], config, embedder=embedder)
    assert set(third.removed) == {"memo.msg", "memo.msg#sev1.txt"}
