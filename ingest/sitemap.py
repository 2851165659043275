"""What a crawl may fetch: its scope, the site's robots.txt rules, the URLs a sitemap lists and a page links to.

Pure functions over text already fetched (ingest.crawl fetches): nothing here opens a connection.
A sitemap is XML (https://www.sitemaps.org/protocol.html): a <urlset> of <url><loc>, or a <sitemapindex> of
<sitemap><loc> naming more sitemaps. A document type declaration (where entity bombs live) is refused
before parsing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

MAX_LINKS_PER_PAGE = 2000  # links read from one page: a page of a million links must not fill the queue


class SitemapError(ValueError):
    """A sitemap that cannot be read; str() is the reason."""


@dataclass(frozen=True)
class Scope:
    """The pages a crawl may fetch: http(s) URLs on host whose path starts with prefix.

    >>> Scope.of("https://help.example.com/hc/en/sitemap.xml").allows("https://help.example.com/hc/en/a-1")
    True
    """

    scheme: str
    host: str
    prefix: str

    @classmethod
    def of(cls, url: str, prefix: str = "") -> "Scope":
        """The scope of a start URL (a sitemap or a page): its host and prefix, by default its folder."""
        parts = urlsplit(url)
        folder = parts.path.rsplit("/", 1)[0] + "/" if "/" in parts.path else "/"
        return cls(parts.scheme.lower(), parts.netloc.lower(), prefix or folder)

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        return (
            parts.scheme.lower() in ("http", "https")
            and parts.netloc.lower() == self.host
            and (parts.path or "/").startswith(self.prefix)
        )

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}{self.prefix}"


def normal(url: str) -> str:
    """url without its #fragment (two links to parts of one page are one page)."""
    return urldefrag(url.strip())[0]


def is_web(path: object) -> bool:
    """Whether a path given to a sync is a web address (a sitemap or a start page) rather than a file."""
    return isinstance(path, str) and path.lower().startswith(("http://", "https://"))


def robots_rules(text: str) -> RobotFileParser:
    """The rules of a robots.txt body (urllib.robotparser)."""
    rules = RobotFileParser()
    rules.parse(text.splitlines())
    return rules


def looks_like_sitemap(url: str, content_type: str, body: bytes) -> bool:
    """Whether a fetched start URL is a sitemap (XML naming <urlset> or <sitemapindex>) rather than a page."""
    head = body[:2048].lstrip().lower()
    xml = "xml" in content_type.lower() or urlsplit(url).path.lower().endswith(".xml") or head.startswith(b"<?xml")
    return xml and (b"<urlset" in body[:65536].lower() or b"<sitemapindex" in body[:65536].lower())


def read_sitemap(body: bytes) -> tuple[list[str], list[str]]:
    """(page URLs, sitemap URLs) a sitemap lists, in order, fragments dropped; SitemapError for XML that is
    not a sitemap or declares a document type."""
    if re.search(rb"<!DOCTYPE|<!ENTITY", body[:65536], re.I):
        raise SitemapError("the sitemap declares a document type or entities (refused: entity expansion)")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise SitemapError(f"not well-formed XML ({exc})") from None
    tag = root.tag.rsplit("}", 1)[-1]
    if tag not in ("urlset", "sitemapindex"):
        raise SitemapError(f"XML whose root is <{tag}>, not a sitemap's <urlset> or <sitemapindex>")
    locs = [normal(e.text or "") for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "loc" and (e.text or "").strip()]
    return (locs, []) if tag == "urlset" else ([], locs)


_HREF = re.compile(rb"""<a\s[^>]*?href\s*=\s*["']?([^"'\s>]+)""", re.I)


def page_links(base: str, body: bytes) -> list[str]:
    """Absolute URLs a page links to (<a href>), fragments dropped, at most MAX_LINKS_PER_PAGE, in order.
    One linear regular-expression scan: a page is not parsed as HTML here (that is the parse worker's job)."""
    out: list[str] = []
    for match in _HREF.finditer(body):
        href = match.group(1).decode("utf-8", "replace")
        if href.lower().startswith(("mailto:", "javascript:", "tel:", "data:")):
            continue
        out.append(normal(urljoin(base, href.replace("&amp;", "&"))))
        if len(out) >= MAX_LINKS_PER_PAGE:
            break
    return list(dict.fromkeys(out))


def page_name(url: str) -> str:
    """A page's short name (its last path segment, or its host): the document name a list shows.

    >>> page_name("https://help.example.com/hc/refunds.html?x=1")
    'refunds.html'
    """
    parts = urlsplit(url)
    return parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.netloc
