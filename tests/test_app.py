"""The Streamlit app's pages through AppTest (no browser): chat, diagnostics, feedback, KB page, errors."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from kb import KnowledgeBase, QuestionLog
from tests.api_server import wait_for
from tests.helpers import read_questions
from ui.launch import APP as APP_SCRIPT
from ui.launch import KB_DIR_ENV, SOURCES_ENV

APP = str(APP_SCRIPT)
QUESTIONS = read_questions(SAMPLE_QUESTIONS)


def open_app(kb_dir: Path, monkeypatch, page: str | None = None) -> AppTest:
    monkeypatch.setenv(KB_DIR_ENV, str(kb_dir))
    # default_timeout is a ceiling on each run, not a wait: a run returns as soon as the script ends.
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at


def html_bodies(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html")]


def test_chat_answers_with_a_cited_pdf_page_and_the_sentence_highlighted(sample_kb_dir, monkeypatch):
    q = next(q for q in QUESTIONS if q["page"] is not None and q["style"] == "clean")
    at = ask(open_app(sample_kb_dir, monkeypatch), q["question"])
    labels = [e.label for e in at.expander]
    assert labels, "no sources shown"
    assert q["relevant"][0].replace("-", "\\-").replace(".", "\\.") in labels[0]
    assert f"— p\\. {q['page']} ·" in labels[0]  # kb.location_label, Markdown-escaped
    bodies = html_bodies(at)
    answer = next(b for b in bodies if 'class="kb-answer' in b)
    assert 'href="#src-0-1"' in answer
    passage = next(b for b in bodies if 'class="kb-passage' in b)
    assert "<mark" in passage and passage.count("<mark") == 1
    # the page for that source offers the PDF page and the original file
    downloads = [b.proto.label for b in at.expander[0].get("download_button")]
    assert f"Open page {q['page']} (PDF)" in downloads and "Original document" in downloads


def _chart_points(chart) -> list[dict]:
    """The rows a Vega-Lite chart draws: inline in the spec, or Streamlit's Arrow datasets."""
    import pyarrow as pa

    spec = json.loads(chart.proto.spec)
    for values in [spec.get("data", {}).get("values"), *spec.get("datasets", {}).values()]:
        if values:
            return values
    for blob in [chart.proto.data.data, *(ds.data.data for ds in chart.proto.datasets)]:
        if blob:
            return pa.ipc.open_stream(blob).read_all().to_pylist()
    return []


def test_settings_and_diagnostics_sit_in_the_advanced_section_and_agree(sample_kb_dir, monkeypatch):
    import math

    at = ask(open_app(sample_kb_dir, monkeypatch), QUESTIONS[1]["question"])
    advanced = next(e for e in at.sidebar.expander if e.label.startswith("Advanced"))
    # every retrieval setting is inside Advanced; the main area has none
    assert {w.key for w in advanced.get("slider")} >= {"set_beta", "set_top_k", "set_min_evidence"}
    assert advanced.selectbox(key="set_retriever").value == "hopfield"
    assert not at.main.get("slider") and not at.main.get("select_slider")
    metrics = {m.label: m.value for m in advanced.get("metric")}
    assert {"Evidence", "Threshold", "Steps", "Converged", "Attention entropy", "Candidates"} <= set(metrics)
    k = advanced.select_slider(key="set_candidates").value
    candidates, steps, entropy = int(metrics["Candidates"]), int(metrics["Steps"]), float(metrics["Attention entropy"])
    assert k <= candidates <= 2 * k, "candidates are the union of two top-K lists"
    assert 0.0 < entropy <= math.log(candidates) + 1e-6
    charts = advanced.get("arrow_vega_lite_chart") or advanced.get("vega_lite_chart")
    assert charts, "no energy plot"
    points = _chart_points(charts[0])
    assert [p["step"] for p in points] == list(range(1, steps + 1)), "one point per step, numbered like the text"
    assert all(math.isfinite(p["energy"]) for p in points)
    captions = " ".join(c.value for c in advanced.caption)
    assert f"each of the {steps} update steps" in captions
    advanced.selectbox(key="set_retriever").set_value("bm25").run()
    ask(at, QUESTIONS[2]["question"])
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "no Hopfield diagnostics" in captions
    assert len([m for m in at.chat_message if m.name == "assistant"]) == 2  # history kept


