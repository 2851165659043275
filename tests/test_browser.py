"""End to end: the real app (`streamlit run`) on a copy of the sample KB, driven by headless Chromium.

Screenshots of every page state, light and dark, go to test-artifacts/ (gitignored).

Waits: every wait is for a condition (an element, a text, a URL), with TIMEOUT_MS as a generous
ceiling so a machine busy with other work is slower but not red; there are no fixed sleeps.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from ingest import IngestConfig, ingest
from kb import KnowledgeBase, QuestionMemory
from tests.api_server import wait_for
from tests.helpers import read_questions
from ui.app.server import running_app

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
QUESTIONS = read_questions(SAMPLE_QUESTIONS)
TIMEOUT_MS = 240_000  # a ceiling for each wait, not a sleep: waits end when their condition holds
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
    report = ingest(kb_dir, [docs], IngestConfig(), embedder=embedder)
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


def open_page(browser, url: str, scheme: str = "light"):
    """A fresh browser context (own Streamlit session) on url, with clipboard access, console collected."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000},
        accept_downloads=True,
        color_scheme=scheme,
        permissions=["clipboard-read", "clipboard-write"],
    )
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    pg.console_messages_seen = []
    pg.on("console", lambda m: pg.console_messages_seen.append(m.text))
    pg.goto(url)
    pg.get_by_test_id("stChatInputTextArea").wait_for()
    return pg


@pytest.fixture
def page(browser, app_url):
    pg = open_page(browser, app_url)
    yield pg
    pg.context.close()


def shot(page, name: str) -> None:
    """A full-page screenshot test-artifacts/<name>-<light|dark>.png once the app is idle (no running script)."""
    page.get_by_test_id("stStatusWidget").wait_for(state="detached")
    scheme = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") and "dark" or "light"
    page.screenshot(path=ARTIFACTS / f"{name}-{scheme}.png", full_page=True)


def ask(page, question: str) -> None:
    before = page.locator(".kb-answer").count()
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")
    page.locator(".kb-answer").nth(before).wait_for()
    page.get_by_test_id("stMainBlockContainer").get_by_test_id("stExpander").last.wait_for()


def sources(page):
    """The source expanders in the conversation (not the sidebar's Advanced section)."""
    return page.get_by_test_id("stMainBlockContainer").get_by_test_id("stExpander")


def go_to(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).wait_for()


