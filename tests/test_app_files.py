"""Upload names, size limits, PDF pages and feedback export: the app's file handling without a browser."""

from __future__ import annotations

import pytest
from pypdf import PdfReader

from kb import KBError, KnowledgeBase
from tests.helpers import make_pdf
from ui.app.files import feedback_questions, original_document, pdf_page, safe_upload_name, save_upload
from ui.app.render import highlight_html, md_escape


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("refund-policy.md", "refund-policy.md"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\win.ini.txt", "win.ini.txt"),
        ("/abs/path/Report 2024.PDF", "Report 2024.pdf"),
        (".hidden.md", "hidden.md"),
        ("a<script>b.html", "a_script_b.html"),
        ("x</script>.html", "script.html"),
        ("ｆｕｌｌｗｉｄｔｈ.txt", "fullwidth.txt"),
    ],
)
def test_upload_names_lose_directories_and_odd_characters(raw, safe):
    assert safe_upload_name(raw) == safe


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("tool.exe", "not allowed"),
        ("notes", "not allowed"),
        ("archive.md.zip", "not allowed"),
        ("../.md", "no usable characters"),
        ("<>.txt", "no usable characters"),
    ],
)
def test_upload_names_that_cannot_be_used_are_refused_with_the_reason(raw, reason):
    with pytest.raises(KBError, match=reason):
        safe_upload_name(raw)


def test_long_upload_names_are_shortened_keeping_the_extension():
    name = safe_upload_name("x" * 500 + ".md")
    assert len(name) <= 120 and name.endswith(".md")


def test_saved_uploads_stay_inside_the_uploads_folder_and_respect_the_size_limit(tmp_path):
    dest = save_upload(tmp_path, "../../../outside.md", b"# hi\n\nbody text\n")
    assert dest == (tmp_path / "uploads" / "outside.md").resolve() and dest.read_bytes().startswith(b"# hi")
    assert not (tmp_path.parent / "outside.md").exists()
    with pytest.raises(KBError, match="over the 1 MB upload limit"):
        save_upload(tmp_path, "big.txt", b"x" * (2 * 2**20), max_mb=1)


def test_pdf_page_download_holds_exactly_that_page(tmp_path, sample_kb):
    pdf = make_pdf(tmp_path / "three.pdf", ["first page text", "second page says refunds", "third page"])
    one = pdf_page(pdf.read_bytes(), 2)
    reader = PdfReader(__import__("io").BytesIO(one))
    assert len(reader.pages) == 1 and "second page says refunds" in reader.pages[0].extract_text()
    assert pdf_page(pdf.read_bytes(), 9) is None
    downloads = original_document(sample_kb, str(pdf), pdf.name, page=2)
    assert [d.label for d in downloads] == ["Open page 2 (PDF)", "Original document"]
    assert downloads[0].data() == one and downloads[1].data() == pdf.read_bytes()


def test_a_removed_original_falls_back_to_the_stored_text(kb_copy, tmp_path, embedder):
    from ingest import IngestConfig, ingest

    src = tmp_path / "moving-notes.md"
    src.write_text("# Moving notes\n\nThe archive room moved to the third floor in March.\n")
    ingest(kb_copy, [src], IngestConfig(), embedder=embedder)
    kb = KnowledgeBase(kb_copy)
    doc = kb.document("moving-notes.md")
    assert original_document(kb, doc.source, doc.name, None)[-1].data() == src.read_bytes()
    src.unlink()
    fallback = original_document(kb, doc.source, doc.name, None)
    assert [d.label for d in fallback] == ["Document text (original file not found)"]
    assert fallback[0].data().decode() == kb.document_text(doc.id) and fallback[0].file_name == "moving-notes.txt"
    assert original_document(kb, str(tmp_path / "never-ingested.md"), "never-ingested.md", None) == []


def test_feedback_export_keeps_confirmed_documents_and_a_later_thumbs_down_cancels(kb_copy):
    kb = KnowledgeBase(kb_copy)
    docs = kb.documents()
    kb.add_feedback("q one", None, docs[0].source, True)
    kb.add_feedback("q one", None, docs[1].source, True)
    kb.add_feedback("q two", None, docs[2].source, True)
    kb.add_feedback("q two", None, docs[2].source, False)
    kb.add_feedback("q three", None, None, False)
    records = feedback_questions(kb)
    assert [(r["question"], r["relevant"]) for r in records] == [("q one", [docs[0].name, docs[1].name])]


def test_highlighted_passages_are_inert_html():
    text = "Intro <script>alert(1)</script> then the answer & more [x](javascript:y)"
    start = text.index("then")
    out = highlight_html(text, start, start + len("then the answer"))
    assert "<script>" not in out and "&lt;script&gt;" in out and "&amp; more" in out
    assert '<mark class="kb-quote"' in out and ">then the answer</mark>" in out
    assert md_escape("[x](javascript:y) **b**") == r"\[x\]\(javascript\:y\) \*\*b\*\*"