def test_out_of_scope_question_says_not_found_and_lists_closest_passages(sample_kb_dir, monkeypatch):
    at = ask(open_app(sample_kb_dir, monkeypatch), "Who is the CEO of Tallyo?")
    assert any("Not found in the knowledge base." in b for b in html_bodies(at))
    assert 1 <= len(at.main.expander) <= 3
    assert any("closest passages" in c.value for c in at.caption)


@pytest.mark.parametrize("text", ["?!", "   ", " \n\t ", "... --- ???"])
def test_empty_or_punctuation_only_input_shows_a_message_and_adds_no_bubble(sample_kb_dir, monkeypatch, text):
    at = ask(open_app(sample_kb_dir, monkeypatch), text)
    assert not at.exception
    assert any("empty or only punctuation" in w.value for w in at.warning)
    assert len(at.chat_message) == 0


def test_an_overlong_question_is_refused_with_the_limit_and_not_echoed(sample_kb_dir, monkeypatch):
    from ui.questions import MAX_QUESTION_CHARS

    at = open_app(sample_kb_dir, monkeypatch)
    ask(at, ("refund " * 3000).strip() + "?")
    assert len(at.chat_message) == 0
    message = " ".join(w.value for w in at.warning)
    assert "21,000 characters" in message and f"{MAX_QUESTION_CHARS:,}" in message
    assert "refund refund refund" not in " ".join(html_bodies(at))
    # exactly at the limit is a question like any other
    ask(at, ("How long do customers have to ask for a refund? " * 60)[:MAX_QUESTION_CHARS])
    assert len(at.chat_message) == 2 and not at.warning


def test_missing_kb_is_explained_on_every_page(tmp_path, monkeypatch):
    missing = tmp_path / "nothing-here"
    at = open_app(missing, monkeypatch)
    assert any("no knowledge base" in w.value for w in at.warning)
    at.switch_page("pages/knowledge_base.py").run()
    assert not at.exception and any("uploading files creates it" in i.value for i in at.info)
    at.switch_page("pages/evaluation.py").run()
    assert not at.exception and at.warning


def test_feedback_is_stored_and_exported_as_a_labelled_question(kb_copy, monkeypatch):
    q = QUESTIONS[0]
    started = time.time()  # kb_copy holds what app tests on the shared sample KB logged before
    at = ask(open_app(kb_copy, monkeypatch), q["question"])
    at.get("feedback")[0].set_value(1).run()
    assert not at.exception
    kb = KnowledgeBase(kb_copy)
    rows = kb.feedback()
    assert rows and all(r.helpful and r.question == q["question"] for r in rows)
    # Logged in a thread after the answer is shown: wait for the entry, not a fixed time.
    entries = wait_for(lambda: QuestionLog(kb).entries(since=started), 30, "the app's question log entry")
    assert len(entries) == 1, entries
    [logged] = entries  # the question is in the log, by a digest of the session (never its id)
    assert logged.question == q["question"] and not logged.abstained and logged.citations
    assert logged.asked_by and re.fullmatch(r"session:[0-9a-f]{16}", logged.asked_by)
    at.switch_page("pages/evaluation.py").run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert list(table["question"]) == [q["question"]] and q["relevant"][0] in table["relevant"][0]
    assert any(b.proto.label.startswith("Download feedback questions") for b in at.get("download_button"))


def test_kb_page_lists_documents_and_reingests_a_folder_with_a_summary(kb_copy, monkeypatch):
    monkeypatch.setenv(SOURCES_ENV, json.dumps([str(SAMPLE_DOCS.resolve())]))
    at = open_app(kb_copy, monkeypatch, page="pages/knowledge_base.py")
    table = at.dataframe[0].value
    assert len(table) == 12 and {"version", "ingested", "chunks"} <= set(table.columns)
    assert set(table["version"]) == {1}
    folder = at.selectbox(key="reingest_folder")
    assert folder.value == str(SAMPLE_DOCS.resolve()) and list(folder.options) == [str(SAMPLE_DOCS.resolve())]
    assert not at.text_input  # there is no box to type a path into
    at.button[1].click().run()  # Re-ingest folder
    assert not at.exception
    summary = " ".join(s.value for s in at.success)
    assert "12 unchanged" in summary.replace("\\", "") and "0 failed" in summary


