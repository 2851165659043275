"""Files in and out of the app: checked uploads, the original document of a citation, feedback as a labelled set.

(A thumbs up or down itself is stored by retriever.record_feedback, the one function the API calls too.)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ingest import ALLOWED_EXTENSIONS, MAX_UPLOAD_MB, MIME, safe_upload_name, save_upload, upload_dir  # noqa: F401
from kb import KnowledgeBase


@dataclass(frozen=True)
class Download:
    """A download button's content: data() reads the bytes only when the user clicks."""

    data: Callable[[], bytes]
    file_name: str
    mime: str
    label: str


def _read(path: Path) -> Callable[[], bytes]:
    return lambda: path.read_bytes()


def _page_of(path: Path, page: int) -> Callable[[], bytes]:
    return lambda: pdf_page(path.read_bytes(), page) or path.read_bytes()


def original_document(kb: KnowledgeBase, doc_source: str, doc_name: str, page: int | None) -> list[Download]:
    """Ways to open a cited document: the page of a PDF on its own, the original file, or the stored text.

    The original is read from the path it was ingested from (on click, not now); when that file is
    gone the KB's extracted text is offered instead.
    """
    doc = kb.document(doc_source)
    path = Path(doc.path or doc.source) if doc is not None else Path(doc_source)
    out: list[Download] = []
    if path.is_file():
        ext = path.suffix.lower()
        if ext == ".pdf" and page is not None:
            out.append(
                Download(_page_of(path, page), f"{path.stem}-page-{page}.pdf", "application/pdf", f"Open page {page} (PDF)")
            )
        out.append(Download(_read(path), path.name, MIME.get(ext, "application/octet-stream"), "Original document"))
        return out
    if doc is not None:
        doc_id = doc.id
        out.append(
            Download(
                lambda: kb.document_text(doc_id).encode("utf-8"),
                f"{Path(doc_name).stem}.txt",
                "text/plain",
                "Document text (original file not found)",
            )
        )
    return out


def pdf_page_of(kb: KnowledgeBase, doc_source: str, page: int) -> bytes | None:
    """Page `page` (1-based) of a cited PDF as its own PDF, read from where it was ingested; None when the file
    is gone or unreadable."""
    doc = kb.document(doc_source)
    path = Path(doc.path or doc.source) if doc is not None else Path(doc_source)
    if not path.is_file() or path.suffix.lower() != ".pdf":
        return None
    return pdf_page(path.read_bytes(), page)


def pdf_page(data: bytes, page: int) -> bytes | None:
    """One page (1-based) of a PDF as its own PDF, or None if the PDF cannot be read."""
    from pypdf import PdfReader, PdfWriter

    try:
        reader = PdfReader(io.BytesIO(data))
        if not 1 <= page <= len(reader.pages):
            return None
        writer = PdfWriter()
        writer.add_page(reader.pages[page - 1])
        buf = io.BytesIO()
        writer.write(buf)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - encrypted or damaged: the whole file is still offered
        return None


def feedback_questions(kb: KnowledgeBase) -> list[dict]:
    """Questions whose cited passages were confirmed helpful, as eval's labelled-set records.

    A later thumbs-down on the same question cancels earlier thumbs-ups. Each record:
    {"id", "question", "relevant": [document file names], "source": "feedback"}.
    """
    confirmed: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for fb in kb.feedback():
        if not fb.helpful:
            confirmed[fb.question] = []
            continue
        if not fb.doc_source:
            continue
        if fb.doc_source not in names:
            doc = kb.document(fb.doc_source)
            names[fb.doc_source] = doc.name if doc else Path(fb.doc_source).name
        docs = confirmed.setdefault(fb.question, [])
        if names[fb.doc_source] not in docs:
            docs.append(names[fb.doc_source])
    return [
        {"id": f"fb{i:04d}", "question": q, "relevant": docs, "source": "feedback"}
        for i, (q, docs) in enumerate(((q, d) for q, d in confirmed.items() if d), start=1)
    ]


def feedback_jsonl(kb: KnowledgeBase) -> str:
    return "".join(json.dumps(r) + "\n" for r in feedback_questions(kb))