def test_question_gets_an_answer_whose_marker_opens_the_cited_pdf_page(page):
    q = next(q for q in QUESTIONS if q["id"] == "q007")  # service credits at 99.0-99.9%: SLA PDF, page 2
    assert q["page"] is not None
    ask(page, q["question"])
    answer = page.locator(".kb-answer").last
    assert answer.locator("a.kb-cite").first.inner_text() == "[1]"
    first_source = sources(page).first
    label = first_source.locator("summary").inner_text()
    assert q["relevant"][0] in label and f"p. {q['page']}" in label
    assert first_source.locator("details").get_attribute("open") is None  # closed until asked for
    shot(page, "chat-answer")

    # the marker opens its source: expanded, scrolled into view, the quote highlighted
    page.evaluate("window.scrollTo(0, 0)")
    answer.locator("a.kb-cite").first.click()
    mark = first_source.locator("mark.kb-quote")
    expect(mark).to_be_visible()
    expect(first_source.locator("details")).to_have_attribute("open", "")
    expect(page.locator(".st-key-src-0-1[data-kb-opened='1']")).to_have_count(1)
    expect(mark).to_be_in_viewport()
    expect(mark).to_have_class("kb-quote kb-flash")
    page.wait_for_url("**#src-0-1")
    quoted = " ".join(mark.inner_text().split())
    assert quoted and quoted in " ".join(answer.inner_text().split())
    shot(page, "chat-citation-open")

    # the PDF page shows in the page
    first_source.get_by_text(f"Show page {q['page']} here").click()
    viewer = first_source.locator("iframe, canvas, [data-testid='stPdf'], .stPdf").first
    viewer.wait_for(timeout=120_000)  # the PDF component loads pdf.js on first use: slow on a busy machine
    viewer.scroll_into_view_if_needed()
    shot(page, "chat-pdf-page")

    # ... and downloads on its own, holding the quoted sentence
    with page.expect_download() as dl:
        first_source.get_by_role("button", name=f"Open page {q['page']} (PDF)").click()
    data = Path(dl.value.path()).read_bytes()
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    assert quoted[:40] in " ".join(reader.pages[0].extract_text().split())

    # the copy button copies the answer with its sources
    frames = [f for f in page.frames if f.locator("#copy").count()]
    assert frames, "no copy button"
    frames[-1].locator("#copy").click()
    expect(frames[-1].locator("#copy")).to_have_text("✓ Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert quoted[:40] in " ".join(copied.split()) and "Sources:" in copied and q["relevant"][0] in copied


def test_out_of_scope_question_is_answered_with_not_found(page):
    ask(page, "Who is the CEO of Tallyo?")
    assert page.locator(".kb-abstained").last.inner_text() == "Not found in the knowledge base."
    assert page.get_by_text("these are the closest passages").count() >= 1
    shot(page, "chat-not-found")


def test_markup_in_a_document_renders_as_inert_text(page):
    ask(page, "When does the Frobnicator widget reset every night?")
    source = sources(page).first
    assert "frobnicator-notes.md" in source.locator("summary").inner_text()
    source.locator("summary").click()
    passage = source.locator(".kb-passage")
    expect(passage).to_be_visible()
    text = passage.inner_text()
    assert "<script>window.__kbPwned = 1;</script>" in text
    assert '<img src="x" onerror="window.__kbPwned=2">' in text
    assert "[this helpful link](javascript:window.__kbPwned=3)" in text
    assert passage.locator("script, img, a").count() == 0
    assert page.evaluate("typeof window.__kbPwned") == "undefined"
    shot(page, "chat-inert-markup")


def test_overlong_and_empty_questions_get_a_message_and_no_bubble(page):
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("x" * 20_000)
    box.press("Enter")
    expect(page.get_by_text("The question is 20,000 characters long; the limit is 2,000.")).to_be_visible()
    assert page.get_by_test_id("stChatMessage").count() == 0
    shot(page, "chat-too-long")
    box.fill("  ?!  ")
    box.press("Enter")
    expect(page.get_by_text("The question is empty or only punctuation")).to_be_visible()
    assert page.get_by_test_id("stChatMessage").count() == 0


def test_conversation_survives_a_reload_and_exports_as_markdown_with_footnotes(page):
    ask(page, QUESTIONS[0]["question"])
    answer_text = page.locator(".kb-answer").last.inner_text()
    assert "s=" in page.url and "c=" in page.url
    page.reload()
    expect(page.locator(".kb-answer")).to_have_count(1)
    assert page.locator(".kb-answer").first.inner_text() == answer_text
    side = page.get_by_test_id("stSidebar")
    expect(side.get_by_role("combobox", name="Saved conversations")).to_have_value(
        re.compile(re.escape(QUESTIONS[0]["question"][:40]))
    )
    shot(page, "chat-after-reload")
    with page.expect_download() as dl:
        side.get_by_role("button", name="Export as Markdown").click()
    md = Path(dl.value.path()).read_text()
    assert md.startswith("# ") and "[^1-1]" in md and "\n[^1-1]: " in md
    assert dl.value.suggested_filename.endswith(".md")


def test_a_planted_conversation_link_does_not_join_another_browsers_conversation(page, browser):
    # The attacker asks in their own browser and sends the victim the page's URL (?s=...&c=...).
    ask(page, QUESTIONS[0]["question"])
    planted = page.url
    assert "c=" in planted
    victim = open_page(browser, planted)  # another browser context: its own cookies
    try:
        expect(victim.get_by_text("That conversation belongs to another browser session")).to_be_visible()
        assert victim.locator(".kb-answer").count() == 0  # the attacker's conversation is not shown ...
        ask(victim, QUESTIONS[1]["question"])
        assert victim.url.split("c=")[1].split("&")[0] != planted.split("c=")[1].split("&")[0]
        page.reload()  # ... and the victim's question did not land in it
        expect(page.locator(".kb-answer")).to_have_count(1)
    finally:
        victim.context.close()


def test_a_follow_up_cites_the_annual_plan_refund_passage_and_new_topic_reads_it_alone(page):
    ask(page, "How long is the refund window?")
    ask(page, "and for annual plans?")
    follow = sources(page).nth(page.locator(".kb-answer").nth(0).locator("a.kb-cite").count())
    page.locator(".kb-answer").last.locator("a.kb-cite").first.click()
    quote = " ".join(follow.locator("mark.kb-quote").inner_text().split()).lower()
    assert "refund" in quote and "annual" in quote, quote
    shot(page, "chat-follow-up")
    page.get_by_role("button", name="New topic").click()
    ask(page, "and for annual plans?")
    expect(page.locator(".kb-answer")).to_have_count(3)
    # alone, its first quote is the annual plans' price list
    assert "refund" not in page.locator(".kb-answer").last.inner_text().lower().split("[1]")[0]


def test_settings_and_diagnostics_are_behind_advanced_and_the_chart_is_clean(page):
    side = page.get_by_test_id("stSidebar")
    ask(page, QUESTIONS[1]["question"])
    expect(side.get_by_text("K (first-stage candidates)")).to_be_hidden()  # agents see a clean chat
    shot(page, "chat-agent-view")
    side.get_by_text("Advanced: retrieval settings and diagnostics").click()
    expect(side.get_by_text("K (first-stage candidates)")).to_be_visible()
    chart = side.get_by_test_id("stVegaLiteChart")
    chart.scroll_into_view_if_needed()
    expect(chart.locator("canvas, svg").first).to_be_visible()
    steps = int(side.get_by_test_id("stMetric").filter(has_text="Steps").get_by_test_id("stMetricValue").inner_text())
    expect(side.get_by_text(f"Energy after each of the {steps} update steps")).to_be_visible()
    entropy = float(
        side.get_by_test_id("stMetric").filter(has_text="Attention entropy").get_by_test_id("stMetricValue").inner_text()
    )
    assert entropy > 0
    page.get_by_test_id("stSidebar").screenshot(path=ARTIFACTS / "chat-advanced-light.png")
    assert not [m for m in page.console_messages_seen if "Infinite extent" in m]


def test_uploading_a_changed_document_reingests_it_as_version_2_with_the_summary_by_the_button(page, app_kb, tmp_path):
    go_to(page, "Knowledge base")
    page.get_by_test_id("stDataFrame").wait_for()
    page.get_by_role("button", name="Re-ingest folder").wait_for()
    shot(page, "kb-page")
    doc = tmp_path / "loyalty-badges.md"
    button = page.get_by_role("button", name="Ingest uploaded files")
    for version, colour in ((1, "teal"), (2, "orange")):
        doc.write_text(f"# Loyalty badges\n\nThe Zorblax partner badge is {colour} and appears on partner invoices.\n")
        page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(str(doc))
        page.get_by_test_id("stFileChipName").filter(has_text="loyalty-badges.md").wait_for()
        button.click()
        expected = "1 added" if version == 1 else "1 updated"
        summary = page.get_by_test_id("stAlertContentSuccess").filter(has_text=expected)
        summary.wait_for()
        assert KnowledgeBase(app_kb).document("loyalty-badges.md").version == version
        # the summary sits right under the button that started the ingest, in view (once the rerun's layout settles)
        _wait_until_under(button, summary)
        # the app swaps in a fresh, empty uploader after an ingest; wait until the old one is gone
        expect(page.get_by_test_id("stFileUploader")).to_have_count(1)
        expect(page.get_by_test_id("stFileChipName")).to_have_count(0)
    shot(page, "kb-page-after-upload")
    page.get_by_role("button", name="Re-ingest folder").click()
    folder_summary = page.get_by_test_id("stAlertContentSuccess").filter(has_text="unchanged")
    folder_summary.wait_for()
    _wait_until_under(page.get_by_role("button", name="Re-ingest folder"), folder_summary)
    shot(page, "kb-page-after-reingest")
    go_to(page, "Ask")
    ask(page, "What colour is the Zorblax partner badge?")
    assert "orange" in page.locator(".kb-answer").last.inner_text()
    assert "v2" in sources(page).first.locator("summary").inner_text()


def _wait_until_under(button, summary, ceiling_s: float = 60.0) -> None:
    """Wait until summary's top is within 200 px under button's bottom (the page reflows while the app reruns)."""
    import time

    deadline = time.monotonic() + ceiling_s
    while True:
        b, s_box = button.bounding_box(), summary.bounding_box()
        if b and s_box and 0 < s_box["y"] - (b["y"] + b["height"]) < 200:
            return
        assert time.monotonic() < deadline, ("the summary never settled under its button", b, s_box)
        button.page.wait_for_timeout(100)


def _small_set(tmp_path: Path, n: int = 12, copies: int = 1, name: str = "small-set.jsonl") -> Path:
    """The first n sample questions as an uploadable JSONL set, each asked `copies` times (numbered apart)."""
    import json

    path = tmp_path / name
    rows = [
        {"question": q["question"] + (f" ({c})" if c else ""), "relevant": q["relevant"]}
        for c in range(copies)
        for q in QUESTIONS[:n]
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluation_page_shows_progress_per_retriever_then_table_and_plot(page, tmp_path):
    go_to(page, "Evaluation")
    page.get_by_text("Upload a JSONL file").click()
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(str(_small_set(tmp_path)))
    page.get_by_test_id("stFileChipName").filter(has_text="small-set.jsonl").wait_for()
    page.get_by_role("button", name="Run evaluation").click()
    page.get_by_role("heading", name="Results on small-set.jsonl (k = 5)").wait_for()
    expect(page.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible()
    for name in ("dense", "bm25", "hybrid", "hopfield"):
        expect(page.get_by_text(f"{name}: 12 of 12 questions (done)")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel evaluation")).to_have_count(0)
    shot(page, "evaluation-page")
    # switching the source clears the results that belonged to the old one
    page.get_by_text("Sample questions (data/questions.jsonl)").click()
    expect(page.get_by_role("heading", name="Results on small-set.jsonl (k = 5)")).to_have_count(0)


def test_evaluation_can_be_cancelled(page, tmp_path):
    go_to(page, "Evaluation")
    # A set long enough to be still running when the button is clicked: the 60 sample questions alone finish in
    # a few seconds now, sometimes before the page has shown the button at all.
    page.get_by_text("Upload a JSONL file").click()
    upload = _small_set(tmp_path, n=len(QUESTIONS), copies=40, name="long-set.jsonl")
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(str(upload))
    page.get_by_test_id("stFileChipName").filter(has_text="long-set.jsonl").wait_for()
    page.get_by_role("button", name="Run evaluation").click()  # 2,400 questions, four retrievers
    cancel = page.get_by_role("button", name="Cancel evaluation")
    cancel.wait_for()
    page.get_by_test_id("stProgress").first.wait_for()
    shot(page, "evaluation-running")
    cancel.click()
    expect(page.get_by_text("Evaluation cancelled; no results were kept.")).to_be_visible()
    expect(page.get_by_role("heading", name="Results on long-set.jsonl (k = 5)")).to_have_count(0)


def test_every_page_in_the_dark_theme(browser, app_url, tmp_path):
    pg = open_page(browser, app_url, scheme="dark")
    try:
        assert pg.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        ask(pg, next(q for q in QUESTIONS if q["id"] == "q007")["question"])
        pg.locator(".kb-answer a.kb-cite").first.click()
        expect(sources(pg).first.locator("mark.kb-quote")).to_be_in_viewport()
        shot(pg, "chat-citation-open")
        pg.get_by_test_id("stSidebar").get_by_text("Advanced: retrieval settings and diagnostics").click()
        expect(pg.get_by_test_id("stSidebar").get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible()
        pg.get_by_test_id("stSidebar").screenshot(path=ARTIFACTS / "chat-advanced-dark.png")
        box = pg.get_by_test_id("stChatInputTextArea")
        box.fill("y" * 5000)
        box.press("Enter")
        expect(pg.get_by_text("The question is 5,000 characters long")).to_be_visible()
        shot(pg, "chat-too-long")
        go_to(pg, "Knowledge base")
        pg.get_by_test_id("stDataFrame").wait_for()
        shot(pg, "kb-page")
        go_to(pg, "Evaluation")
        pg.get_by_text("Upload a JSONL file").click()
        pg.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(str(_small_set(tmp_path, 6)))
        pg.get_by_test_id("stFileChipName").filter(has_text="small-set.jsonl").wait_for()
        pg.get_by_test_id("stMultiSelect").get_by_role("button").first.wait_for()
        pg.get_by_role("button", name="Run evaluation").click()
        pg.get_by_role("heading", name="Results on small-set.jsonl (k = 5)").wait_for()
        expect(pg.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible()
        shot(pg, "evaluation-page")
    finally:
        pg.context.close()


def test_first_page_view_after_a_start_shows_the_chat_and_the_first_question_loads_the_model(browser, app_kb, tmp_path):
    """A fresh server: the chat shows without waiting on the model (the page's imports no longer load torch), and
    the first question loads what it needs and is answered with its sources."""
    with running_app(app_kb, log_path=tmp_path / "app.log") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            pg = context.new_page()
            pg.set_default_timeout(TIMEOUT_MS)
            pg.goto(url)
            pg.get_by_test_id("stChatInputTextArea").wait_for()
            assert pg.locator(".kb-answer").count() == 0
            ask(pg, QUESTIONS[0]["question"])
            pg.screenshot(path=ARTIFACTS / "startup-first-answer-light.png")
            assert pg.locator(".kb-answer").count() == 1 and sources(pg).count() >= 1
        finally:
            context.close()


def test_a_closest_passage_marked_as_the_answer_answers_the_question_and_its_paraphrase(page, app_kb):
    """The loop a support agent closes: a loose question abstains, the agent marks the closest passage that answers
    it, and from then on the question and its paraphrases are answered from it (the question memory as evidence).
    Last in this module: it teaches the shared KB's memory."""
    question = "a church group is asking if they get it cheaper"
    ask(page, question)
    assert page.locator(".kb-answer").last.inner_text() == "Not found in the knowledge base."
    page.get_by_test_id("stStatusWidget").wait_for(state="detached")  # the run is over: a click now is not lost
    closest = sources(page)
    for i in range(closest.count()):
        closest.nth(i).locator("summary").click()
        if "non-profit" in closest.nth(i).inner_text():
            closest.nth(i).get_by_role("button", name="This passage answers it").click()
            break
    else:
        pytest.fail("no closest passage holds the non-profit discount")
    # The lasting effect, not the toast (it shows for a few seconds, which a busy machine can miss).
    memory = QuestionMemory(KnowledgeBase(app_kb))
    wait_for(lambda: question in memory.questions(), TIMEOUT_MS / 1000, "the question in the KB's memory")
    ask(page, "our church asks whether they can pay less")
    last = page.locator(".kb-answer").last
    assert "kb-abstained" not in (last.get_attribute("class") or "")
    assert "non-profit" in last.inner_text()
    shot(page, "chat-taught-answer")
