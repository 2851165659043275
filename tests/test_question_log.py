"""The question log (kb/question_log.py) and redaction (kb/redact.py), on a real, empty KB (fast)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from kb import KBError, KnowledgeBase, LoggedCitation, QuestionLog, QuestionLogConfig, redact

DAY = 86400.0

# (text, what it must become): one or more of each kind the log must never store.
PERSONAL = [
    ("write to john.doe+claims@example.co.uk today", "write to [email] today"),
    ("my address is a_b@mail-server.org.", "my address is [email]."),
    ("card 4111 1111 1111 1111 was charged twice", "card [card] was charged twice"),
    ("refund to 5500-0000-0000-0004 please", "refund to [card] please"),
    ("amex 378282246310005 declined", "amex [card] declined"),
    ("call me on +44 20 7946 0958", "call me on [phone]"),
    ("my number is (555) 123-4567", "my number is [phone]"),
    ("reach me at 555-123-4567.", "reach me at [phone]."),
    ("SSN 123-45-6789 on file", "SSN [id] on file"),
    ("IBAN DE89 3704 0044 0532 0130 00 for the refund", "IBAN [iban] for the refund"),
    ("account GB82WEST12345698765432", "account [iban]"),
    ("passport 123456789 expired", "passport [id] expired"),
    ("member no. 4111-1111-1111-1112 (not a card)", "member no. [id] (not a card)"),
]

# Numbers a question is about, which name nobody: they must come through unchanged.
KEPT = [
    "Is the office closed on 2024-03-15?",
    "What changed on 15.03.2024 and 03/15/2024?",
    "Why was I charged $1,299.99 instead of $999?",
    "What does section 4.2 of the policy say?",
    "Can I order 500 masks or 1,000,000 gloves?",
    "Is policy 12345678 still valid?",
    "Opening hours 09:00-17:30 on weekdays?",
    "Is version 2.10.3 supported?",
    "What happened with COVID-19 between 2020 and 2021?",
    "Does pi = 3.14159265358979 matter?",
    "Ticket #4521 for 3 people, room 12B",
]


@pytest.mark.parametrize(("text", "expected"), PERSONAL)
def test_personal_data_is_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_near_misses_are_kept(text):
    assert redact(text) == text


@pytest.fixture
def log(tmp_path) -> QuestionLog:
    return QuestionLog(KnowledgeBase(tmp_path / "kb", create=True))


def test_entries_round_trip_redacted_with_citations(log):
    assert not log.exists() and log.entries() == []
    cites = [LoggedCitation(7, "docs/a.md", 2), LoggedCitation(9, "docs/b.md", 1)]
    first = log.record("Mail a@b.com my refund", "answered", cites, asked_by="key:3", collection="hr", evidence=0.7)
    log.record("Anything on payroll?", "abstained", asked_by="session:x")
    entries = log.entries()
    assert [e.id for e in entries][0] == first and len(log) == 2
    assert entries[0].question == "Mail [email] my refund"
    assert entries[0].citations == tuple(cites) and entries[0].collection == "hr" and entries[0].evidence == 0.7
    assert entries[1].abstained and entries[1].citations == () and entries[1].asked_by == "session:x"
    assert [e.question for e in log.entries(asked_by="key:3")] == ["Mail [email] my refund"]
    assert log.entries(collections=["other"]) == []
    with sqlite3.connect(log.db.path) as con:  # what is on disk, not just what the reader returns
        stored = [r[0] for r in con.execute("SELECT question FROM question_log")]
    assert not any("a@b.com" in q for q in stored)


def test_retention_prunes_on_write_and_zero_keeps_nothing(log):
    now = 1_000 * DAY
    log.record("old question", "answered", now=now - 91 * DAY)
    log.record("recent question", "abstained", now=now - 10 * DAY)
    log.record("today", "answered", now=now)
    assert [e.question for e in log.entries()] == ["recent question", "today"]
    assert [e.question for e in log.entries(since=now - DAY)] == ["today"]
    short = QuestionLog(log.kb, QuestionLogConfig(retention_days=5))
    assert short.prune(now=now) == 1 and [e.question for e in short.entries()] == ["today"]
    none = QuestionLog(log.kb, QuestionLogConfig(retention_days=0))
    assert none.record("kept?", "answered", now=now) is None
    assert len(none) == 0


def test_zero_retention_on_a_fresh_kb_creates_nothing(tmp_path):
    log = QuestionLog(KnowledgeBase(tmp_path / "kb", create=True), QuestionLogConfig(retention_days=0))
    assert log.record("hello", "answered") is None and not log.exists()


def test_clear_errors(log):
    with pytest.raises(KBError, match="retention_days must be >= 0"):
        QuestionLogConfig(retention_days=-1)
    with pytest.raises(KBError, match="outcome must be one of answered, abstained"):
        log.record("q", "maybe")


def test_a_follow_ups_context_is_kept_redacted_and_an_older_log_gains_the_column(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    with kb.db.write() as con:  # a log written before contexts were kept
        con.executescript(
            "CREATE TABLE question_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, question TEXT NOT NULL,"
            " outcome TEXT NOT NULL, asked_by TEXT, collection TEXT, evidence REAL);"
            "CREATE TABLE question_log_citations (entry_id INTEGER NOT NULL, n INTEGER NOT NULL,"
            " chunk_id INTEGER NOT NULL, doc_source TEXT NOT NULL, doc_version INTEGER NOT NULL, PRIMARY KEY (entry_id, n));"
            f"INSERT INTO question_log (at, question, outcome) VALUES ({time.time()}, 'old one', 'answered');"
        )
    log = QuestionLog(kb)
    assert [(e.question, e.context) for e in log.entries()] == [("old one", None)]  # read before any write
    log.record("and what if I lost it?", "abstained", context="How do I reset it? mail me at a@b.com")
    log.record("standalone", "answered")
    assert [(e.question, e.context) for e in log.entries()][1:] == [
        ("and what if I lost it?", "How do I reset it? mail me at [email]"),
        ("standalone", None),
    ]