def test_without_configured_source_folders_no_folder_can_be_reingested(kb_copy, monkeypatch):
    monkeypatch.delenv(SOURCES_ENV, raising=False)
    at = open_app(kb_copy, monkeypatch, page="pages/knowledge_base.py")
    assert not at.exception and not at.text_input and not at.selectbox
    assert any("kb ui --source" in i.value for i in at.info)
    assert all(b.label != "Re-ingest folder" for b in at.button)


def test_a_sign_in_password_guards_every_page(kb_copy, monkeypatch):
    from ui.launch import SIGN_IN_ENV, password_token

    monkeypatch.setenv(SIGN_IN_ENV, password_token("correct horse battery"))
    at = open_app(kb_copy, monkeypatch)
    assert [t.value for t in at.title] == ["Sign in"] and not at.chat_input
    # A form's fields count when it is submitted: type and press Sign in in the same run.
    at.text_input(key="sign_in_password").input("wrong password")
    at.button[0].click().run()
    assert at.error and not at.chat_input
    at.text_input(key="sign_in_password").input("correct horse battery")
    at.button[0].click().run()
    assert not at.exception and at.chat_input


def test_uploads_are_sanitised_typed_and_ingested_as_new_versions(kb_copy, monkeypatch):
    at = open_app(kb_copy, monkeypatch, page="pages/knowledge_base.py")
    body = b"# Loyalty badges\n\nThe Zorblax partner badge is teal and shows on partner invoices.\n"
    assert set(at.file_uploader[0].allowed_type) == {
        ".pdf",
        ".docx",
        ".md",
        ".markdown",
        ".html",
        ".htm",
        ".txt",
        ".csv",
        ".eml",
        ".msg",
        ".xlsx",
        ".pptx",
    }
    at.file_uploader[0].set_value(
        [("../../evil <b>name.md", body, "text/markdown"), ("empty.txt", b"  \n", "text/plain")]
    ).run()
    at.button[0].click().run()  # Ingest uploaded files
    assert not at.exception
    assert any("'empty.txt' is empty" in e.value.replace("\\", "") for e in at.error)
    uploads = sorted(p.name for p in (kb_copy / "uploads").iterdir())
    assert uploads == ["evil _b_name.md"]
    kb = KnowledgeBase(kb_copy)
    assert kb.document("evil _b_name.md").version == 1
    # the same name again with new content is an update: version 2
    at.file_uploader[0].set_value(("evil <b>name.md", body + b"\nIt was blue before 2024.\n", "text/markdown")).run()
    at.button[0].click().run()
    assert not at.exception
    assert KnowledgeBase(kb_copy).document("evil _b_name.md").version == 2
    table = at.dataframe[0].value
    assert int(table[table["document"] == "evil _b_name.md"]["version"].iloc[0]) == 2
    assert "1 updated" in " ".join(s.value for s in at.success).replace("\\", "")


def test_document_text_with_script_and_markdown_tricks_is_escaped(kb_copy, monkeypatch, tmp_path, embedder):
    from ingest import IngestConfig, ingest

    doc = tmp_path / "tricky-widget-notes.txt"
    payload = (
        "Widget resets: the Frobnicator widget resets every night at 02:00 <script>window.pwned=1</script> "
        'and [click here](javascript:alert(1)) **bold** <img src=x onerror="window.pwned=2">.'
    )
    doc.write_text("Tricky widget notes\n\n" + payload + "\n")
    ingest(kb_copy, [doc], IngestConfig(), embedder=embedder)
    at = ask(open_app(kb_copy, monkeypatch), "When does the Frobnicator widget reset?")
    bodies = " ".join(html_bodies(at))
    assert "<script>" not in bodies and "<img" not in bodies
    assert html.escape("<script>window.pwned=1</script>") in bodies
    assert "tricky-widget-notes" in at.expander[0].label.replace("\\", "")


def test_labelled_set_upload_errors_name_the_line(sample_kb_dir, monkeypatch):
    at = open_app(sample_kb_dir, monkeypatch, page="pages/evaluation.py")
    at.radio(key="eval_source").set_value("Upload a JSONL file").run()
    at.file_uploader(key="eval_upload").set_value(
        ("set.jsonl", json.dumps({"question": "q", "relevant": ["a.md"]}).encode() + b"\n{oops\n", "application/json")
    ).run()
    assert not at.exception
    assert any("set.jsonl line 2" in e.value for e in at.error)


