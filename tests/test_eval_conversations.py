"""`kb eval --conversations`: first turns and follow-ups as separate rows, every reading side by side."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from eval import EvalError, load_conversations, run_conversations
from ui.cli import main

TURNS = [
    {
        "id": "a_1",
        "question": "How long is the refund window?",
        "history": [],
        "relevant": ["refund-and-cancellation-policy.md"],
    },
    {
        "id": "a_2",
        "question": "and for annual plans?",
        "relevant": ["refund-and-cancellation-policy.md"],
        "history": [
            {"role": "user", "content": "How long is the refund window?"},
            {"role": "assistant", "content": "14 days for new subscriptions."},
        ],
    },
    {
        "id": "b_1",
        "question": "What is the fee for American Express payments?",
        "history": [],
        "relevant": ["payments-and-payouts.md"],
    },
    {
        "id": "b_2",
        "question": "and how long do payouts take?",
        "relevant": ["payments-and-payouts.md"],
        "history": [
            {"role": "user", "content": "What is the fee for American Express payments?"},
            {"role": "assistant", "content": "3.5% per transaction."},
        ],
    },
]


def test_kb_eval_conversations_reports_first_turns_and_follow_ups_apart(kb_copy, tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in TURNS) + "\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main, ["eval", "--dataset", str(path), "--conversations", "--kb-dir", str(kb_copy), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "conversations.json").read_text())
    assert report["first_turns"] == 2 and report["follow_ups"] == 2
    table = report["table"]
    assert set(table) == {
        "turn alone",
        "+ previous user turn",
        "whole conversation",
        "whole conversation (dense)",
        "dense, turn alone",
        "conversation memory",
    }
    # first turns have no history: every Hopfield reading ranks them the same
    assert table["conversation memory"]["first"] == table["turn alone"]["first"]
    assert table["conversation memory"]["follow-up"]["recall@1"] == 1.0
    assert len(report["configs"]["conversation memory"]) == 5  # one pick per cross-validation fold
    assert "| conversation memory |" in result.output


def test_a_broken_conversational_line_is_named_with_its_line_number(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps(TURNS[0]) + "\n" + json.dumps({**TURNS[1], "history": [{"role": 1}]}) + "\n")
    with pytest.raises(EvalError, match=r"chats.jsonl:2: .*history\[0\]\.role"):
        load_conversations(path)


@pytest.mark.shared
def test_on_real_support_dialogues_the_conversation_memory_beats_the_turn_alone_on_follow_ups(shared_dir, tmp_path):
    # The default weights (no cross-validation grid) on the first 30 dialogues keep this to about a minute.
    report = run_conversations(shared_dir / "datasets" / "doc2dial-dev", tmp_path / "kb", cv=False, limit=30)
    alone, memory = report.table["turn alone"]["follow-up"], report.table["conversation memory"]["follow-up"]
    assert report.n_follow > 100
    assert memory["recall@5"] > alone["recall@5"] + 0.1 and memory["recall@1"] > alone["recall@1"]
    assert report.pvalues["conversation memory"]["recall@5"] < 0.05
    assert report.table["conversation memory"]["first"] == report.table["turn alone"]["first"]
