"""End to end: the real app (`streamlit run`) on a copy of the sample KB, driven by headless Chromium.

Screenshots of the main pages go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from ingest import IngestConfig, ingest
from kb import KnowledgeBase
from tests.helpers import read_questions
from ui.app_server import running_app

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
QUESTIONS = read_questions(SAMPLE_QUESTIONS)
TIMEOUT_MS = 45_000
TRICKY = """# Frobnicator widget notes

The Frobnicator widget resets every night at 02:00 <script>window.__kbPwned = 1;</script> so schedule exports before then.

Never click [this helpful link](javascript:window.__kbPwned=3) or trust <img src="x" onerror="window.__kbPwned=2"> images.
"""


@pytest.fixture(scope="module")
def app_kb(sample_kb_dir, tmp_path_factory, embedder) -> Path:
    """A private copy of the sample KB plus one document full of markup that must stay inert."""
    kb_dir = tmp_path_factory.mktemp("browser") / "kb"
    shutil.copytree(sample_kb_dir, kb_dir)
    docs = tmp_path_factory.mktemp("browser-docs")
    (docs / "frobnicator-notes.md").write_text(TRICKY)
    report = ingest([docs], kb_dir, IngestConfig(), embedder=embedder)
    assert report.added and not report.failed
    return kb_dir


@pytest.fixture(scope="module")
def app_url(app_kb):
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(app_kb, log_path=ARTIFACTS / "browser-app.log", sources=(SAMPLE_DOCS,)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is not installed: `apt-get install chromium` (scripts/test.sh does this)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(app_url)
    pg.get_by_test_id("stChatInputTextArea").wait_for()
    yield pg
    context.close()


def ask(page, question: str) -> None:
    before = page.locator(".kb-answer").count()
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")
    page.locator(".kb-answer").nth(before).wait_for()
    page.get_by_test_id("stExpander").last.wait_for()


def go_to(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).wait_for()


def test_question_gets_an_answer_with_a_citation_to_the_right_pdf_page(page):
    q = next(q for q in QUESTIONS if q["id"] == "q007")  # service credits at 99.0-99.9%: SLA PDF, page 2
    assert q["page"] is not None
    ask(page, q["question"])
    answer = page.locator(".kb-answer").last
    assert answer.locator("a.kb-cite").first.inner_text() == "[1]"
    first_source = page.get_by_test_id("stExpander").first
    label = first_source.locator("summary").inner_text()
    assert q["relevant"][0] in label and f"page {q['page']}" in label
    page.screenshot(path=ARTIFACTS / "chat-answer.png", full_page=True)
    energy = page.get_by_test_id("stSidebar").get_by_text("Energy after each update")
    energy.scroll_into_view_if_needed()
    page.get_by_test_id("stSidebar").get_by_test_id("stVegaLiteChart").wait_for()
    page.screenshot(path=ARTIFACTS / "chat-diagnostics.png")

    # the marker links to its source on the same page
    answer.locator("a.kb-cite").first.click()
    page.wait_for_url("**#src-0-1")
    assert page.locator("#src-0-1").count() == 1 and answer.is_visible()

    # open the citation: the passage shows with the quoted sentence highlighted
    first_source.locator("summary").click()
    mark = first_source.locator("mark.kb-quote")
    mark.wait_for()
    quoted = " ".join(mark.inner_text().split())
    assert quoted and quoted in " ".join(answer.inner_text().split())
    mark.scroll_into_view_if_needed()
    page.wait_for_timeout(700)  # let the expander finish opening before the screenshot
    page.screenshot(path=ARTIFACTS / "chat-citation-open.png", full_page=True)

    # the PDF page downloads on its own and holds the quoted sentence
    with page.expect_download() as dl:
        first_source.get_by_role("button", name=f"Open page {q['page']} (PDF)").click()
    data = Path(dl.value.path()).read_bytes()
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    assert quoted[:40] in " ".join(reader.pages[0].extract_text().split())


def test_out_of_scope_question_is_answered_with_not_found(page):
    ask(page, "Who is the CEO of Tallyo?")
    assert page.locator(".kb-abstained").last.inner_text() == "Not found in the knowledge base."
    assert page.get_by_text("these are the closest passages").count() >= 1
    page.screenshot(path=ARTIFACTS / "chat-not-found.png", full_page=True)


def test_markup_in_a_document_renders_as_inert_text(page):
    ask(page, "When does the Frobnicator widget reset every night?")
    source = page.get_by_test_id("stExpander").first
    assert "frobnicator-notes.md" in source.locator("summary").inner_text()
    source.locator("summary").click()
    passage = source.locator(".kb-passage")
    passage.wait_for()
    text = passage.inner_text()
    assert "<script>window.__kbPwned = 1;</script>" in text
    assert '<img src="x" onerror="window.__kbPwned=2">' in text
    assert "[this helpful link](javascript:window.__kbPwned=3)" in text
    assert passage.locator("script, img, a").count() == 0
    page.wait_for_timeout(700)
    assert page.evaluate("typeof window.__kbPwned") == "undefined"
    page.screenshot(path=ARTIFACTS / "chat-inert-markup.png", full_page=True)


def test_uploading_a_changed_document_reingests_it_as_version_2(page, app_kb, tmp_path):
    go_to(page, "Knowledge base")
    page.get_by_test_id("stDataFrame").wait_for()
    page.get_by_role("button", name="Re-ingest folder").wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=ARTIFACTS / "kb-page.png", full_page=True)
    doc = tmp_path / "loyalty-badges.md"
    for version, colour in ((1, "teal"), (2, "orange")):
        doc.write_text(f"# Loyalty badges\n\nThe Zorblax partner badge is {colour} and appears on partner invoices.\n")
        page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(str(doc))
        page.get_by_test_id("stFileChipName").filter(has_text="loyalty-badges.md").wait_for()
        page.get_by_role("button", name="Ingest uploaded files").click()
        expected = "1 added" if version == 1 else "1 updated"
        page.get_by_test_id("stAlertContentSuccess").filter(has_text=expected).wait_for()
        assert KnowledgeBase(app_kb).document("loyalty-badges.md").version == version
        # the app swaps in a fresh, empty uploader after an ingest; wait until the old one is gone
        expect(page.get_by_test_id("stFileUploader")).to_have_count(1)
        expect(page.get_by_test_id("stFileChipName")).to_have_count(0)
    page.screenshot(path=ARTIFACTS / "kb-page-after-upload.png", full_page=True)
    go_to(page, "Ask")
    ask(page, "What colour is the Zorblax partner badge?")
    assert "orange" in page.locator(".kb-answer").last.inner_text()
    assert "v2" in page.get_by_test_id("stExpander").first.locator("summary").inner_text()


def test_evaluation_page_runs_eval_and_shows_table_and_plot(page):
    go_to(page, "Evaluation")
    page.get_by_role("button", name="Run evaluation").click()
    page.get_by_role("heading", name="Results on sample (k = 5)").wait_for()
    page.get_by_test_id("stVegaLiteChart").wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=ARTIFACTS / "evaluation-page.png", full_page=True)
