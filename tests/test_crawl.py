"""The crawler against a real local help-centre site (data/sample_site.py): sitemap, robots.txt, redirects,
a 404, a page that changes, one that never answers, conditional requests, and citations that name the page."""

from __future__ import annotations

import json

import pytest

from data.sample_site import CHANGING_AFTER, SampleSite
from ingest import CrawlConfig, IngestConfig, crawl, ingest
from ingest.sitemap import SitemapError, read_sitemap
from kb import KnowledgeBase
from retriever import make_retriever

FAST = CrawlConfig(delay=0.0, timeout=1.0)


@pytest.fixture
def site():
    with SampleSite() as s:
        yield s


def _errors(result) -> dict[str, str]:
    return {p.key.rsplit("/", 1)[-1]: p.error for p in result.pages if p.error}


def test_a_sitemap_crawl_reads_the_pages_and_names_each_failure(site):
    result = crawl([site.url("/help/sitemap.xml")], FAST)
    read = {p.key.rsplit("/", 1)[-1] for p in result.pages if p.data}
    assert {"billing-faq", "refund-and-cancellation-policy", "changing"} <= read
    errors = _errors(result)
    assert errors["missing"] == "HTTP 404 (Not Found)"
    assert "timed out" in errors["hang"]
    assert "not an HTML page (Content-Type application/pdf)" in errors["report.pdf"]
    # robots.txt: the private page is never requested
    assert site.requests["/help/private/secret"] == 0
    assert any("private/secret: disallowed by robots.txt" in w for w in result.warnings)
    # the moved page is the refund policy, read once under its own address
    assert not any(p.key.endswith("old-refunds") for p in result.pages)
    assert site.requests["/help/old-refunds"] == 1
    assert result.sites == (site.url("/help/sitemap.xml"),)


def test_a_sitemap_that_lists_itself_is_read_once(site):
    result = crawl([site.url("/help/loop.xml")], FAST)
    assert [p.key for p in result.pages] == [site.url("/help/billing-faq")]
    assert any("lists itself" in w for w in result.warnings)
    assert site.requests["/help/loop.xml"] == 1


def test_a_start_page_crawl_follows_links_in_scope_only(site):
    result = crawl([site.url("/help/billing-faq")], FAST)
    keys = {p.key for p in result.pages}
    assert site.url("/help/account-recovery") in keys  # linked from the page
    assert site.url("/pricing") not in keys  # linked, but outside /help/
    assert site.requests["/pricing"] == 0


def test_a_redirect_out_of_scope_is_not_followed(site):
    site.listed = ["/help/elsewhere"]
    result = crawl([site.url("/help/sitemap.xml")], FAST)
    assert "outside" in _errors(result)["elsewhere"]


