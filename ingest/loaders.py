"""Turn a file into text plus blocks that remember page (PDF) or section heading.

Every loader returns a ParsedText whose blocks are character spans into
ParsedText.text, so a chunk cut from a block can cite its exact source span.
Unreadable input raises LoadError naming the file and the reason.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ingest.tables import html_table_lines, markdown_tables

SUPPORTED = {".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".txt": "text"}
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class LoadError(Exception):
    """A file that cannot be ingested; str() is one line naming the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Block:
    """A span of ParsedText.text with its page (1-based, PDFs) or section heading."""

    start: int
    end: int
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class ParsedText:
    title: str
    kind: str
    text: str
    blocks: tuple[Block, ...]
    warnings: tuple[str, ...] = ()


def kind_of(path: Path) -> str | None:
    """"pdf", "markdown", "html", "text", or None for unsupported extensions."""
    return SUPPORTED.get(path.suffix.lower())


def load(path: Path, data: bytes) -> ParsedText:
    """Parse data (the bytes of path) by the file's extension."""
    kind = kind_of(path)
    if kind is None:
        raise LoadError(path, f"unsupported file type {path.suffix or '(no extension)'!r}; "
                              f"supported: {', '.join(sorted(SUPPORTED))}")
    if not data.strip():
        raise LoadError(path, "empty file")
    if kind == "pdf":
        return load_pdf(path, data)
    text, warnings = decode_text(path, data)
    if kind == "markdown":
        return load_markdown(path, text, warnings)
    if kind == "html":
        return load_html(path, text, warnings)
    return _single_block(path, text.strip("\ufeff"), "text", _first_line(text) or path.stem, warnings)


def decode_text(path: Path, data: bytes) -> tuple[str, tuple[str, ...]]:
    """UTF-8 text, or cp1252 with a warning; binary data raises LoadError."""
    head = data[:65536]
    if b"\x00" in head:
        raise LoadError(path, "binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig"), ()
    except UnicodeDecodeError:
        pass
    text = data.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > 0.01 * min(len(text), 65536):
        raise LoadError(path, "binary content: not UTF-8 and full of control bytes")
    return text, (f"{path}: not valid UTF-8; read as Windows-1252",)


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
def load_pdf(path: Path, data: bytes) -> ParsedText:
    """One block per page with text; pages joined by blank lines. Encrypted PDFs open
    when their user password is empty; otherwise the error says a password is needed."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

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
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            pages.append((number, _clean_pdf_text(page.extract_text() or "")))
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
    parts, blocks, offset = [], [], 0
    for number, text in pages:
        if not text.strip():
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(text)
        blocks.append(Block(offset, offset + len(text), page=number))
        offset += len(text)
    if not blocks:
        raise LoadError(path, f"PDF has {len(pages)} page(s) but no extractable text (scanned images need OCR)")
    full = "".join(parts)
    return ParsedText(title=title or _first_line(full) or path.stem, kind="pdf", text=full, blocks=tuple(blocks))


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
        text = text[match.end():]
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
DROP_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "svg", "iframe", "form", "button")
HEADING_MARK = "@@heading@@"
BLOCK_TAGS = ("p", "div", "li", "tr", "td", "th", "dd", "dt", "pre", "blockquote", "section", "article",
              "main", "table", "ul", "ol", "dl", "figcaption", "caption", "address", "hr")


def load_html(path: Path, html: str, warnings: tuple[str, ...] = ()) -> ParsedText:
    """Visible text only: scripts, styles and navigation are dropped; <title> (or the
    first <h1>) is the title; headings split sections; tables become one line per row that
    keeps its header (ingest.tables)."""
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(html, "html.parser")
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
            heading = line[len(HEADING_MARK):].strip()
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
