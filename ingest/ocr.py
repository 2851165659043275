"""OCR for PDF pages without a text layer: render the page (pypdfium2), read it with Tesseract (pytesseract).

A scanned page has no text for pypdf to extract. Such a page is rendered to a grayscale image at
OcrConfig.dpi and read by Tesseract; the page keeps its number, and the mean word confidence
(0-1) is kept with its chunks so kb stats and citations can flag a page that was hard to read.
Tesseract is a Debian package (tesseract-ocr), not a Python one: without it, a file that needs
OCR is reported by name with the fix, and the rest of the run goes on.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Callable

from kb import usable_cpus

# A page is rendered at dpi unless that passes this many pixels (an A4 page at 300 dpi is 8.7 million):
# a hostile page 200 inches wide must not take gigabytes of the parse budget as one image.
MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class OcrConfig:
    """enabled: read scanned pages at all; dpi: render resolution (300 is Tesseract's sweet spot);
    language: Tesseract language codes ("eng", "eng+deu"), their traineddata installed;
    page_seconds: time limit for one page (a page over it is skipped with a warning, the rest goes on);
    max_pages: pages of one file read by OCR at most; tesseract_cmd: the Tesseract binary (name on PATH,
    or a path); workers: pages read at once (default: the CPU count, at most 4). A page whose mean word
    confidence is under kb.OCR_LOW_CONFIDENCE is flagged."""

    enabled: bool = True
    dpi: int = 300
    language: str = "eng"
    page_seconds: float = 60.0
    max_pages: int = 500
    workers: int | None = None
    tesseract_cmd: str = "tesseract"

    def __post_init__(self) -> None:
        from kb import KBError

        if not 72 <= self.dpi <= 600:
            raise KBError(f"OCR dpi must be between 72 and 600, not {self.dpi} (300 suits Tesseract)")
        if self.workers is not None and self.workers < 1:
            raise KBError(f"OCR workers must be at least 1, not {self.workers}")
        if not self.page_seconds > 0 or self.max_pages < 1:
            raise KBError(f"OCR needs page_seconds > 0 and max_pages >= 1, not {self.page_seconds}, {self.max_pages}")


@dataclass(frozen=True)
class OcrPage:
    """text: lines as Tesseract read them, paragraphs separated by blank lines; confidence: mean word
    confidence weighted by word length, 0-1 (0 when no word was read); seconds: wall time of the page."""

    text: str
    confidence: float
    seconds: float


class OcrUnavailable(Exception):
    """Tesseract is not installed (or not runnable): str() says how to install it."""


class OcrTimeout(Exception):
    """One page took longer than OcrConfig.page_seconds."""


def check_tesseract(config: OcrConfig) -> None:
    """Raise OcrUnavailable naming the fix when config.tesseract_cmd cannot be run."""
    if shutil.which(config.tesseract_cmd) is None:
        raise OcrUnavailable(
            f"Tesseract ({config.tesseract_cmd!r}) is not installed: install Debian's tesseract-ocr "
            "package (`apt-get install tesseract-ocr`) and sync again"
        )


def read_pages(
    data: bytes, numbers: list[int], config: OcrConfig, on_page: Callable[[float], None] | None = None
) -> dict[int, OcrPage | str]:
    """OCR of the 1-based pages `numbers` of the PDF in data: page -> OcrPage, or a one-line reason it was
    skipped. on_page(seconds) is called before each page with its time limit (the parse worker extends
    its deadline by it). Raises OcrUnavailable without Tesseract."""
    from concurrent.futures import ThreadPoolExecutor

    import pypdfium2 as pdfium

    check_tesseract(config)
    out: dict[int, OcrPage | str] = {}
    workers = config.workers or min(usable_cpus(), 4)
    pdf = pdfium.PdfDocument(data, password="")
    try:
        # Tesseract runs one thread per page (see read_image), so pages are read side by side, a window
        # of `workers` at a time: pdfium renders here (it is not thread-safe), at most that many images
        # are held at once, and each Tesseract process works while the GIL is free.
        with ThreadPoolExecutor(workers) as pool:
            todo = numbers[: config.max_pages]
            for start in range(0, len(todo), workers):
                window = todo[start : start + workers]
                images = []
                for number in window:
                    if on_page is not None:
                        on_page(config.page_seconds)
                    images.append(_render(pdf, number, config.dpi))
                for number, result in zip(window, pool.map(lambda image: _read_or_reason(image, config), images)):
                    out[number] = result
        for number in numbers[config.max_pages :]:
            out[number] = f"past the {config.max_pages} pages OCR reads in one file"
    finally:
        pdf.close()
    return out


def _render(pdf, number: int, dpi: int):
    """Page number (1-based) of a pypdfium2 document as a grayscale PIL image at dpi, under MAX_PIXELS."""
    page = pdf[number - 1]
    try:
        width, height = page.get_size()  # points, 1/72 inch
        scale = min(dpi / 72, (MAX_PIXELS / max(width * height, 1.0)) ** 0.5)
        return page.render(scale=scale, grayscale=True).to_pil()
    finally:
        page.close()


def _read_or_reason(image, config: OcrConfig) -> OcrPage | str:
    try:
        return read_image(image, config)
    except OcrTimeout:
        return f"OCR took over the {config.page_seconds:g} s page limit"


def read_image(image, config: OcrConfig) -> OcrPage:
    """Tesseract's reading of one PIL image; raises OcrTimeout past config.page_seconds."""
    import time

    import pytesseract

    # Tesseract's OpenMP threads spin against each other on a busy machine (a 2 s page took 30 s
    # with both cores loaded); one thread per page is the fast setting here.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    pytesseract.pytesseract.tesseract_cmd = config.tesseract_cmd
    started = time.perf_counter()
    try:
        data = pytesseract.image_to_data(
            image, lang=config.language, timeout=config.page_seconds, output_type=pytesseract.Output.DICT
        )
    except RuntimeError as exc:  # pytesseract's timeout
        raise OcrTimeout(str(exc)) from None
    except pytesseract.TesseractNotFoundError as exc:
        raise OcrUnavailable(
            f"Tesseract ({config.tesseract_cmd!r}) could not be run: install Debian's tesseract-ocr package"
        ) from exc
    text, confidence = words_to_text(data)
    return OcrPage(text=text, confidence=confidence, seconds=time.perf_counter() - started)


def words_to_text(data: dict[str, list]) -> tuple[str, float]:
    """(text, confidence) from pytesseract's image_to_data dict: words joined by spaces within a line,
    lines by newlines, paragraphs and blocks by blank lines; confidence is the length-weighted mean
    word confidence, 0-1."""
    paragraphs: dict[tuple[int, int], dict[int, list[str]]] = {}
    weighted = chars = 0.0
    for word, conf, block, par, line in zip(
        data["text"], data["conf"], data["block_num"], data["par_num"], data["line_num"]
    ):
        word = (word or "").strip()
        if not word:
            continue
        paragraphs.setdefault((block, par), {}).setdefault(line, []).append(word)
        if float(conf) >= 0:
            weighted += float(conf) * len(word)
            chars += len(word)
    text = "\n\n".join("\n".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values())
    return text, (weighted / chars / 100.0 if chars else 0.0)
