"""Check the labelled question set of the hopfield-kb sample knowledge base.

Usage (from the repository root)::

    .venv/bin/python -m data.check_questions [--questions data/questions.jsonl] [--docs data/docs]

For every line of questions.jsonl it verifies that:

- the record has the fields id, question, relevant, answer, style (and page
  for PDF answers), ids are unique and style is clean, loose or typo;
- every file named in "relevant" exists in the docs folder;
- "answer" is a verbatim substring of the text of the first relevant
  document, after collapsing whitespace runs to single spaces on both sides.
  Text is read as follows: Markdown and plain text files as-is; HTML files
  as their visible text (the stdlib html.parser, skipping <head>, <script>,
  <style>, <noscript>, <template> and <nav>); PDF files with pypdf, using
  the text of the 1-based "page" only.

It also checks that the HTML extractor really drops script and style content,
then prints a summary (questions per style, per document, per PDF page) and
exits with status 1 if anything failed. Needs only the standard library and
pypdf.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
STYLES = ("clean", "loose", "typo")
SKIP_TAGS = {"head", "script", "style", "noscript", "template", "nav"}
BLOCK_TAGS = {
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class VisibleText(HTMLParser):
    """Collects the visible text of an HTML page, block elements on new lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_depth = 0
        self.parts: list[str] = []
        self.hidden: list[str] = []  # text found inside skipped elements

    def handle_starttag(self, tag, attrs):
        if tag in SKIP_TAGS:
            self.skip_depth += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.skip_depth:
            self.hidden.append(data)
        else:
            self.parts.append(data)


def parse_html(path: Path) -> VisibleText:
    parser = VisibleText()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def html_text(path: Path) -> str:
    return "".join(parse_html(path).parts)


_pdf_cache: dict[Path, list[str]] = {}


def pdf_pages(path: Path) -> list[str]:
    if path not in _pdf_cache:
        from pypdf import PdfReader

        _pdf_cache[path] = [p.extract_text() or "" for p in PdfReader(str(path)).pages]
    return _pdf_cache[path]


def doc_text(path: Path, page: int | None) -> str:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        pages = pdf_pages(path)
        if page is None or not 1 <= page <= len(pages):
            raise ValueError(f"page {page!r} out of range 1..{len(pages)}")
        return pages[page - 1]
    if suffix in (".html", ".htm"):
        return html_text(path)
    return path.read_text(encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description="Check data/questions.jsonl against data/docs.")
    ap.add_argument("--questions", type=Path, default=HERE / "questions.jsonl")
    ap.add_argument("--docs", type=Path, default=HERE / "docs")
    args = ap.parse_args()

    errors: list[str] = []
    by_style: Counter[str] = Counter()
    by_doc: Counter[str] = Counter()
    by_page: Counter[tuple[str, int]] = Counter()
    seen_ids: set[str] = set()
    n = 0

    # Sanity check of the HTML extractor: every longer line of the skipped
    # elements (script, style, nav, ...) must be absent from the visible text.
    for html in sorted(args.docs.glob("*.htm*")):
        parsed = parse_html(html)
        visible = collapse("".join(parsed.parts))
        for line in "".join(parsed.hidden).splitlines():
            line = collapse(line)
            if len(line) >= 20 and line in visible:
                errors.append(f"{html.name}: non-content text leaked into visible text: {line[:60]!r}")

    with args.questions.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            n += 1
            where = f"line {lineno}"
            try:
                q = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{where}: invalid JSON: {exc}")
                continue
            qid = q.get("id")
            where = f"line {lineno} ({qid})"
            for field in ("id", "question", "relevant", "answer", "style"):
                if not q.get(field):
                    errors.append(f"{where}: missing or empty field {field!r}")
            if qid in seen_ids:
                errors.append(f"{where}: duplicate id")
            seen_ids.add(qid)
            style = q.get("style")
            if style not in STYLES:
                errors.append(f"{where}: style {style!r} not in {STYLES}")
            by_style[style] += 1
            relevant = q.get("relevant") or []
            if not isinstance(relevant, list):
                errors.append(f"{where}: relevant must be a list")
                continue
            missing = [r for r in relevant if not (args.docs / r).is_file()]
            if missing:
                errors.append(f"{where}: relevant file(s) not found: {missing}")
                continue
            if not relevant:
                continue
            for r in relevant:
                by_doc[r] += 1
            source = args.docs / relevant[0]
            page = q.get("page")
            if source.suffix.lower() != ".pdf" and page is not None:
                errors.append(f"{where}: page given for non-PDF {source.name}")
                page = None
            try:
                text = doc_text(source, page)
            except ValueError as exc:
                errors.append(f"{where}: {source.name}: {exc}")
                continue
            if source.suffix.lower() == ".pdf":
                by_page[(source.name, page)] += 1
            answer = collapse(q.get("answer") or "")
            if answer and answer not in collapse(text):
                loc = f"{source.name} page {page}" if page else source.name
                errors.append(f"{where}: answer not found verbatim in {loc}: {answer[:80]!r}")

    all_docs = sorted(p.name for p in args.docs.iterdir() if p.is_file())
    print(f"questions: {n}")
    print("per style: " + ", ".join(f"{s}={by_style.get(s, 0)}" for s in STYLES))
    print("per document:")
    for name in all_docs:
        print(f"  {by_doc.get(name, 0):3d}  {name}")
    print("per PDF page:")
    for name in all_docs:
        if name.endswith(".pdf"):
            pages = len(pdf_pages(args.docs / name))
            counts = " ".join(f"p{i}={by_page.get((name, i), 0)}" for i in range(1, pages + 1))
            print(f"  {name}: {counts}")
            for i in range(1, pages + 1):
                if not by_page.get((name, i)):
                    print(f"  note: no question on {name} page {i}")
    unused = [d for d in all_docs if not by_doc.get(d)]
    if unused:
        print(f"note: documents without questions: {unused}")

    if errors:
        print(f"\nFAILED: {len(errors)} problem(s)")
        for e in errors:
            print("  - " + e)
        return 1
    print("\nOK: all answers found verbatim in their documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
