"""The sample knowledge base as a small help-centre website on 127.0.0.1, for the crawler's tests and benchmark.

Every Markdown, HTML and text sample document is a page under /help/ (data.make_exports.sample_pages), in a
site's chrome: navigation, a cookie banner and a footer the crawler must leave out. Beside them:
  /robots.txt                  disallows /help/private/
  /help/sitemap.xml            lists every page below (what `kb sync URL/help/sitemap.xml` reads)
  /help/old-refunds            301 to the refund policy's page; /help/elsewhere: 302 to another host
  /help/missing                404
  /help/changing               a page whose text changes when SampleSite.edit() is called
  /help/hang                   never answers (until the site stops)
  /help/private/secret         disallowed by robots.txt
  /help/report.pdf             not HTML
  /help/loop.xml               a sitemap that lists itself (and one page)
Pages carry an ETag (their bytes' hash) and answer a matching If-None-Match with 304; requests and 304s are
counted per path. With bulk=N the sitemap also lists N copies of the sample pages (/help/bulk/...), for the
benchmark.

    with SampleSite() as site:
        ingest(kb_dir, [site.url("/help/sitemap.xml")], ...)
"""

from __future__ import annotations

import hashlib
import html
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Sequence

from data import SAMPLE_DOCS
from data.make_exports import sample_pages

CHROME = (
    "<header><nav><a href='/help/'>Help centre</a> | <a href='/help/contact'>Contact us</a> | "
    "<a href='/pricing'>Pricing</a></nav></header>"
    "<div class='cookie-banner' id='cookies'>We use cookies to improve your experience. "
    "<button>Accept all cookies</button></div>"
)
FOOTER = "<footer><p>Copyright 2026 Tallyo Inc. All rights reserved. Terms of use | Privacy | Cookie settings</p></footer>"
ROBOTS = "User-agent: *\nDisallow: /help/private/\n"
CHANGING_BEFORE = "Gift cards bought in the Tallyo store can be redeemed for 12 months from the date of purchase."
CHANGING_AFTER = "Gift cards bought in the Tallyo store can be redeemed for 24 months from the date of purchase."


def page(title: str, body: str, links: Sequence[str] = ()) -> bytes:
    """A page of the site: title, chrome, the body inside <main>, links to other pages, footer."""
    nav = "".join(f"<li><a href='{html.escape(u)}'>{html.escape(u)}</a></li>" for u in links)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"{CHROME}<main><article>{body}</article></main><aside><ul>{nav}</ul></aside>{FOOTER}</body></html>"
    ).encode("utf-8")


class SampleSite:
    """The site, served in a thread while the context is open; url(path) is its address. requests and
    not_modified count GETs and 304 replies per path; edit() changes /help/changing."""

    def __init__(self, bulk: int = 0) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        stems = []
        for stem, title, body in sample_pages(SAMPLE_DOCS):
            stems.append(stem)
            self.pages[f"/help/{stem}"] = ("text/html; charset=utf-8", page(title, body, [f"/help/{s}" for s in stems]))
        for n in range(bulk):
            for stem, title, body in sample_pages(SAMPLE_DOCS):
                copy = f"<p>Copy {n} of this article, kept for the benchmark.</p>{body}"
                self.pages[f"/help/bulk/{n}/{stem}"] = ("text/html; charset=utf-8", page(f"{title} ({n})", copy))
        self.pages["/help/private/secret"] = ("text/html", page("Internal", "<p>Internal notes.</p>"))
        self.pages["/help/report.pdf"] = ("application/pdf", b"%PDF-1.4 not a page")
        self.edited = False
        self.requests: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.hold = threading.Event()
        self.listed = [p for p in self.pages if p != "/help/private/secret"] + [
            "/help/old-refunds",
            "/help/missing",
            "/help/changing",
            "/help/hang",
            "/help/private/secret",
        ]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def edit(self) -> None:
        self.edited = True

    def sitemap(self, paths: list[str]) -> bytes:
        locs = "".join(f"<url><loc>{html.escape(self.url(p))}</loc></url>" for p in paths)
        return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'.encode()

    def reply(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        """(status, content type, body, extra headers) for a GET of path."""
        if path == "/robots.txt":
            return 200, "text/plain", ROBOTS.encode(), {}
        if path == "/help/sitemap.xml":
            return 200, "application/xml", self.sitemap(self.listed), {}
        if path == "/help/loop.xml":
            return 200, "application/xml", self.sitemap(["/help/loop.xml", "/help/billing-faq"]), {}
        if path == "/help/old-refunds":
            return 301, "text/plain", b"", {"Location": "/help/refund-and-cancellation-policy"}
        if path == "/help/elsewhere":
            return 302, "text/plain", b"", {"Location": "http://example.invalid/"}
        if path == "/help/changing":
            fact = CHANGING_AFTER if self.edited else CHANGING_BEFORE
            return 200, "text/html; charset=utf-8", page("Gift cards", f"<h1>Gift cards</h1><p>{fact}</p>"), {}
        if path in self.pages:
            kind, body = self.pages[path]
            return 200, kind, body, {}
        return 404, "text/html", page("Not found", "<p>No such page.</p>"), {}

    def __enter__(self) -> "SampleSite":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()  # releases /help/hang
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _handler(site: SampleSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            path = self.path.split("?", 1)[0]
            site.requests[path] += 1
            if path == "/help/hang":
                site.hold.wait(120)  # a server that never answers, until the site stops
                return
            status, kind, body, headers = site.reply(path)
            etag = f'"{hashlib.sha1(body).hexdigest()}"'
            if status == 200 and self.headers.get("If-None-Match") == etag:
                site.not_modified[path] += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if status == 200:
                self.send_header("ETag", etag)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # the tests read the counters, not a log

    return Handler
