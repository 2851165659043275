"""The Insights page in a real browser: sign in to the real app (`streamlit run`) on a KB with logged questions,
open Insights, see a gap topic with its suggested action and both charts, and replay the gap questions."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from kb import KnowledgeBase
from retriever import AnswerConfig, answer, log_answer, make_retriever, record_feedback
from tests.helpers import private_kb_copy
from ui.app.server import running_app
from ui.launch import SIGN_IN_ENV, password_token

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 240_000  # a ceiling for each wait, not a sleep
PASSWORD = "insights for the owner"
UNANSWERED = [
    "Does Tallyo run payroll for my employees?",
    "Can Tallyo run payroll and pay my staff salaries?",
    "Can Tallyo file my company's annual tax return with the IRS?",
]


@pytest.fixture(scope="module")
def logged_kb(sample_kb_dir, tmp_path_factory, embedder) -> Path:
    """A copy of the sample KB whose question log holds real answers: gaps, an answered question thumbed down."""
    # Other tests' chats log into the shared sample KB: start from an empty log, so the counts are this test's.
    kb_dir = private_kb_copy(sample_kb_dir, tmp_path_factory.mktemp("insights-browser") / "kb")
    kb = KnowledgeBase(kb_dir)
    retriever = make_retriever("hopfield", kb, embedder=embedder)
    for q in [*UNANSWERED, "How long is the refund window for a new subscription?"]:
        ans = answer(q, retriever, AnswerConfig())
        assert log_answer(kb, ans, by="session:test") is not None
    assert ans.citations and not ans.abstained
    record_feedback(kb, ans.question, ans.citations[:1], helpful=False, learn=lambda ids: None)
    return kb_dir


def test_a_signed_in_owner_sees_gap_topics_charts_and_a_replay(logged_kb, monkeypatch):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is not installed: `apt-get install chromium` (scripts/test.sh does this)"
    monkeypatch.setenv(SIGN_IN_ENV, password_token(PASSWORD))
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(logged_kb, log_path=ARTIFACTS / "browser-insights-app.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page.goto(url)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_test_id("stSidebarNav").get_by_text("Insights", exact=True).click()
            page.get_by_role("heading", name="Insights").wait_for()
            main = page.get_by_test_id("stMainBlockContainer")
            main.get_by_role("heading", name="Gap topics").wait_for()
            topic = main.get_by_test_id("stExpander").filter(has_text="payroll").first
            expect(topic).to_be_visible()
            expect(topic).to_contain_text(re.compile("no document covers this: add one|comes close .*: update it"))
            charts = main.get_by_test_id("stVegaLiteChart")
            expect(charts).to_have_count(2)  # topic sizes over time, thumbs down by document
            expect(main.get_by_test_id("stMetric").filter(has_text="Questions")).to_contain_text("4")
            page.get_by_role("button", name="Replay the gap questions").click()
            expect(main.get_by_text("gap question(s) are answered now")).to_be_visible()
            page.get_by_test_id("stStatusWidget").wait_for(state="detached")
            page.screenshot(path=ARTIFACTS / "insights-light.png", full_page=True)
        finally:
            browser.close()
