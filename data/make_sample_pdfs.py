"""Generate the PDF documents of the hopfield-kb sample knowledge base.

The sample knowledge base is the support documentation of "Tallyo", a
fictional invoicing and payments SaaS. All text below is original and was
written for this project (licence: MIT, same as the project).

This script writes three PDFs into data/docs/:

- service-level-agreement.pdf      (4 pages)
- privacy-policy.pdf               (3 pages)
- data-retention-and-deletion.pdf  (3 pages)

How to run (from the repository root)::

    .venv/bin/pip install fpdf2 pypdf      # once, if not installed yet
    .venv/bin/python -m data.make_sample_pdfs
    .venv/bin/python -m data.check_questions   # verify the question set

Options: ``--out DIR`` writes the PDFs somewhere else (default: data/docs
next to this script); ``--check`` also extracts every page with pypdf and
prints the number of words per page.

Output is deterministic for a given fpdf2 version: the creation date, the
producer string and all other metadata are fixed, and the PDF /ID is derived
by fpdf2 from the file content, so re-running the script gives the same
bytes. The text uses the core Helvetica font and plain ASCII only (no curly
quotes, no dashes other than '-'), and every page starts with an explicit page
break, so that text extraction is clean and the content of each page is
exactly what is planned below. Paragraphs are left-aligned (not justified) so
that extractors do not see stretched word spacing.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from data.sample_pdf_content import DOCUMENTS

FIXED_DATE = datetime(2025, 3, 1, 9, 0, 0, tzinfo=timezone.utc)
PRODUCER = "fpdf2 via hopfield-kb data/make_sample_pdfs.py"

# A document is a title plus a list of pages; a page is a list of blocks:
#   ("h1", text)  page heading        ("h2", text)  sub-heading
#   ("p", text)   paragraph           ("ul", [items])  bulleted list
#   ("table", [header_row, row, ...]) simple grid table


class TallyoPDF(FPDF):
    """FPDF subclass with a running footer naming the document and page."""

    doc_title = ""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 10, f"{self.doc_title} - page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def _check_ascii(doc: dict) -> None:
    def walk(obj):
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, (list, tuple)):
            for x in obj:
                yield from walk(x)
        elif isinstance(obj, dict):
            for x in obj.values():
                yield from walk(x)

    for text in walk(doc):
        bad = [c for c in text if ord(c) > 126 or (ord(c) < 32)]
        if bad:
            raise ValueError(f"non-ASCII text in {doc['file']}: {text[:60]!r}")


def _table(pdf: FPDF, rows: list[list[str]]) -> None:
    ncols = len(rows[0])
    width = pdf.epw / ncols
    for i, row in enumerate(rows):
        pdf.set_font("Helvetica", "B" if i == 0 else "", 10)
        for cell in row:
            pdf.cell(width, 7, cell, border=1)
        pdf.ln(7)
    pdf.ln(3)


def build(doc: dict, out_dir: Path) -> Path:
    _check_ascii(doc)
    pdf = TallyoPDF(format="A4")
    pdf.doc_title = doc["title"]
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_title(doc["title"])
    pdf.set_subject(doc["subject"])
    pdf.set_author("Tallyo Ltd (fictional company, hopfield-kb sample data)")
    pdf.set_creator("hopfield-kb data/make_sample_pdfs.py")
    pdf.set_producer(PRODUCER)
    pdf.set_keywords("Tallyo sample knowledge base")
    pdf.set_lang("en")
    pdf.set_creation_date(FIXED_DATE)

    for page in doc["pages"]:
        pdf.add_page()  # explicit page break: one planned page per add_page
        start_page = pdf.page_no()
        for kind, content in page:
            if kind == "h1":
                pdf.set_font("Helvetica", "B", 16)
                pdf.multi_cell(0, 8, content, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(3)
            elif kind == "h2":
                pdf.ln(1)
                pdf.set_font("Helvetica", "B", 12)
                pdf.multi_cell(0, 6.5, content, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1)
            elif kind == "p":
                pdf.set_font("Helvetica", "", 10.5)
                pdf.multi_cell(0, 5.2, content, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(2)
            elif kind == "ul":
                pdf.set_font("Helvetica", "", 10.5)
                for item in content:
                    pdf.set_x(pdf.l_margin + 4)
                    pdf.cell(5, 5.2, "-")
                    pdf.multi_cell(0, 5.2, item, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                    pdf.ln(0.8)
                pdf.ln(1.5)
            elif kind == "table":
                _table(pdf, content)
            else:
                raise ValueError(kind)
        if pdf.page_no() != start_page:
            raise RuntimeError(f"{doc['file']}: planned page {len(doc['pages'])} overflowed onto an extra page")

    out = out_dir / doc["file"]
    pdf.output(str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "docs")
    parser.add_argument("--check", action="store_true", help="extract pages with pypdf")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for doc in DOCUMENTS:
        path = build(doc, args.out)
        print(f"wrote {path} ({len(doc['pages'])} pages)")
        if args.check:
            from pypdf import PdfReader

            for i, page in enumerate(PdfReader(str(path)).pages, 1):
                text = page.extract_text() or ""
                print(f"  page {i}: {len(text.split())} words: {' '.join(text.split()[:8])} ...")


if __name__ == "__main__":
    main()
