"""PDF: the text layer page by page (pypdf), ruled tables (pdfplumber, ingest/pdf_tables.py) and OCR for
pages without text (Tesseract, ingest/ocr.py); each page a block that remembers its number.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable

from ingest.ocr import OcrConfig
from ingest.parsed import Block, LoadError, ParsedText, first_line, joined_blocks
from kb import OCR_LOW_CONFIDENCE

MIN_TEXT_LAYER = 20  # characters: a scanned page may carry a stamped page number or fax header, not its text
# Rectangles and lines drawn on a page (its content stream's re / l operators) before pdfplumber looks
# for a ruled table there: its layout analysis costs ~0.1 s a page, too much for every page of a
# 1,000-page manual, and a table of a header and one row draws at least this many.
MIN_TABLE_RULES = 4
_RULE_OPERATOR = re.compile(rb"\s(?:re|l)\s")


def load_pdf(
    path: Path, data: bytes, ocr: OcrConfig | None = None, on_ocr_page: Callable[[float], None] | None = None
) -> ParsedText:
    """One block per page with text; pages joined by blank lines. Encrypted PDFs open
    when their user password is empty; otherwise the error says a password is needed.
    Pages with a ruled table are re-read with it as row lines (ingest.pdf_tables); pages without a
    text layer are read by OCR (ingest.ocr), their blocks carrying the page's confidence."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    ocr = ocr or OcrConfig()
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (NotImplementedError, DependencyError) as exc:
                raise LoadError(path, f"encrypted PDF that cannot be decrypted here ({exc})") from exc
            if not opened:
                raise LoadError(path, "password-protected PDF: a password is needed to read it")
        pages, scanned, ruled = [], [], []
        for number, page in enumerate(reader.pages, start=1):
            text = _clean_pdf_text(page.extract_text() or "")
            if len(text) < MIN_TEXT_LAYER and len(page.images):
                scanned.append(number)
            elif text and _drawn_rules(page) >= MIN_TABLE_RULES:
                ruled.append(number)
            pages.append((number, text))
        title = ""
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title).strip()
    except LoadError:
        raise
    except DependencyError as exc:
        raise LoadError(path, f"encrypted PDF needs an extra package to open: {exc}") from exc
    except FileNotDecryptedError as exc:
        raise LoadError(path, "password-protected PDF: a password is needed to read it") from exc
    except RecursionError as exc:
        raise LoadError(path, "corrupt PDF: object structure too deeply nested") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, AssertionError) as exc:
        raise LoadError(path, f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from exc
    texts = dict(pages)
    texts.update({n: _clean_pdf_text(t) for n, t in _tables(path, data, ruled).items()})
    confidence, warnings = _read_scans(path, data, scanned, texts, ocr, on_ocr_page)
    full, blocks = joined_blocks(
        (Block(0, 0, page=number, ocr_confidence=confidence.get(number)), texts[number]) for number, _ in pages
    )
    if not blocks:
        reason = warnings[0] if warnings else "scanned images need OCR"
        raise LoadError(path, f"PDF has {len(pages)} page(s) but no extractable text: {reason}")
    return ParsedText(
        title=title or first_line(full) or path.stem,
        kind="pdf",
        text=full,
        blocks=blocks,
        warnings=tuple(f"{path}: {w}" for w in warnings),
    )


def _drawn_rules(page) -> int:
    """Rectangles and lines drawn directly in a page's content stream (its first 4 MB)."""
    contents = page.get_contents()
    if contents is None:
        return 0
    return len(_RULE_OPERATOR.findall(contents.get_data()[: 4 << 20]))


def _tables(path: Path, data: bytes, numbers: list[int]) -> dict[int, str]:
    """Pages re-read with their tables as rows; {} where pdfplumber cannot read the file (pypdf's text stands)."""
    if not numbers:
        return {}
    from ingest.pdf_tables import pages_with_tables

    try:
        return pages_with_tables(data, numbers)
    except Exception as exc:  # noqa: BLE001 - a second parser's failure must not lose the text pypdf read
        logging.getLogger(__name__).info("%s: table detection skipped (%s: %s)", path, type(exc).__name__, exc)
        return {}


def _read_scans(
    path: Path,
    data: bytes,
    scanned: list[int],
    texts: dict[int, str],
    ocr: OcrConfig,
    on_page: Callable[[float], None] | None,
) -> tuple[dict[int, float], list[str]]:
    """OCR the scanned pages into texts; (page -> confidence, reasons naming pages skipped or hard to read)."""
    if not scanned:
        return {}, []
    pages = _page_list(scanned)
    if not ocr.enabled:
        return {}, [f"page(s) {pages} have no text layer and need OCR, which is turned off"]
    from ingest.ocr import OcrPage, OcrUnavailable, read_pages

    try:
        read = read_pages(data, scanned, ocr, on_page)
    except OcrUnavailable as exc:
        return {}, [f"page(s) {pages} have no text layer and need OCR: {exc}"]
    except Exception as exc:  # noqa: BLE001 - pdfium refusing a page pypdf read: the text pages still count
        return {}, [f"page(s) {pages} have no text layer and could not be rendered for OCR ({type(exc).__name__}: {exc})"]
    confidence: dict[int, float] = {}
    low: list[int] = []
    skipped: dict[str, list[int]] = {}  # reason -> pages: a 2,000-page fax gets one line per reason, not 2,000
    for number, result in read.items():
        if isinstance(result, OcrPage):
            texts[number] = _clean_pdf_text(result.text)
            confidence[number] = round(result.confidence, 4)
            if result.confidence < OCR_LOW_CONFIDENCE and texts[number]:
                low.append(number)
        else:
            skipped.setdefault(result, []).append(number)
    warnings = [
        f"{_pages(numbers)} {'has' if len(numbers) == 1 else 'have'} no text layer and "
        f"{'was' if len(numbers) == 1 else 'were'} skipped: {reason}"
        for reason, numbers in skipped.items()
    ]
    if low:
        scores = ", ".join(f"{confidence[n]:.0%}" for n in low[:10])
        warnings.append(
            f"{_pages(low)} read by OCR with low confidence ({scores}; under "
            f"{OCR_LOW_CONFIDENCE:.0%}): check against the scan"
        )
    return confidence, warnings


def _pages(numbers: list[int]) -> str:
    """ "page 3" or "pages 3, 4, ... and 9 more": the pages a warning is about."""
    return f"page {numbers[0]}" if len(numbers) == 1 else f"pages {_page_list(numbers)}"


def _page_list(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def _clean_pdf_text(text: str) -> str:
    # Trailing spaces and runs of blank lines are layout noise, not content.
    text = re.sub(r"[ \t]+\n", "\n", text.replace("\r\n", "\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# ---- Markdown --------------------------------------------------------------------
