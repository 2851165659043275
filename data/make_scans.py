"""Scanned copies of the sample knowledge base: each document typeset as a PDF, then rendered to page images.

The OCR tests and bench/bench_ocr.py need scans whose true text is known. A document is first
typeset as a born-digital PDF (fpdf2, its loaded text, Helvetica 11 pt; the three sample PDFs are
used as they are), then every page is rendered to a grayscale image (pypdfium2) and the images
are saved as an image-only PDF (Pillow): no text layer, as a scanner or fax makes it.

    .venv/bin/pip install fpdf2          # a test dependency
    .venv/bin/python -m data.make_scans --out /tmp/scans     # writes born-digital/ and scanned/
"""

from __future__ import annotations

import argparse
import io
from datetime import datetime, timezone
from pathlib import Path

SCAN_DPI = 300


def typeset(title: str, text: str) -> bytes:
    """A born-digital PDF of text (paragraphs at blank lines) under title: A4, Helvetica 11 pt."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_creation_date(datetime(2025, 3, 1, tzinfo=timezone.utc))  # the same bytes every run
    pdf.set_title(_latin1(title))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.multi_cell(0, 7, _latin1(title))
    pdf.ln(3)
    pdf.set_font("Helvetica", size=11)
    for paragraph in text.split("\n\n"):
        if paragraph.strip():
            pdf.multi_cell(0, 5.5, _latin1(" ".join(paragraph.split())))
            pdf.ln(2.5)
    return bytes(pdf.output())


def _latin1(text: str) -> str:
    # The core fonts cover Latin-1: typographic quotes and dashes become their ASCII forms.
    table = str.maketrans(
        {
            "\u2014": "-",
            "\u2013": "-",
            "\u2018": "'",
            "\u2019": "'",
            "\u201c": '"',
            "\u201d": '"',
            "\u2026": "...",
            "\u2192": "->",
            "\u2022": "-",
            "\u00a0": " ",
        }
    )
    return text.translate(table).encode("latin-1", "replace").decode("latin-1")


def scanned_copy(pdf: bytes, dpi: int = SCAN_DPI, scan_dpi: int | None = None) -> bytes:
    """An image-only PDF of pdf's pages rendered at dpi (grayscale), the page size kept; scan_dpi
    below dpi stores the images at that lower resolution (a poor scan)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    images = []
    try:
        for page in doc:
            image = page.render(scale=dpi / 72, grayscale=True).to_pil()
            if scan_dpi and scan_dpi < dpi:
                image = image.resize((round(image.width * scan_dpi / dpi), round(image.height * scan_dpi / dpi)))
            images.append(image)
            page.close()
    finally:
        doc.close()
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=scan_dpi or dpi)
    return out.getvalue()


def born_digital(path: Path) -> bytes:
    """path as a born-digital PDF: a PDF as it is; any other sample document typeset from its loaded text."""
    from ingest import load

    data = path.read_bytes()
    if path.suffix.lower() == ".pdf":
        return data
    parsed = load(path, data)
    return typeset(parsed.title, parsed.text)


def main() -> None:
    from data import SAMPLE_DOCS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=SAMPLE_DOCS)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dpi", type=int, default=SCAN_DPI)
    args = parser.parse_args()
    for kind in ("born-digital", "scanned"):
        (args.out / kind).mkdir(parents=True, exist_ok=True)
    for path in sorted(args.docs.iterdir()):
        pdf = born_digital(path)
        (args.out / "born-digital" / f"{path.stem}.pdf").write_bytes(pdf)
        (args.out / "scanned" / f"{path.stem}.pdf").write_bytes(scanned_copy(pdf, args.dpi))
        print(path.name)


if __name__ == "__main__":
    main()