SMALL_SET = QUESTIONS[:12]  # the evaluation page on a small set: the test's time does not grow with the sample


def small_set_bytes() -> bytes:
    return "".join(json.dumps({"question": q["question"], "relevant": q["relevant"]}) + "\n" for q in SMALL_SET).encode()


def test_evaluation_page_runs_eval_with_progress_per_retriever_and_clears_stale_results(sample_kb_dir, monkeypatch):
    at = open_app(sample_kb_dir, monkeypatch, page="pages/evaluation.py")
    at.radio(key="eval_source").set_value("Upload a JSONL file").run()
    at.file_uploader(key="eval_upload").set_value(("small.jsonl", small_set_bytes(), "application/json")).run()
    at.multiselect(key="eval_retrievers").set_value(["dense", "bm25"]).run()
    at.button(key="eval_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["retriever"]) == ["dense", "bm25"] and set(table["questions"]) == {len(SMALL_SET)}
    assert all(0.0 <= v <= 1.0 for v in table["recall@5"]) and table["recall@5"].max() > 0.5
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "no metrics plot"
    bars = [p.proto.text for p in at.get("progress")]
    assert bars == [
        f"dense: {len(SMALL_SET)} of {len(SMALL_SET)} questions (done)",
        f"bm25: {len(SMALL_SET)} of {len(SMALL_SET)} questions (done)",
    ]
    assert any(s.value.startswith("Results on small") for s in at.subheader)
    # another source, other retrievers or another k: the old table goes
    at.slider(key="eval_k").set_value(3).run()
    assert not any(s.value.startswith("Results on") for s in at.subheader)
    at.slider(key="eval_k").set_value(5).run()
    assert not any(s.value.startswith("Results on") for s in at.subheader), "a stale result is gone for good"
    at.button(key="eval_run").click().run()
    assert any(s.value.startswith("Results on small") for s in at.subheader)
    at.radio(key="eval_source").set_value("Sample questions (data/questions.jsonl)").run()
    assert not at.exception and not any(s.value.startswith("Results on") for s in at.subheader)


def test_conversations_survive_a_reload_and_are_listed_renamed_exported_and_deleted(kb_copy, monkeypatch):
    from kb import ConversationStore
    from kb.conversations import clean_title
    from ui.app.turns import TurnView, conversation_markdown, copy_text

    at = open_app(kb_copy, monkeypatch)
    ask(at, QUESTIONS[0]["question"])
    ask(at, QUESTIONS[1]["question"])
    session, conv = at.query_params["s"], at.query_params["c"]
    session = session[0] if isinstance(session, list) else session
    conv = conv[0] if isinstance(conv, list) else conv
    # A reload is a new Streamlit session with the same URL: the conversation comes back from the KB.
    again = AppTest.from_file(APP, default_timeout=600)
    again.query_params["s"], again.query_params["c"] = session, conv
    again.run()
    assert not again.exception
    assert [m.name for m in again.chat_message] == ["user", "assistant"] * 2
    questions = [b for b in html_bodies(again) if 'class="kb-question' in b]
    assert html.escape(QUESTIONS[1]["question"]) in questions[1]
    assert any("kb-cite" in b for b in html_bodies(again)), "the cited answer is drawn again"
    picker = again.sidebar.selectbox(key="conv_pick")
    assert picker.value == f"{clean_title(QUESTIONS[0]['question'])} (2)" and len(picker.options) == 1
    # rename
    again.sidebar.text_input(key="conv_title").input("Refunds for Acme")
    again.sidebar.button(key="conv_rename").click().run()
    assert again.sidebar.selectbox(key="conv_pick").value == "Refunds for Acme (2)"
    store = ConversationStore(kb_copy)
    assert store.get(conv).title == "Refunds for Acme"
    # export: Markdown with the citations as footnotes; the copy text carries the sources
    assert any(b.proto.label == "Export as Markdown" for b in again.sidebar.get("download_button"))
    turns = [TurnView.from_dict(t.answer) for t in store.turns(conv)]
    md = conversation_markdown("Refunds for Acme", turns)
    assert md.startswith("# Refunds for Acme") and "[^1-1]" in md and "\n[^1-1]: " in md
    assert turns[0].sources[0].doc_name.replace("-", "-") in md
    assert copy_text(turns[0]).splitlines()[-len(turns[0].sources) - 1] == "Sources:"
    # a new conversation, then the old one is still listed and can be picked again
    again.sidebar.button(key="conv_new").click().run()
    assert len(again.chat_message) == 0 and "c" not in again.query_params
    ask(again, QUESTIONS[2]["question"])
    assert len(again.sidebar.selectbox(key="conv_pick").options) == 2
    again.sidebar.selectbox(key="conv_pick").set_value("Refunds for Acme (2)").run()
    assert len(again.chat_message) == 4
    # delete
    again.sidebar.button(key="conv_delete").click().run()
    assert not again.exception and store.get(conv) is None and len(again.chat_message) == 0
    assert len(again.sidebar.selectbox(key="conv_pick").options) == 1
    # another browser session sees none of these
    other = AppTest.from_file(APP, default_timeout=600)
    other.run()
    assert not other.sidebar.get("selectbox") or all(s.key != "conv_pick" for s in other.sidebar.selectbox)


def test_a_follow_up_is_answered_with_the_saved_conversation_until_new_topic(kb_copy, monkeypatch):
    from kb import ConversationStore
    from ui.app.turns import TurnView

    at = open_app(kb_copy, monkeypatch)
    ask(at, "How long is the refund window?")
    ask(at, "and for annual plans?")
    conv = at.query_params["c"]
    conv = conv[0] if isinstance(conv, list) else conv
    follow = TurnView.from_dict(ConversationStore(kb_copy).turns(conv)[1].answer)
    # Read with the turn before it, the follow-up quotes the annual plans' refund rule (alone: their prices).
    assert not follow.abstained and "refund" in follow.sources[0].quote.lower(), follow.sources[0].quote
    at.button(key="kb-new-topic").click().run()
    ask(at, "and for annual plans?")
    fresh = TurnView.from_dict(ConversationStore(kb_copy).turns(conv)[2].answer)
    assert fresh.extra.get("new_topic") and "refund" not in fresh.sources[0].quote.lower()


def test_wrong_passwords_lock_the_sign_in_out_and_the_password_is_stored_memory_hard(kb_copy, monkeypatch):
    from ui.app import signin as app_signin
    from ui.launch import SIGN_IN_ENV, password_token

    token = password_token("correct horse battery")
    assert token.startswith("scrypt$") and "correct horse battery" not in token
    monkeypatch.setenv(SIGN_IN_ENV, token)
    app_signin._limiter.clear()
    try:
        at = open_app(kb_copy, monkeypatch)
        for _ in range(5):
            at.text_input(key="sign_in_password").input("wrong password")
            at.button[0].click().run()
            assert [e.value for e in at.error] == ["Wrong password."]
        # Locked out: even the right password is refused until the window has passed.
        at.text_input(key="sign_in_password").input("correct horse battery")
        at.button[0].click().run()
        assert not at.chat_input and "Too many wrong passwords" in at.error[0].value
    finally:
        app_signin._limiter.clear()


def test_a_link_to_another_sessions_conversation_is_refused(kb_copy, monkeypatch):
    from kb import ConversationStore

    store = ConversationStore(kb_copy)
    theirs = store.create("attacker-session-0123456789", title="Planted")
    store.add_turn(theirs.id, "planted question", {"question": "planted question"})
    at = AppTest.from_file(APP, default_timeout=600)
    monkeypatch.setenv(KB_DIR_ENV, str(kb_copy))
    at.query_params["s"], at.query_params["c"] = "victim-session-0123456789", theirs.id
    at.run()
    assert not at.exception
    assert any("another browser session" in w.value for w in at.warning)
    assert len(at.chat_message) == 0 and "c" not in at.query_params
    ask(at, QUESTIONS[0]["question"])
    assert store.get(theirs.id).n_turns == 1  # nothing was written into theirs
    assert at.query_params["c"] != theirs.id


def test_app_messages_name_the_kb_folder_without_its_server_path(tmp_path, monkeypatch):
    monkeypatch.setenv(KB_DIR_ENV, str(tmp_path / "team-kb"))
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    assert not at.exception
    shown = (" ".join(w.value for w in at.warning) + " ".join(e.value for e in at.error)).replace("\\", "")
    assert "no knowledge base at team-kb" in shown and str(tmp_path) not in shown, shown
