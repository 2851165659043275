"""Insights (insights/): gap topics, document health, the report, `kb ask --log`, `kb insights` and --replay.

The grouping and health tests run on constructed data (fast); the end-to-end ones on the sample KB (slow)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from insights import (
    TopicConfig,
    build_insights,
    document_health,
    gap_questions,
    hdbscan_labels,
    hopfield_labels,
    hopfield_states,
    insights_text,
)
from kb import DocumentInfo, Feedback, KBError, KnowledgeBase, LogEntry, LoggedCitation, QuestionLog
from retriever import AnswerConfig, answer, hopfield_math, log_answer, make_retriever
from ui.cli.commands import main
from ui.cli.insights import parse_since

DAY = 86400.0


def three_topics(rng: np.random.Generator, per: int = 8, noise: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """per noisy copies of each of three random directions, then three lone vectors; and the true labels."""
    centres = rng.normal(size=(3, 64))
    rows = [c + noise * np.linalg.norm(c) / 8 * rng.normal(size=(per, 64)) for c in centres]
    lone = rng.normal(size=(3, 64))
    truth = np.concatenate([np.repeat(np.arange(3), per), 3 + np.arange(3)])
    return np.concatenate([*rows, lone]).astype(np.float32), truth


def test_hopfield_topics_recover_the_groups_and_leave_lone_questions_alone(rng):
    x, truth = three_topics(rng)
    labels = hopfield_labels(x, TopicConfig())
    assert [int((labels == t).sum()) for t in range(3)] == [8, 8, 8]  # largest first
    for t in range(3):  # each of the three largest topics is exactly one true group
        assert len(set(truth[labels == t])) == 1
    assert len(set(labels[-3:])) == 3 and min(labels[-3:]) >= 3  # lone questions are topics of one


def test_hdbscan_keeps_each_group_in_one_topic_of_its_own(rng):
    x, truth = three_topics(rng)
    labels = hdbscan_labels(x, TopicConfig(method="hdbscan"))
    for g in range(3):
        assert len(set(labels[truth == g])) == 1
    assert len({int(labels[truth == g][0]) for g in range(3)}) == 3


def test_hopfield_states_are_the_retrievers_hopfield_update(rng):
    x = rng.normal(size=(7, 16)).astype(np.float32)
    u = torch.from_numpy(x / np.linalg.norm(x, axis=1, keepdims=True))
    want = hopfield_math.update(hopfield_math.update(u, u.expand(7, -1, -1), 5.0), u.expand(7, -1, -1), 5.0)
    np.testing.assert_allclose(hopfield_states(x, beta=5.0, steps=2, batch=3), want.numpy(), atol=1e-5)


def test_a_low_beta_pulls_every_question_to_one_attractor(rng):
    x, _ = three_topics(rng)
    assert len(set(hopfield_labels(x, TopicConfig(beta=0.5)))) == 1
    assert len(set(hopfield_labels(x, TopicConfig(beta=20.0)))) == 6


def test_topic_config_errors_name_the_fix():
    with pytest.raises(KBError, match="method must be one of hopfield, hdbscan"):
        TopicConfig(method="kmeans")
    with pytest.raises(KBError, match="beta must be > 0"):
        TopicConfig(beta=0)


def _doc(source: str, version: int, updated_at: str = "") -> DocumentInfo:
    return DocumentInfo(1, source, source, source.title(), "md", "h", version, 0.0, 1, 10, updated_at=updated_at)


def _entry(i: int, question: str, outcome: str, cites: list[tuple[str, int]], at: float = 0.0) -> LogEntry:
    return LogEntry(i, at, question, outcome, tuple(LoggedCitation(i, s, v) for s, v in cites), "key:1", None, 0.5)


def test_document_health_counts_citations_thumbs_and_replaced_versions():
    docs = [_doc("a.md", 2, "2020-01-01T00:00:00Z"), _doc("b.md", 1, "2026-11-30"), _doc("c.md", 1, "not a date")]
    entries = [
        _entry(1, "q1", "answered", [("a.md", 2), ("a.md", 2)]),  # one answer citing a.md twice counts once
        _entry(2, "q2", "answered", [("a.md", 1)]),  # a.md v1 has been replaced by v2
        _entry(3, "q3", "answered", [("b.md", 1)]),
        _entry(4, "q4", "answered", [("gone.md", 3)]),  # a document since deleted
        _entry(5, "q5", "abstained", []),
    ]
    feedback = [
        Feedback(1, "q3", 3, "b.md", False, 10.0),
        Feedback(2, "q3", 3, "b.md", True, 10.0),
        Feedback(3, "q3", 3, "b.md", False, 10.0),
        Feedback(4, "old", 3, "a.md", False, -5.0),  # before the period
    ]
    h = document_health(docs, entries, feedback, since=0.0, now=1796083200.0)  # 2026-12-01
    assert h.outdated == (("a.md", "2020-01-01T00:00:00Z"),)
    assert [(d.source, d.citations) for d in h.most_cited][:2] == [("a.md", 2), ("b.md", 1)]
    assert h.never_cited == ("c.md",)
    assert [(d.source, d.thumbs_down, round(d.down_rate, 2)) for d in h.most_thumbs_down] == [("b.md", 2, 0.67)]
    assert [(p.chunk_id, p.doc_source, p.thumbs_down, round(p.down_rate, 2)) for p in h.passages_thumbs_down] == [
        (3, "b.md", 2, 0.67)
    ]
    assert {(s.question, s.doc_source, s.cited_version, s.current_version) for s in h.stale} == {
        ("q2", "a.md", 1, 2),
        ("q4", "gone.md", 3, None),
    }


def test_gap_questions_are_abstentions_and_thumbs_down_once_each_redacted():
    entries = [_entry(1, "answered one", "answered", [("a.md", 1)]), _entry(2, "no idea", "abstained", [])]
    feedback = [
        Feedback(1, "mail x@y.org why", 1, "a.md", False, 5.0),
        Feedback(2, "mail x@y.org why", 2, "b.md", False, 5.0),  # the same verdict on a second cited passage
        Feedback(3, "fine", 1, "a.md", True, 5.0),
        Feedback(4, "too late", 1, "a.md", False, 50.0),
    ]
    gaps = gap_questions(entries, feedback, since=0.0, until=10.0)
    assert [(g.question, g.reason) for g in gaps] == [("no idea", "abstained"), ("mail [email] why", "thumbs_down")]


def test_since_accepts_spans_and_dates_and_names_the_fix():
    assert parse_since("7d", now=10 * DAY) == 3 * DAY
    assert parse_since("24h", now=DAY) == 0.0
    assert parse_since("2026-01-01") == 1767225600.0
    assert parse_since(None) is None
    with pytest.raises(Exception, match="give a span like 7d"):
        parse_since("last week")


UNANSWERABLE = [
    "Is there a Tallyo mobile app for Android phones?",
    "Can I connect Tallyo to my Shopify store so orders become invoices automatically?",
    "Does Tallyo run payroll for my employees?",
    "Can Tallyo file my company's annual tax return with the IRS?",
]
ANSWERABLE = [
    "Within how many days of the first payment can a new Tallyo subscription be refunded in full?",
    "How is the refund calculated when an annual plan is cancelled after the 14-day window?",
]


def test_logged_answers_become_a_report_a_cli_listing_and_a_replay(kb_copy, embedder, caplog):
    kb = KnowledgeBase(kb_copy)
    retriever = make_retriever("hopfield", kb, embedder=embedder)
    caplog.set_level(logging.DEBUG)
    answers = [answer(q, retriever, AnswerConfig()) for q in UNANSWERABLE + ANSWERABLE]
    for a in answers:
        assert log_answer(kb, a, by="key:7", collection="docs", retriever=retriever) is not None
    kept = QuestionLog(kb).vectors(UNANSWERABLE + ANSWERABLE, embedder.name)  # the retriever's own vectors, kept
    assert set(kept) == set(UNANSWERABLE + ANSWERABLE)
    assert np.allclose(np.frombuffer(kept[ANSWERABLE[0]], np.float32), retriever.embed_queries([ANSWERABLE[0]])[0])
    assert not any(q in caplog.text for q in UNANSWERABLE + ANSWERABLE)  # questions never reach the logs
    abstained = sum(a.abstained for a in answers)
    assert abstained >= 2 and not answers[-1].abstained  # the sample KB abstains on some out-of-scope questions
    entries = QuestionLog(kb).entries(asked_by="key:7")
    assert len(entries) == 6 and entries[-1].citations[0].doc_source == answers[-1].citations[0].doc_source

    report = build_insights(kb, embedder=embedder)
    assert (report.asked, report.abstained) == (6, abstained)
    assert sum(t.size for t in report.topics) == abstained
    sources = {d.source for d in kb.documents()}
    for t in report.topics:
        assert 1 <= len(t.examples) <= 3 and set(t.examples) <= set(t.questions)
        assert t.passages and all(p.doc_source in sources for p in t.passages)
        assert t.action.startswith("document ") or t.action == "no document covers this: add one"
    cited = {c.doc_source for e in entries for c in e.citations}
    assert {d.source for d in report.health.most_cited} == cited
    assert set(report.health.never_cited) == sources - cited
    assert "Gap topics" in insights_text(report)
    out = CliRunner().invoke(main, ["insights", "--kb-dir", str(kb_copy), "--since", "2026-01-01"])
    assert out.exit_code == 0 and "\\n" not in out.output and out.output.count("\n") > 8, out.output
    out = CliRunner().invoke(main, ["insights", "--kb-dir", str(kb_copy), "--csv"])
    assert out.exit_code == 0, out.output
    rows = out.output.splitlines()
    assert rows[0].startswith("topic,size,trend,action") and len(rows) == 1 + min(10, len(report.topics))
    assert build_insights(kb, asked_by="key:other", embedder=embedder).asked == 0  # another asker sees nothing

    runner = CliRunner()
    out = runner.invoke(main, ["ask", ANSWERABLE[0], "--kb-dir", str(kb_copy), "--log"])
    assert out.exit_code == 0, out.output
    assert len(QuestionLog(kb)) == 7
    out = runner.invoke(main, ["insights", "--kb-dir", str(kb_copy), "--json", "--since", "1d"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["asked"] == 7 and data["abstained"] == abstained and data["topics_total"] == len(report.topics)
    assert {(t["previous"], t["trend"]) for t in data["topics"]} == {(0, "new")}  # nothing in the day before
    assert all(sum(n for _, n in t["by_day"]) == t["size"] for t in data["topics"])
    gap_texts = [q for t in report.topics for q in t.questions]
    assert set(QuestionLog(kb).vectors(gap_texts, embedder.name)) == set(gap_texts)  # embedded once, kept
    out = runner.invoke(main, ["insights", "--kb-dir", str(kb_copy), "--replay", "--json"])
    assert out.exit_code == 0, out.output
    again = json.loads(out.output)
    assert again["asked"] == abstained and again["answered"] == 0  # nothing changed in the KB: still not answered


def test_a_follow_up_is_logged_with_its_context_and_replayed_after_it(sample_kb, embedder, tmp_path):
    from insights import GapTopic, replay

    retriever = make_retriever("hopfield", sample_kb, embedder=embedder)
    before, follow_up = "How do I reset my password?", "what if I no longer have access to that email?"
    read = answer(follow_up, retriever, AnswerConfig(), history=[{"role": "user", "content": before}])
    alone = answer(follow_up, retriever, AnswerConfig())
    kb = KnowledgeBase(tmp_path / "kb", create=True)  # an empty KB holds the log; the answers are the sample KB's
    log_answer(kb, read)
    log_answer(kb, alone)
    assert [e.context for e in QuestionLog(kb).entries()] == [before, None]
    # A stricter threshold, between what the turn scores alone and with the question it followed: only a replay
    # that asks it after that question answers it.
    strict = AnswerConfig(min_evidence=(read.evidence + alone.evidence) / 2)
    assert alone.evidence < read.evidence
    topic = GapTopic(0, 1, (follow_up,), (follow_up,), (), "", None, {}, contexts=(before,))
    assert replay([topic], retriever, strict).answered == 1
    assert replay([replace(topic, contexts=(None,))], retriever, strict).answered == 0
