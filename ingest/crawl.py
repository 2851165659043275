"""Fetch a help-centre site for a sync: every page its sitemap lists, or every in-scope page a start page leads to.

Polite: robots.txt is read first and honoured (its Crawl-delay too), requests to a host are spaced by
CrawlConfig.delay, one at a time. Cheap on a re-sync: a page the KB holds is asked for with its stored
ETag / Last-Modified (kb.web_pages), and a 304 costs one request and no parsing. Bounded like files: bytes
per page, seconds per request, redirects (which must stay in scope), pages and seconds per crawl; a page
that is not HTML, too large, unanswered or an HTTP error is one failure naming the URL and the reason, and
the crawl goes on. A sitemap that lists itself, or a sitemap index that loops, is read once.
The pages' bytes are parsed later, like files, by the run's engine (ingest.web_loader under the parse budget).
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Mapping, Sequence
from urllib.parse import urljoin, urlsplit

from ingest.sitemap import Scope, SitemapError, looks_like_sitemap, normal, page_links, read_sitemap, robots_rules
from kb import Validators

HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class CrawlConfig:
    """delay: seconds between two requests to one host (robots.txt's Crawl-delay wins when longer); timeout:
    seconds a request may take to connect, answer and send its body; total_seconds: the whole crawl's budget
    (pages not reached by then fail and keep their stored version); max_pages, max_redirects, max_sitemaps
    (sitemaps read through a sitemap index); max_page_bytes: larger pages fail; scope: the path prefix a
    start page's crawl stays under (default: the start page's folder); user_agent: the name robots.txt rules
    are matched against."""

    delay: float = 1.0
    timeout: float = 20.0
    total_seconds: float = 1800.0
    max_pages: int = 5000
    max_redirects: int = 5
    max_sitemaps: int = 100
    max_page_bytes: int = 10 * 1024 * 1024
    scope: str = ""
    user_agent: str = "hopfield-kb"

    def __post_init__(self) -> None:
        for name in ("delay", "timeout", "total_seconds", "max_pages", "max_redirects", "max_sitemaps", "max_page_bytes"):
            value = getattr(self, name)
            if value < 0 or (value == 0 and name not in ("delay", "max_redirects")):
                raise ValueError(f"CrawlConfig.{name} is {value}: it must be positive")
        if self.scope and not self.scope.startswith("/"):
            raise ValueError(f"CrawlConfig.scope {self.scope!r} must be a path prefix starting with / (e.g. /hc/en-us/)")


@dataclass(frozen=True)
class Page:
    """One page a crawl listed. key: its URL (the document key; where a redirect led, for a page that moved);
    site: the start URL it was found from; url: where it was read; data: its bytes (None: not modified since the stored
    version, or failed); digest: SHA-256 of data, or the stored content hash for a 304; validators: what the
    server sent to identify this version; error: why it could not be read ("" when it was)."""

    key: str
    site: str
    url: str = ""
    data: bytes | None = None
    digest: str | None = None
    validators: Validators = field(default_factory=Validators)
    error: str = ""


@dataclass(frozen=True)
class Crawl:
    """What a crawl found. pages: every page listed, read or failed; sites: start URLs whose every page is in
    pages (a sync removes their stored pages not among them); failed: (start URL, reason) of sites that could
    not be listed at all; warnings: pages skipped (robots.txt, out of scope) and loops cut; requests: HTTP
    requests made; not_modified: pages answered 304."""

    pages: tuple[Page, ...] = ()
    sites: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    requests: int = 0
    not_modified: int = 0


class FetchError(Exception):
    """A URL that could not be read; str() is the reason."""


@dataclass(frozen=True)
class _Reply:
    status: int
    url: str
    content_type: str
    body: bytes
    validators: Validators


def crawl(starts: Sequence[str], config: CrawlConfig = CrawlConfig(), known: Mapping[str, Validators] = {}) -> Crawl:
    """Crawl each start URL (a sitemap, or a page whose in-scope links are followed); known: page URL ->
    the stored version's validators, sent as If-None-Match / If-Modified-Since."""
    import httpx

    with httpx.Client(
        follow_redirects=False, timeout=httpx.Timeout(config.timeout), headers={"User-Agent": config.user_agent}
    ) as client:
        return _Crawler(client, config, known).run(starts)


