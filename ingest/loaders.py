"""Turn a file into text plus blocks that remember page (PDF) or section heading.

Every loader returns a ParsedText whose blocks are character spans into
ParsedText.text, so a chunk cut from a block can cite its exact source span.
Unreadable input raises LoadError naming the file and the reason.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ingest.csv_loader import load_csv
from ingest.email_loader import load_email
from ingest.exports import ConfluencePage, confluence_page, content_hash
from ingest.ocr import OcrConfig
from ingest.parsed import Block, LoadError, ParsedText, first_line  # re-exported: loaders return these
from ingest.pdf_loader import load_pdf
from ingest.tables import html_table_lines, markdown_tables
from ingest.web_loader import WEB, load_web

SUPPORTED = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".docx": "docx",
    ".csv": "csv",
    ".eml": "email",
    ".msg": "msg",
    ".xlsx": "xlsx",
    ".pptx": "pptx",
}
KINDS = tuple(sorted(set(SUPPORTED.values()) | {WEB}))  # every kind a sync stores: what `kinds` filters name
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


MAX_LABEL = 200  # characters of a title or section name: a 1.2 MB heading is not a title
MAX_HTML_DEPTH = 5000  # element nesting: the HTML parser's cost grows with its square (3,000 levels: ~2 s)


def kind_of(path: Path) -> str | None:
    """ "pdf", "markdown", "html", "text", "docx", "csv", "email", "msg", "xlsx", "pptx", or None for unsupported
    extensions."""
    return SUPPORTED.get(path.suffix.lower())


def load(
    path: Path,
    data: bytes,
    ocr: OcrConfig | None = None,
    on_ocr_page: Callable[[float], None] | None = None,
    kind: str = "",
) -> ParsedText:
    """Parse data (the bytes of path) by the file's extension, or as kind when given ("web": a crawled page).
    ocr: how PDF pages without a text layer are read (default OcrConfig()); on_ocr_page(seconds): called
    before each OCR page with its time limit."""
    known = kind or kind_of(path)
    if known is None:
        raise LoadError(
            path, f"unsupported file type {path.suffix or '(no extension)'!r}; supported: {', '.join(sorted(SUPPORTED))}"
        )
    if not data.strip():
        raise LoadError(path, "empty file")
    kind = known
    if kind == "pdf":
        return _capped(load_pdf(path, data, ocr, on_ocr_page))
    if kind == "docx":
        from ingest.docx_loader import load_docx

        return _capped(load_docx(path, data))
    if kind == "xlsx":
        from ingest.xlsx_loader import load_xlsx

        return _capped(load_xlsx(path, data))
    if kind == "pptx":
        from ingest.pptx_loader import load_pptx

        return _capped(load_pptx(path, data))
    if kind == "email":
        return _capped(load_email(path, data, lambda p, html: load_html(p, html).text))
    if kind == "msg":
        from ingest.msg_loader import load_msg

        return _capped(load_msg(path, data, lambda p, html: load_html(p, html).text))
    text, encoding, warnings = decode_text(path, data)
    if kind == "markdown":
        parsed = load_markdown(path, text, warnings)
    elif kind == "html":
        parsed = load_html(path, text, warnings)
    elif kind == WEB:
        _check_depth(path, text)  # before trafilatura: lxml's tree of a 100,000-level page is the slow part
        parsed = load_web(path, text, warnings, load_html)
    elif kind == "csv":
        parsed = load_csv(path, text, warnings)
    else:
        parsed = _single_block(path, text.strip("\ufeff"), "text", first_line(text) or path.stem, warnings)
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


def _single_block(path: Path, text: str, kind: str, title: str, warnings: tuple[str, ...] = ()) -> ParsedText:
    if not text.strip():
        raise LoadError(path, "no text content")
    return ParsedText(title=title, kind=kind, text=text, blocks=(Block(0, len(text)),), warnings=warnings)


# ---- PDF -------------------------------------------------------------------------
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


def _check_depth(path: Path, html: str) -> None:
    depth = html_depth(html)
    if depth > MAX_HTML_DEPTH:
        raise LoadError(path, f"HTML nested {depth} levels deep, over the limit of {MAX_HTML_DEPTH}")


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

    _check_depth(path, html)
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
