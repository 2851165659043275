"""`kb chat` driven through a real pseudo-terminal: follow-ups keep their subject, /new resets, Ctrl+D leaves."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

KB = [sys.executable, "-c", "from ui.cli import main; main()"]
ROOT = Path(__file__).resolve().parents[1]


class Terminal:
    """A child process on a pty: type lines, wait for text to appear (never a fixed sleep)."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 300.0) -> str:
        """Everything read until text appears after what earlier calls consumed; fails at timeout."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                pytest.fail(f"never saw {text!r}; the terminal shows:\n{self.seen[-2000:]}")
            if select.select([self.master], [], [], min(left, 1.0))[0]:
                try:
                    self.seen += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:  # the child closed the terminal
                    pass
        before, _, self.seen = self.seen.partition(text)
        return before + text

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        os.close(self.master)


def test_kb_chat_answers_a_follow_up_in_context_resets_on_new_and_leaves_on_ctrl_d(sample_kb_dir):
    term = Terminal(KB + ["chat", "--kb-dir", str(sample_kb_dir)])
    try:
        term.expect("Ctrl+D leaves.")
        term.expect("> ")
        term.type("How long is the refund window?")
        first = term.expect("\n> ")
        assert "Sources:" in first and "refund-and-cancellation-policy.md" in first
        term.type("and for annual plans?")
        follow = term.expect("\n> ")
        quote = follow.split("Sources:")[1].split('"')[1]
        assert "refund" in quote.lower() and "annual" in quote.lower(), follow
        term.type("/new")
        term.expect("new topic")
        term.expect("\n> ")
        term.type("and for annual plans?")
        alone = term.expect("\n> ")
        assert "refund" not in alone.split("Sources:")[1].split('"')[1].lower(), alone
        term.type("!!!")
        term.expect("empty or only punctuation")
        os.write(term.master, b"\x04")  # Ctrl+D
        assert term.proc.wait(60) == 0
    finally:
        term.close()


def test_kb_chat_logs_each_question_redacted_only_with_log(kb_copy):
    from kb import KnowledgeBase, QuestionLog

    for flags, logged in (([], 0), (["--log"], 2)):
        term = Terminal(KB + ["chat", "--kb-dir", str(kb_copy), *flags])
        try:
            term.expect("> ")
            term.type("How long is the refund window? I am jo.doe@example.com")
            term.expect("\n> ")
            term.type("and for annual plans?")
            term.expect("\n> ")
            os.write(term.master, b"\x04")
            assert term.proc.wait(60) == 0
        finally:
            term.close()
        entries = QuestionLog(KnowledgeBase(kb_copy)).entries()
        assert len(entries) == logged
    assert [e.question for e in entries] == ["How long is the refund window? I am [email]", "and for annual plans?"]
    assert all(e.asked_by is None and e.outcome in ("answered", "abstained") for e in entries)
