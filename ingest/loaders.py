"""Turn a file into text plus blocks that remember page (PDF) or section heading.

Every loader returns a ParsedText whose blocks are character spans into
ParsedText.text, so a chunk cut from a block can cite its exact source span.
Unreadable input raises LoadError naming the file and the reason.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ingest.exports import ConfluencePage, confluence_page, content_hash
from ingest.ocr import OcrConfig
from ingest.parsed import Block, LoadError, ParsedText  # re-exported: loaders return these
from ingest.tables import html_table_lines, markdown_tables
from kb import OCR_LOW_CONFIDENCE

SUPPORTED = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".docx": "docx",
}
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


MAX_LABEL = 200  # characters of a title or section name: a 1.2 MB heading is not a title
MAX_HTML_DEPTH = 5000  # element nesting: the HTML parser's cost grows with its square (3,000 levels: ~2 s)


def kind_of(path: Path) -> str | None:
    """ "pdf", "markdown", "html", "text", "docx", or None for unsupported extensions."""
    return SUPPORTED.get(path.suffix.lower())


def load(
    path: Path, data: bytes, ocr: OcrConfig | None = None, on_ocr_page: Callable[[float], None] | None = None
) -> ParsedText:
    """Parse data (the bytes of path) by the file's extension. ocr: how PDF pages without a text layer
    are read (default OcrConfig()); on_ocr_page(seconds): called before each OCR page with its time limit."""
    kind = kind_of(path)
    if kind is None:
        raise LoadError(
            path, f"unsupported file type {path.suffix or '(no extension)'!r}; supported: {', '.join(sorted(SUPPORTED))}"
        )
    if not data.strip():
        raise LoadError(path, "empty file")
    if kind == "pdf":
        return _capped(load_pdf(path, data, ocr, on_ocr_page))
    if kind == "docx":
        from ingest.docx_loader import load_docx

        return _capped(load_docx(path, data))
    text, encoding, warnings = decode_text(path, data)
    if kind == "markdown":
        parsed = load_markdown(path, text, warnings)
    elif kind == "html":
        parsed = load_html(path, text, warnings)
    else:
        parsed = _single_block(path, text.strip("\ufeff"), "text", _first_line(text) or path.stem, warnings)
    return replace(_capped(parsed), encoding=encoding)


def _label(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_LABEL:
        return text
    return text[: MAX_LABEL - 1].rstrip() + "…"


def _capped(parsed: ParsedText) -> ParsedText:
    blocks = tuple(replace(b, section=_label(b.section)) for b in parsed.blocks)
    return replace(parsed, title=_label(parsed.title) or "", blocks=blocks)


BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(path: Path, data: bytes) -> tuple[str, str, tuple[str, ...]]:
    """(text, encoding, warnings). A byte-order mark (UTF-8/16/32) decides; else UTF-8; else the encoding
    charset-normalizer detects, with a warning. Binary data, or text whose encoding cannot be told with
    confidence, raises LoadError."""
    for bom, encoding in BOMS:  # UTF-32 LE's mark starts with UTF-16 LE's: longest first
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding.removesuffix("-sig"), ()
            except UnicodeDecodeError as exc:
                raise LoadError(
                    path, f"starts with a {encoding} byte-order mark but is not valid {encoding} (byte {exc.start})"
                ) from None
    nul = b"\x00" in data[:65536]
    if not nul:
        try:
            return _not_binary(path, data.decode("utf-8"), share=0.1), "utf-8", ()
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    results = from_bytes(data[: 1 << 20])
    best = results.best()
    if best is not None:
        # Short texts fit several single-byte code pages equally well (cp1250, cp1252, cp1257 all read
        # "crème" without error, differently); among equals, the commonest Western one wins.
        best = next(
            (
                m
                for m in results
                if m.encoding == "cp1252" and m.chaos <= best.chaos + 0.01 and m.coherence >= best.coherence - 0.01
            ),
            best,
        )
    if nul and (best is None or not (best.encoding or "").startswith(("utf_16", "utf_32"))):
        # NUL bytes belong to UTF-16/32 text (which charset-normalizer recognises without a mark) or to binary.
        raise LoadError(path, "binary content (NUL bytes) in a text file")
    if best is None or best.encoding is None:
        raise LoadError(
            path,
            "cannot tell the text encoding (not UTF-8, no byte-order mark, and no legacy "
            "encoding fits with confidence); save it as UTF-8",
        )
    try:
        text = data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise LoadError(path, f"cannot tell the text encoding ({best.encoding} was likeliest but fails: {exc})") from None
    if best.chaos > 0.3:
        raise LoadError(path, "binary content: not UTF-8, and no text encoding reads it cleanly")
    return _not_binary(path, text), best.encoding, (f"{path}: not valid UTF-8; read as {best.encoding} (detected)",)


def _not_binary(path: Path, text: str, share: float = 0.01) -> str:
    """text, unless more than share of its first 64K characters are control characters (binary data).
    Valid UTF-8 gets a lenient share: a few form feeds or separators are real text."""
    head = text[:65536]
    controls = sum(1 for ch in head if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > share * max(len(head), 1):
        raise LoadError(path, "binary content: full of control bytes, not text")
    return text


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip(" #\t")
        if line:
            return line[:120]
    return ""


def _single_block(path: Path, text: str, kind: str, title: str, warnings: tuple[str, ...] = ()) -> ParsedText:
    if not text.strip():
        raise LoadError(path, "no text content")
    return ParsedText(title=title, kind=kind, text=text, blocks=(Block(0, len(text)),), warnings=warnings)


# ---- PDF -------------------------------------------------------------------------
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
    parts: list[str] = []
    blocks: list[Block] = []
    offset = 0
    for number, _ in pages:
        text = texts[number]
        if not text.strip():
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(text)
        blocks.append(Block(offset, offset + len(text), page=number, ocr_confidence=confidence.get(number)))
        offset += len(text)
    if not blocks:
        reason = warnings[0] if warnings else "scanned images need OCR"
        raise LoadError(path, f"PDF has {len(pages)} page(s) but no extractable text: {reason}")
    full = "".join(parts)
    return ParsedText(
        title=title or _first_line(full) or path.stem,
        kind="pdf",
        text=full,
        blocks=tuple(blocks),
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
FRONT_MATTER = re.compile(r"\A(?:\ufeff)?---\s*\n.*?\n(?:---|\.\.\.)\s*(?:\n|\Z)", re.S)
TEMPLATE_TAGS = re.compile(r"\{%-?.*?-?%\}|\{\{-?.*?-?\}\}", re.S)
MD_LINE_BREAK = re.compile(r"\r\n?|\n")


def load_markdown(path: Path, text: str, warnings: tuple[str, ...] = ()) -> ParsedText:
    """Sections split at headings (the heading text is the section title). YAML front
    matter and Liquid/Jinja template tags are dropped; pipe tables become one line per row
    that keeps its header (ingest.tables); the title comes from the front matter's title,
    the first top-level heading, or the file name."""
    from markdown_it import MarkdownIt

    fm_title = ""
    match = FRONT_MATTER.match(text)
    if match:
        found = re.search(r"^title:\s*['\"]?(.+?)['\"]?\s*$", match.group(0), re.M)
        fm_title = found.group(1).strip() if found else ""
        text = text[match.end() :]
    text = markdown_tables(TEMPLATE_TAGS.sub("", text))
    # Line numbers as markdown-it counts them: only \r\n, \r and \n end a line. str.splitlines also
    # breaks at \f, \x1c, \u2028..., which shifted every later heading into the wrong section.
    line_starts = [0] + [m.end() for m in MD_LINE_BREAK.finditer(text)]
    if line_starts[-1] != len(text):
        line_starts.append(len(text))
    tokens = MarkdownIt("commonmark").parse(text)
    # (char offset of the heading line, offset just past it (setext headings take two lines), text, level)
    headings: list[tuple[int, int, str, int]] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            inline = tokens[i + 1].content if i + 1 < len(tokens) else ""
            headings.append((line_starts[tok.map[0]], line_starts[tok.map[1]], inline.strip(), int(tok.tag[1])))
    title = fm_title or next((h[2] for h in headings if h[3] == 1), "") or path.stem.replace("-", " ")
    bounds = [0] + [h[0] for h in headings] + [len(text)]
    body_starts = [0] + [h[1] for h in headings]
    names = [None] + [h[2] for h in headings]
    blocks, bare = [], []
    for start, body, end, name in zip(bounds[:-1], body_starts, bounds[1:], names):
        if text[body:end].strip():
            blocks.append(Block(start, end, section=name))
        elif text[start:end].strip():
            bare.append(Block(start, end, section=name))
    # A heading straight above a sub-heading would be a chunk of a few words that crowds real
    # passages out of the top k; the sub-sections carry it in their retrieval text anyway.
    blocks = blocks or bare
    if not blocks:
        raise LoadError(path, "no text content")
    return ParsedText(title=title, kind="markdown", text=text, blocks=tuple(blocks), warnings=warnings)


# ---- HTML ------------------------------------------------------------------------
def _confluence(path: Path, page: ConfluencePage, warnings: tuple[str, ...]) -> ParsedText:
    """A Confluence export page: its #main-content under its own title, with its page address and date."""
    body = load_html(path, f"<html><body>{page.main}</body></html>", warnings)
    url = f"pages/viewpage.action?pageId={page.page_id}" if page.page_id else ""
    return replace(
        body,
        title=page.title,
        url=url,
        updated_at=page.updated_at,
        content_hash=content_hash(page.title, url, page.updated_at, body.text),
    )


