"""A crawled help-centre page (kind "web"): its main content, read by trafilatura, then as HTML.

trafilatura drops what every page of a site repeats (navigation, headers, footers, cookie banners, side
bars) and keeps headings and tables as HTML, which ingest.loaders.load_html turns into sections and rows
that keep their header. The content hash covers the title and text only: a page whose bytes change with
every request (a timestamp, a session token) is re-parsed but not re-embedded.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ingest.exports import content_hash
from ingest.parsed import ParsedText

WEB = "web"  # the kind of a crawled help-centre page (ingest.crawl)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def load_web(
    path: Path, page: str, warnings: tuple[str, ...], load_html: Callable[[Path, str, tuple[str, ...]], ParsedText]
) -> ParsedText:
    """ParsedText of a page's HTML (decoded, its nesting already checked): its main content under its <title>,
    read by load_html (ingest.loaders'). A page where trafilatura finds no main content is read whole
    (navigation, header and footer still dropped), with a warning."""
    import trafilatura

    main = trafilatura.extract(
        page, output_format="html", include_tables=True, include_comments=False, include_links=False, include_images=False
    )
    match = _TITLE.search(page[:200_000])
    title = " ".join(html_lib.unescape(match.group(1)).split()) if match else ""
    if main:
        head = f"<head><title>{html_lib.escape(title)}</title></head>" if title else ""
        parsed = load_html(path, main.replace("<html>", f"<html>{head}", 1), warnings)
    else:
        parsed = load_html(path, page, warnings + (f"{path}: no main content found; the whole page's text was read",))
    return replace(parsed, kind=WEB, content_hash=content_hash(parsed.title, parsed.text))
