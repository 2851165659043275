"""The Streamlit app's pages through AppTest (no browser): chat, diagnostics, feedback, KB page, errors."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from kb import KnowledgeBase
from tests.helpers import read_questions
from ui.ui_command import KB_DIR_ENV, SOURCES_ENV

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
QUESTIONS = read_questions(SAMPLE_QUESTIONS)


def open_app(kb_dir: Path, monkeypatch, page: str | None = None) -> AppTest:
    monkeypatch.setenv(KB_DIR_ENV, str(kb_dir))
    at = AppTest.from_file(APP, default_timeout=120)
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
    assert "page" in labels[0] and q["relevant"][0].replace("-", "\\-").replace(".", "\\.") in labels[0]
    assert f"page {q['page']}" in labels[0]
    bodies = html_bodies(at)
    answer = next(b for b in bodies if 'class="kb-answer' in b)
    assert 'href="#src-0-1"' in answer
    passage = next(b for b in bodies if 'class="kb-passage' in b)
    assert "<mark" in passage and passage.count("<mark") == 1
    # the page for that source offers the PDF page and the original file
    downloads = [b.proto.label for b in at.expander[0].get("download_button")]
    assert f"Open page {q['page']} (PDF)" in downloads and "Original document" in downloads


def test_sidebar_shows_hopfield_diagnostics_and_says_when_a_retriever_has_none(sample_kb_dir, monkeypatch):
    at = ask(open_app(sample_kb_dir, monkeypatch), QUESTIONS[1]["question"])
    metrics = {m.label: m.value for m in at.sidebar.get("metric")}
    assert {"Evidence", "Threshold", "Steps", "Converged", "Attention entropy", "Candidates"} <= set(metrics)
    assert int(metrics["Steps"]) >= 1
    assert at.sidebar.get("arrow_vega_lite_chart") or at.sidebar.get("vega_lite_chart"), "no energy plot"
    at.sidebar.selectbox(key="set_retriever").set_value("bm25").run()
    ask(at, QUESTIONS[2]["question"])
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "no Hopfield diagnostics" in captions
    assert len([m for m in at.chat_message if m.name == "assistant"]) == 2  # history kept


def test_out_of_scope_question_says_not_found_and_lists_closest_passages(sample_kb_dir, monkeypatch):
    at = ask(open_app(sample_kb_dir, monkeypatch), "Who is the CEO of Tallyo?")
    assert any("Not found in the knowledge base." in b for b in html_bodies(at))
    assert 1 <= len(at.expander) <= 3
    assert any("closest passages" in c.value for c in at.caption)


def test_punctuation_only_question_shows_a_clear_error_not_a_traceback(sample_kb_dir, monkeypatch):
    at = ask(open_app(sample_kb_dir, monkeypatch), "?!")
    assert not at.exception
    assert any("empty or only punctuation" in e.value for e in at.error)


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
    at = ask(open_app(kb_copy, monkeypatch), q["question"])
    at.get("feedback")[0].set_value(1).run()
    assert not at.exception
    kb = KnowledgeBase(kb_copy)
    rows = kb.feedback()
    assert rows and all(r.helpful and r.question == q["question"] for r in rows)
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
    from ui.ui_command import SIGN_IN_ENV, sign_in_token

    monkeypatch.setenv(SIGN_IN_ENV, sign_in_token("correct horse battery"))
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
    assert set(at.file_uploader[0].allowed_type) == {".pdf", ".md", ".markdown", ".html", ".htm", ".txt"}
    at.file_uploader[0].set_value([("../../evil <b>name.md", body, "text/markdown"),
                                   ("empty.txt", b"  \n", "text/plain")]).run()
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
    payload = ('Widget resets: the Frobnicator widget resets every night at 02:00 <script>window.pwned=1</script> '
               'and [click here](javascript:alert(1)) **bold** <img src=x onerror="window.pwned=2">.')
    doc.write_text("Tricky widget notes\n\n" + payload + "\n")
    ingest([doc], kb_copy, IngestConfig(), embedder=embedder)
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


def test_evaluation_page_runs_eval_on_the_sample_questions_and_plots_it(sample_kb_dir, monkeypatch):
    at = open_app(sample_kb_dir, monkeypatch, page="pages/evaluation.py")
    at.multiselect(key="eval_retrievers").set_value(["dense", "bm25"]).run()
    at.button[0].click().run()  # Run evaluation
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["retriever"]) == ["dense", "bm25"] and set(table["questions"]) == {len(QUESTIONS)}
    assert all(0.0 <= v <= 1.0 for v in table["recall@5"]) and table["recall@5"].max() > 0.5
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "no metrics plot"