_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*?(/?)>")
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())


def html_depth(html: str) -> int:
    """The deepest element nesting in html, by one linear scan of its tags (void and self-closed tags
    do not nest; an end tag closes the nearest open element of its name or is ignored)."""
    open_tags: list[str] = []
    open_count: dict[str, int] = {}
    deepest = 0
    for closing, name, self_closing in _TAG.findall(html):
        name = name.lower()
        if closing:
            if open_count.get(name):
                while open_tags:  # each tag is popped once: linear overall
                    top = open_tags.pop()
                    open_count[top] -= 1
                    if top == name:
                        break
        elif name not in _VOID and not self_closing:
            open_tags.append(name)
            open_count[name] = open_count.get(name, 0) + 1
            deepest = max(deepest, len(open_tags))
    return deepest


DROP_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "svg", "iframe", "form", "button")
HEADING_MARK = "@@heading@@"
BLOCK_TAGS = (
    "p",
    "div",
    "li",
    "tr",
    "td",
    "th",
    "dd",
    "dt",
    "pre",
    "blockquote",
    "section",
    "article",
    "main",
    "table",
    "ul",
    "ol",
    "dl",
    "figcaption",
    "caption",
    "address",
    "hr",
)


def load_html(path: Path, html: str, warnings: tuple[str, ...] = ()) -> ParsedText:
    """Visible text only: scripts, styles and navigation are dropped; <title> (or the
    first <h1>) is the title; headings split sections; tables become one line per row that
    keeps its header (ingest.tables)."""
    from bs4 import BeautifulSoup

    depth = html_depth(html)
    if depth > MAX_HTML_DEPTH:
        raise LoadError(path, f"HTML nested {depth} levels deep, over the limit of {MAX_HTML_DEPTH}")
    try:
        soup = BeautifulSoup(html, "html.parser")
        page = confluence_page(path, soup)
        if page is not None:
            return _confluence(path, page, warnings)
        title = soup.title.get_text(" ", strip=True) if soup.title else ""
        for tag in soup.find_all(DROP_TAGS):
            tag.decompose()
        if soup.head:
            soup.head.decompose()
        for table in reversed(soup.find_all("table")):  # innermost first: a nested table becomes text
            caption = table.find("caption")
            lines = ([caption.get_text(" ", strip=True)] if caption else []) + html_table_lines(table)
            table.replace_with("\n" + "\n".join(lines) + "\n")
        for level in range(1, 7):
            for h in soup.find_all(f"h{level}"):
                h.replace_with(f"\n{HEADING_MARK}{h.get_text(' ', strip=True)}\n")
        for br in soup.find_all("br"):
            br.replace_with("\n")
        for tag in soup.find_all(BLOCK_TAGS):
            tag.insert_before("\n")
            tag.insert_after("\n")
        raw = soup.get_text("")
    except RecursionError as exc:
        raise LoadError(path, "HTML nested too deeply to parse") from exc
    # Each visible line becomes a paragraph; a heading line opens a new section block.
    groups: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in raw.split("\n"):
        line = " ".join(line.split())
        if line.startswith(HEADING_MARK):
            heading = line[len(HEADING_MARK) :].strip()
            if heading:
                title = title or heading
                groups.append((heading, [heading]))
        elif line:
            groups[-1][1].append(line)
    parts: list[str] = []
    blocks: list[Block] = []
    offset = 0
    # A heading with no text of its own (straight above a sub-heading) is dropped, as in Markdown,
    # unless the page has nothing but headings.
    if any(len(lines) > (section is not None) for section, lines in groups):
        groups = [(section, lines) for section, lines in groups if len(lines) > (section is not None)]
    for section, lines in groups:
        if not lines:
            continue
        body = "\n\n".join(lines)
        start = offset + (2 if parts else 0)
        parts.append(body)
        offset = start + len(body)
        blocks.append(Block(start, offset, section=section))
    text = "\n\n".join(parts)
    if not text.strip():
        raise LoadError(path, "HTML has no visible text")
    return ParsedText(title=title or path.stem, kind="html", text=text, blocks=tuple(blocks), warnings=warnings)
