"""Spreadsheet rows and e-mails as documents: each CSV row keeps its header, each message its subject, sender
and date without the reply it quotes; both sync, search and filter by kind like every other type."""

from __future__ import annotations

import json
import typing

import pytest
from click.testing import CliRunner

from api.schemas import Filters
from ingest import KINDS, SUPPORTED, LoadError, load
from kb import DocumentFilter, KnowledgeBase
from ui.cli import main as kb_cli

PLANS = "Plan;Seats;Price per month\nTeam;10;300 EUR\nBusiness;50;1,200 EUR\n\nEnterprise;unlimited;on request\n"

EMAIL = (
    "From: Ana Costa <ana@example.com>\r\n"
    "To: support@example.com\r\n"
    "Date: Tue, 3 Mar 2026 10:02:00 +0000\r\n"
    "Subject: Escalation: refund for a duplicated invoice\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: text/plain; charset="utf-8"\r\n'
    "\r\n"
    "Duplicated invoices are refunded in full within 5 working days; escalate to billing if it takes longer.\r\n"
    "\r\n"
    "On Mon, 2 Mar 2026 at 09:00, Bob <bob@example.com> wrote:\r\n"
    "> Customer was charged twice for March. What do we promise?\r\n"
)

HTML_EMAIL = (
    "From: billing@example.com\r\nSubject: Macro: card declined\r\nMIME-Version: 1.0\r\n"
    'Content-Type: text/html; charset="utf-8"\r\n\r\n'
    "<html><body><nav>Menu</nav><p>Ask the customer to <b>update the card</b> under Billing.</p></body></html>\r\n"
)


def test_csv_rows_keep_their_header_and_blocks_name_their_rows(tmp_path):
    path = tmp_path / "plan-matrix.csv"
    path.write_text(PLANS)
    parsed = load(path, path.read_bytes())
    assert parsed.kind == "csv" and parsed.title == "plan matrix"
    lines = parsed.text.split("\n\n")
    assert lines == [
        "Plan: Team | Seats: 10 | Price per month: 300 EUR",
        "Plan: Business | Seats: 50 | Price per month: 1,200 EUR",
        "Plan: Enterprise | Seats: unlimited | Price per month: on request",
    ]
    assert [b.section for b in parsed.blocks] == ["rows 1-3"]


def test_csv_blocks_split_every_fifty_rows(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("sku,price\n" + "".join(f"A{i},{i}\n" for i in range(120)))
    parsed = load(path, path.read_bytes())
    assert [b.section for b in parsed.blocks] == ["rows 1-50", "rows 51-100", "rows 101-120"]
    assert parsed.text[parsed.blocks[1].start : parsed.blocks[1].end].startswith("sku: A50 | price: 50")


@pytest.mark.parametrize(
    ("content", "reason"),
    [("Plan,Price\n", "no data rows"), ('a,b\n"unclosed,1\n', "")],
)
def test_bad_csv_raises_load_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    try:
        parsed = load(path, path.read_bytes())
    except LoadError as exc:
        assert "bad.csv" in str(exc) and reason in exc.reason
    else:  # csv reads an unclosed quote to the end of the file: one row, which must keep its header
        assert parsed.text.startswith("a: unclosed")


def test_email_keeps_subject_sender_date_and_drops_the_quoted_reply(tmp_path):
    path = tmp_path / "escalation.eml"
    path.write_bytes(EMAIL.encode())
    parsed = load(path, path.read_bytes())
    assert parsed.kind == "email" and parsed.title == "Escalation: refund for a duplicated invoice"
    assert parsed.text.startswith("From: Ana Costa <ana@example.com>\nDate: Tue, 03 Mar 2026 10:02:00 +0000\nSubject: ")
    assert parsed.updated_at == "2026-03-03T10:02:00+00:00"
    assert "refunded in full within 5 working days" in parsed.text
    assert "charged twice" not in parsed.text and "wrote:" not in parsed.text


def test_html_only_email_is_read_as_visible_text(tmp_path):
    path = tmp_path / "macro.eml"
    path.write_bytes(HTML_EMAIL.encode())
    parsed = load(path, path.read_bytes())
    assert "update the card under Billing" in " ".join(parsed.text.split())
    assert "<b>" not in parsed.text


def test_a_file_that_is_not_an_email_fails_with_a_reason(tmp_path):
    path = tmp_path / "notes.eml"
    path.write_bytes(b"just some words\nwith no headers at all\n")
    with pytest.raises(LoadError, match="notes.eml"):
        load(path, path.read_bytes())


def test_every_kind_a_sync_reads_is_a_kind_the_api_filters_on():
    field = Filters.model_fields["kinds"].annotation
    literal = next(a for a in typing.get_args(field) if typing.get_args(a))  # list[Literal[...]]
    assert set(typing.get_args(typing.get_args(literal)[0])) == set(KINDS) == set(SUPPORTED.values()) | {"web"}


@pytest.mark.slow
def test_csv_and_email_sync_search_and_filter_by_kind(tmp_path):
    docs, kb_dir = tmp_path / "docs", tmp_path / "kb"
    docs.mkdir()
    (docs / "plan-matrix.csv").write_text(PLANS)
    (docs / "escalation.eml").write_bytes(EMAIL.encode())
    res = CliRunner().invoke(kb_cli, ["sync", str(docs), "--kb-dir", str(kb_dir), "--json"])
    assert res.exit_code == 0, res.output
    assert sorted(json.loads(res.stdout)["added"]) == ["escalation.eml", "plan-matrix.csv"]
    found = json.loads(
        CliRunner()
        .invoke(kb_cli, ["search", "how many seats does the Business plan have", "--kb-dir", str(kb_dir), "--json"])
        .stdout
    )
    top = found["hits"][0]
    assert top["name"] == "plan-matrix.csv" and "Business | Seats: 50" in top["text"]
    ans = json.loads(
        CliRunner()
        .invoke(kb_cli, ["ask", "how fast is a duplicated invoice refunded", "--kb-dir", str(kb_dir), "--json"])
        .stdout
    )
    assert ans["citations"] and ans["citations"][0]["name"] == "escalation.eml"
    assert "5 working days" in ans["answer"]
    emails = KnowledgeBase(kb_dir).documents(DocumentFilter(kinds=("email",)))
    assert [(d.name, d.kind, d.updated_at) for d in emails] == [("escalation.eml", "email", "2026-03-03T10:02:00+00:00")]