class _Crawler:
    def __init__(self, client, config: CrawlConfig, known: Mapping[str, Validators]) -> None:
        self.client = client
        self.config = config
        self.known = known
        self.deadline = time.monotonic() + config.total_seconds
        self.robots: dict[str, object] = {}
        self.last: dict[str, float] = {}
        self.pages: dict[str, Page] = {}
        self.sites: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.requests = 0
        self.not_modified = 0

    def run(self, starts: Sequence[str]) -> Crawl:
        for start in starts:
            parts = urlsplit(start)
            if parts.username is not None or parts.password is not None:
                # The URL would become a document key, shown in citations and kept in kb.sqlite.
                shown = parts._replace(netloc=parts.hostname or "").geturl()
                self.failed.append((shown, "a URL with a user name or password is refused (it would be stored)"))
                continue
            try:
                self.site(normal(start))
            except FetchError as exc:
                self.failed.append((start, str(exc)))
        return Crawl(
            tuple(self.pages.values()),
            tuple(self.sites),
            tuple(self.failed),
            tuple(self.warnings),
            self.requests,
            self.not_modified,
        )

    def site(self, start: str) -> None:
        scope = Scope.of(start, self.config.scope)
        if not self.allowed(start, scope):
            raise FetchError(f"robots.txt of {scope.host} disallows {start}")
        reply = self.get(start, scope, Validators())
        if looks_like_sitemap(reply.url, reply.content_type, reply.body):
            listed = self.sitemap_pages(start, reply.body, scope)
            complete = self.fetch_all(start, listed, scope)
        else:
            complete = self.follow_links(start, reply, scope)
        if complete:
            self.sites.append(start)

    def sitemap_pages(self, start: str, body: bytes, scope: Scope) -> list[str]:
        """Every in-scope page URL of the sitemap at start (sitemap indexes followed, each sitemap read once)."""
        seen, todo, pages = {start}, deque([(start, body)]), []
        while todo:
            url, data = todo.popleft()
            try:
                locs, children = read_sitemap(data)
            except SitemapError as exc:
                raise FetchError(f"sitemap {url}: {exc}") from None
            for loc in locs:
                if loc in seen:
                    self.warnings.append(f"{url}: lists the sitemap {loc} as a page; skipped (a sitemap that lists itself)")
                elif scope.allows(loc):
                    pages.append(loc)
                else:
                    self.warnings.append(f"{url}: {loc} is outside {scope}; skipped")
            for child in children:
                if child in seen:
                    self.warnings.append(f"{url}: lists the sitemap {child} again; read once (a sitemap index that loops)")
                elif len(seen) >= self.config.max_sitemaps:
                    raise FetchError(f"sitemap {url}: over {self.config.max_sitemaps} sitemaps in its index")
                elif scope.allows(child) and self.allowed(child, scope):
                    seen.add(child)
                    todo.append((child, self.get(child, scope, Validators()).body))
                else:
                    self.warnings.append(f"{url}: sitemap {child} is outside {scope} or disallowed; skipped")
        return list(dict.fromkeys(pages))

    def fetch_all(self, site: str, urls: list[str], scope: Scope) -> bool:
        """Fetch each listed page (the ones past max_pages fail, keeping their stored version); complete: True."""
        for n, url in enumerate(urls):
            if url in self.pages:
                continue
            if n >= self.config.max_pages:
                limit = self.config.max_pages
                self.pages[url] = Page(url, site, error=f"not fetched: over the limit of {limit} pages (--max-pages)")
            elif self.allowed(url, scope, report=True):
                self.fetch_page(site, url, scope)
        return True

    def follow_links(self, start: str, first: _Reply, scope: Scope) -> bool:
        """Breadth-first over the in-scope links from start, and the pages of this site the KB already holds
        (a page answered 304 gives no links; its links were followed when it last changed). Complete when
        neither the page limit nor the time budget cut the crawl short."""
        queue = deque([start] + sorted(k for k in self.known if scope.allows(k) and k != start))
        queued = set(queue)
        complete, before = True, len(self.pages)
        while queue:
            url = queue.popleft()
            if len(self.pages) - before >= self.config.max_pages:
                self.warnings.append(f"{start}: stopped at the limit of {self.config.max_pages} pages (--max-pages)")
                complete = False
                break
            if url != start and not self.allowed(url, scope, report=True):
                continue
            reply = self.fetch_page(start, url, scope, first if url == start else None)
            if reply is None:
                complete = complete and time.monotonic() < self.deadline
                continue
            for link in page_links(reply.url, reply.body):
                if link not in queued and scope.allows(link):
                    queued.add(link)
                    queue.append(link)
        return complete

    def fetch_page(self, site: str, url: str, scope: Scope, reply: _Reply | None = None) -> _Reply | None:
        """Fetch one page into self.pages (a failure as a Page with its error); the reply when it has a body."""
        stored = self.known.get(url, Validators())
        try:
            if time.monotonic() > self.deadline:
                raise FetchError(f"not fetched: the crawl's time budget ({self.config.total_seconds:g} s) ran out")
            reply = reply or self.get(url, scope, stored)
            if reply.status == 304:
                self.not_modified += 1
                self.pages[url] = Page(url, site, reply.url, None, stored.content_hash or None, stored)
                return None
            if reply.content_type.split(";")[0].strip().lower() not in HTML_TYPES:
                raise FetchError(f"not an HTML page (Content-Type {reply.content_type or 'missing'}); skipped")
        except FetchError as exc:
            self.pages[url] = Page(url, site, error=str(exc))
            return None
        key = normal(reply.url)  # a page that moved (a redirect) is the document at its new address
        if key != url and key in self.pages:
            self.warnings.append(f"{url}: redirects to {key}, already read; not a second document")
            return None
        digest = hashlib.sha256(reply.body).hexdigest()
        self.pages[key] = Page(key, site, reply.url, reply.body, digest, reply.validators)
        return reply

    def allowed(self, url: str, scope: Scope, report: bool = False) -> bool:
        """Whether robots.txt of url's host lets this crawler fetch it (read once per host)."""
        parts = urlsplit(url)
        host = f"{parts.scheme}://{parts.netloc}"
        if host not in self.robots:
            self.robots[host] = self.read_robots(host, scope)
        rules = self.robots[host]
        ok = rules.can_fetch(self.config.user_agent, url)  # type: ignore[attr-defined]
        if not ok and report:
            self.warnings.append(f"{url}: disallowed by robots.txt; not fetched")
        return ok

    def read_robots(self, host: str, scope: Scope):
        """host's robots.txt rules: none found (4xx) allows all; 401/403 or an unreadable one (5xx, no answer)
        allows nothing, as the robots exclusion protocol (RFC 9309) asks."""
        try:
            reply = self.get(f"{host}/robots.txt", Scope.of(f"{host}/"), Validators(), accept_errors=True)
            status, text = reply.status, reply.body.decode("utf-8", "replace")
        except FetchError as exc:
            raise FetchError(f"{host}/robots.txt could not be read ({exc}): nothing fetched from the site") from None
        if status in (401, 403) or status >= 500:
            raise FetchError(f"{host}/robots.txt answered HTTP {status}: nothing fetched from the site")
        rules = robots_rules(text if status < 400 else "")
        delay = rules.crawl_delay(self.config.user_agent)
        if delay:
            self.last.setdefault(f"delay:{host}", float(delay))
        return rules

    def get(self, url: str, scope: Scope, stored: Validators, accept_errors: bool = False) -> _Reply:
        """GET url (redirects followed while they stay in scope, at most max_redirects); FetchError naming why not."""
        headers = {}
        if stored.etag:
            headers["If-None-Match"] = stored.etag
        if stored.last_modified:
            headers["If-Modified-Since"] = stored.last_modified
        for _ in range(self.config.max_redirects + 1):
            self.wait(url)
            reply = self.once(url, headers)
            if reply.status in (301, 302, 303, 307, 308):
                target = normal(urljoin(url, reply.content_type))
                if not scope.allows(target):
                    raise FetchError(f"redirects to {target}, outside {scope}; not followed")
                url = target
                continue
            if reply.status >= 400 and not accept_errors:
                raise FetchError(f"HTTP {reply.status} ({_phrase(reply.status)})")
            return reply
        raise FetchError(f"more than {self.config.max_redirects} redirects")

    def once(self, url: str, headers: dict[str, str]) -> _Reply:
        """One request; a redirect's Location rides in content_type. The body is read up to max_page_bytes and
        within timeout seconds in all (a server that trickles bytes is cut off too)."""
        import httpx

        cap, started = self.config.max_page_bytes, time.monotonic()
        self.requests += 1
        try:
            with self.client.stream("GET", url, headers=headers) as r:
                if r.is_redirect:
                    return _Reply(r.status_code, url, r.headers.get("location", ""), b"", Validators())
                length = r.headers.get("content-length", "")
                if length.isdigit() and int(length) > cap:
                    raise FetchError(f"page is {int(length):,} bytes, over the limit of {cap:,}")
                body = bytearray()
                for part in r.iter_bytes():
                    body += part
                    if len(body) > cap:
                        raise FetchError(f"page is over the limit of {cap:,} bytes")
                    if time.monotonic() - started > self.config.timeout:
                        raise FetchError(f"page took over {self.config.timeout:g} s to arrive")
                validators = Validators(r.headers.get("etag", ""), r.headers.get("last-modified", ""))
                return _Reply(r.status_code, str(r.url), r.headers.get("content-type", ""), bytes(body), validators)
        except httpx.TimeoutException:
            raise FetchError(f"no answer within {self.config.timeout:g} s (timed out)") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"cannot fetch ({type(exc).__name__}: {exc})") from None

    def wait(self, url: str) -> None:
        """Space requests to one host by the polite delay (robots.txt's Crawl-delay when longer)."""
        parts = urlsplit(url)
        host = f"{parts.scheme}://{parts.netloc}"
        delay = max(self.config.delay, self.last.get(f"delay:{host}", 0.0))
        pause = self.last.get(host, -1e9) + delay - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # politeness toward the site, not a wait for a condition
        self.last[host] = time.monotonic()


def _phrase(status: int) -> str:
    """ "Not Found" for 404: the reason a failure line gives."""
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "an error status"