def test_an_unreachable_site_fails_by_name_and_a_bad_sitemap_is_refused(site):
    result = crawl(["http://127.0.0.1:9/sitemap.xml"], FAST)
    assert result.failed and "robots.txt could not be read" in result.failed[0][1] and not result.sites
    with pytest.raises(SitemapError, match="document type"):
        read_sitemap(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><urlset>&a;</urlset>')


def test_a_start_url_with_credentials_is_refused_and_its_password_never_shown(site):
    with_password = site.url("/help/sitemap.xml").replace("http://", "http://agent:hunter2@")
    result = crawl([with_password], FAST)
    assert not result.pages and sum(site.requests.values()) == 0
    (shown, reason), *_ = result.failed
    assert "user name or password" in reason and "hunter2" not in shown + reason and "agent" not in shown


def test_crawl_config_names_a_bad_value():
    with pytest.raises(ValueError, match="timeout"):
        CrawlConfig(timeout=0)


@pytest.mark.slow
def test_a_site_syncs_then_costs_one_304_per_unchanged_page_and_cites_the_page_url(site, embedder, tmp_path):
    kb_dir, sitemap = tmp_path / "kb", site.url("/help/sitemap.xml")
    config = IngestConfig(mirror=True, crawl=FAST)
    first = ingest(kb_dir, [sitemap], config, embedder=embedder)
    failed = {f.path.rsplit("/", 1)[-1]: f.reason for f in first.failed}
    assert set(failed) == {"missing", "hang", "report.pdf"}, first.failed
    assert len(first.added) == 10  # nine sample pages and the changing one
    docs = {d.source: d for d in KnowledgeBase(kb_dir).documents()}
    billing = docs[site.url("/help/billing-faq")]
    assert (billing.kind, billing.url) == ("web", site.url("/help/billing-faq")) and billing.title.startswith("Billing FAQ")
    text = KnowledgeBase(kb_dir).document_text(billing.id)
    assert "cookies" not in text.lower() and "copyright" not in text.lower()  # chrome left out

    site.edit()
    before = dict(site.requests)
    second = ingest(kb_dir, [sitemap], config, embedder=embedder)
    assert second.updated == (site.url("/help/changing"),)
    assert len(second.unchanged) == 9 and not second.added and not second.removed
    assert sum(site.not_modified.values()) == 9  # every unchanged page: one request, answered 304
    assert site.requests["/help/billing-faq"] - before["/help/billing-faq"] == 1
    assert 0 < second.chunks_embedded <= 2  # only the changed page was embedded

    site.listed.remove("/help/billing-faq")  # gone from the sitemap: removed like a deleted file
    third = ingest(kb_dir, [sitemap], config, embedder=embedder)
    assert third.removed == (site.url("/help/billing-faq"),)

    kb = KnowledgeBase(kb_dir)
    hit = make_retriever("hopfield", kb, embedder).search("how long can gift cards be redeemed").hits[0]
    assert hit.chunk.doc_url == site.url("/help/changing") and CHANGING_AFTER[:40] in hit.chunk.text


@pytest.mark.slow
def test_the_cli_syncs_a_sitemap_and_search_names_the_page_url(site, tmp_path):
    from click.testing import CliRunner

    from ui.cli import main

    run = CliRunner().invoke
    kb = str(tmp_path / "kb")
    synced = run(
        main,
        ["sync", site.url("/help/sitemap.xml"), "--kb-dir", kb, "--json", "--crawl-delay", "0", "--crawl-timeout", "1"],
        catch_exceptions=False,
    )
    assert synced.exit_code == 1, synced.output  # the 404, the timeout and the PDF are named failures
    report = json.loads(synced.output)
    assert len(report["added"]) == 10
    found = run(main, ["search", "which API requests are rate limited per minute", "--kb-dir", kb, "-k", "1"])
    assert site.url("/help/api-rate-limits") in found.output


def test_page_size_and_redirect_budgets_fail_the_page_by_name(site):
    small = crawl([site.url("/help/sitemap.xml")], CrawlConfig(delay=0.0, timeout=1.0, max_page_bytes=7000))
    assert "over the limit of 7,000" in _errors(small)["billing-faq"]
    site.listed = ["/help/old-refunds"]
    none = crawl([site.url("/help/sitemap.xml")], CrawlConfig(delay=0.0, timeout=1.0, max_redirects=0))
    assert "more than 0 redirects" in _errors(none)["old-refunds"]


def test_a_polite_crawl_spaces_its_requests(site):
    import time

    site.listed = ["/help/billing-faq", "/help/api-rate-limits"]
    started = time.monotonic()
    crawl([site.url("/help/sitemap.xml")], CrawlConfig(delay=0.2, timeout=1.0))
    assert time.monotonic() - started >= 0.2 * 3  # robots.txt, the sitemap, two pages: three gaps


@pytest.mark.slow
def test_a_sync_killed_before_its_commit_leaves_the_old_pages_and_their_validators(site, embedder, tmp_path):
    import os
    import subprocess
    import sys

    kb_dir, sitemap = tmp_path / "kb", site.url("/help/sitemap.xml")
    site.listed = ["/help/billing-faq", "/help/changing"]
    config = IngestConfig(mirror=True, crawl=FAST)
    ingest(kb_dir, [sitemap], config, embedder=embedder)
    site.edit()
    killed = subprocess.run(
        [sys.executable, "-m", "ui.cli", "sync", sitemap, "--kb-dir", str(kb_dir), "--crawl-delay", "0"],
        env=dict(os.environ, HOPFIELD_KB_FAULT="before-sqlite-commit"),
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    kb = KnowledgeBase(kb_dir)
    assert kb.check().ok
    changing = kb.document(site.url("/help/changing"))
    assert CHANGING_AFTER not in kb.document_text(changing.id) and changing.version == 1
    # The killed run's new ETag was never committed: the next sync fetches the page in full and updates it.
    again = ingest(kb_dir, [sitemap], config, embedder=embedder)
    assert again.updated == (site.url("/help/changing"),) and again.unchanged == (site.url("/help/billing-faq"),)


def test_a_start_page_crawl_cut_by_its_page_limit_removes_nothing(site):
    result = crawl([site.url("/help/billing-faq")], CrawlConfig(delay=0.0, timeout=1.0, max_pages=2))
    assert len(result.pages) == 2 and result.sites == ()  # not complete: a sync removes none of its stored pages
    assert any("limit of 2 pages" in w for w in result.warnings)
