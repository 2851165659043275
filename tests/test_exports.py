"""Zendesk and Confluence exports built from the sample docs: one document per article/page, re-exports sync deltas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data import SAMPLE_DOCS
from data.make_exports import HELP_CENTRE, sample_pages, write_confluence_export, zendesk_export
from ingest import IngestConfig, ingest
from kb import KnowledgeBase
from retriever import make_retriever

WIKI = "https://wiki.tallyo.example"


@pytest.fixture
def zendesk(tmp_path) -> Path:
    folder = tmp_path / "helpcentre"
    folder.mkdir()
    (folder / "articles.json").write_text(json.dumps(zendesk_export(SAMPLE_DOCS)), encoding="utf-8")
    return folder


def _docs(kb_dir: Path) -> dict:
    return {d.source: d for d in KnowledgeBase(kb_dir).documents()}


def test_a_zendesk_export_becomes_one_document_per_article_with_its_title_url_and_date(zendesk, embedder, tmp_path):
    report = ingest(tmp_path / "kb", [zendesk], IngestConfig(mirror=True), embedder=embedder)
    assert not report.failed, report.failed
    articles = zendesk_export(SAMPLE_DOCS)["articles"]
    assert sorted(report.added) == sorted(f"articles.json#{a['id']}" for a in articles)
    docs = _docs(tmp_path / "kb")
    refunds = next(a for a in articles if "refund" in a["html_url"])
    doc = docs[f"articles.json#{refunds['id']}"]
    assert (doc.title, doc.url, doc.updated_at) == (refunds["title"], refunds["html_url"], "2025-03-01T09:00:00Z")
    assert doc.path.endswith("articles.json")
    hit = (
        make_retriever("hopfield", KnowledgeBase(tmp_path / "kb"), embedder)
        .search("how is a refund calculated when an annual plan is cancelled after 14 days")
        .hits[0]
    )
    assert hit.chunk.doc_url == refunds["html_url"]


def test_a_zendesk_reexport_syncs_only_the_edited_article_and_drops_the_deleted_one(zendesk, embedder, tmp_path):
    ingest(tmp_path / "kb", [zendesk], IngestConfig(mirror=True), embedder=embedder)
    export = zendesk_export(SAMPLE_DOCS)
    edited, deleted = export["articles"][0], export["articles"][1]
    edited["body"] += "<p>Accounts closed by mistake can be restored by support within 30 days.</p>"
    edited["updated_at"] = "2025-04-02T08:00:00Z"
    export["articles"].remove(deleted)
    export["articles"].reverse()  # a new export lists articles in another order, with other paging fields
    export["page_count"] = 2
    (zendesk / "articles.json").write_text(json.dumps(export), encoding="utf-8")
    report = ingest(tmp_path / "kb", [zendesk], IngestConfig(mirror=True), embedder=embedder)
    assert report.updated == (f"articles.json#{edited['id']}",)
    assert report.removed == (f"articles.json#{deleted['id']}",)
    assert len(report.unchanged) == len(export["articles"]) - 1
    stored = _docs(tmp_path / "kb")[f"articles.json#{edited['id']}"]
    assert (stored.version, stored.updated_at) == (2, "2025-04-02T08:00:00Z")
    # Only the edited article's changed chunks were embedded; the rest came from the KB's cache.
    assert 0 < report.chunks_embedded <= stored.n_chunks


def test_the_cli_syncs_an_export_and_search_names_the_article_url(zendesk, tmp_path):
    from click.testing import CliRunner

    from ui.cli import main

    run = CliRunner().invoke
    synced = run(main, ["sync", str(zendesk), "--kb-dir", str(tmp_path / "kb"), "--json"], catch_exceptions=False)
    assert synced.exit_code == 0, synced.output
    assert len(json.loads(synced.output)["added"]) == len(zendesk_export(SAMPLE_DOCS)["articles"])
    found = run(
        main,
        ["search", "which API requests are rate limited per minute", "--kb-dir", str(tmp_path / "kb"), "-k", "1"],
        catch_exceptions=False,
    )
    assert f"{HELP_CENTRE}/" in found.output and "api-rate-limits" in found.output


def test_an_article_removed_from_an_export_goes_even_without_mirroring(zendesk, embedder, tmp_path):
    ingest(tmp_path / "kb", [zendesk], IngestConfig(), embedder=embedder)
    export = zendesk_export(SAMPLE_DOCS)
    gone = export["articles"].pop()
    (zendesk / "articles.json").write_text(json.dumps(export), encoding="utf-8")
    report = ingest(tmp_path / "kb", [zendesk / "articles.json"], IngestConfig(), embedder=embedder)
    assert report.removed == (f"articles.json#{gone['id']}",)


def test_a_broken_or_foreign_json_is_named_and_the_stored_articles_stay(zendesk, embedder, tmp_path):
    ingest(tmp_path / "kb", [zendesk], IngestConfig(mirror=True), embedder=embedder)
    before = _docs(tmp_path / "kb")
    (zendesk / "articles.json").write_text('{"articles": [', encoding="utf-8")
    (zendesk / "settings.json").write_text('{"theme": "dark"}', encoding="utf-8")
    report = ingest(tmp_path / "kb", [zendesk], IngestConfig(mirror=True), embedder=embedder)
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert reasons["articles.json"].startswith("not valid JSON")
    assert "not a Zendesk Help Center articles export" in reasons["settings.json"]
    assert report.removed == () and report.added == ()
    assert {k: d.version for k, d in _docs(tmp_path / "kb").items()} == {k: d.version for k, d in before.items()}


def test_drafts_are_not_published_into_the_kb(zendesk, embedder, tmp_path):
    export = zendesk_export(SAMPLE_DOCS)
    export["articles"][0]["draft"] = True
    (zendesk / "articles.json").write_text(json.dumps(export), encoding="utf-8")
    report = ingest(tmp_path / "kb", [zendesk], IngestConfig(mirror=True), embedder=embedder)
    assert f"articles.json#{export['articles'][0]['id']}" not in report.added
    assert any("1 draft article(s) skipped" in w for w in report.warnings)


def test_confluence_pages_keep_title_date_and_live_url_and_leave_the_chrome_out(embedder, tmp_path):
    ids = write_confluence_export(SAMPLE_DOCS, tmp_path / "space")
    report = ingest(tmp_path / "kb", [tmp_path / "space"], IngestConfig(mirror=True, base_url=WIKI), embedder=embedder)
    assert not report.failed, report.failed
    docs = _docs(tmp_path / "kb")
    titles = dict((stem, title) for stem, title, _ in sample_pages(SAMPLE_DOCS))
    name, page_id = next((n, i) for n, i in ids.items() if n.lower().startswith("refund"))
    doc = docs[name]
    assert doc.title == titles["refund-and-cancellation-policy"]
    assert (doc.url, doc.updated_at) == (f"{WIKI}/pages/viewpage.action?pageId={page_id}", "2025-03-01")
    text = KnowledgeBase(tmp_path / "kb").document_text(doc.id)
    for chrome in ("Document generated by Confluence", "Attachments:", "last modified by", "Tallyo Support :"):
        assert chrome not in text


def test_a_confluence_reexport_changes_only_the_edited_page(embedder, tmp_path):
    write_confluence_export(SAMPLE_DOCS, tmp_path / "space")
    ingest(tmp_path / "kb", [tmp_path / "space"], IngestConfig(mirror=True), embedder=embedder)
    ids = write_confluence_export(SAMPLE_DOCS, tmp_path / "space", exported="Apr 02, 2025 10:30")
    edited = next(n for n in ids if n.lower().startswith("account"))
    page = (tmp_path / "space" / edited).read_text()
    page = page.replace("</p>", " Recovery codes can be printed from the security settings.</p>", 1)
    (tmp_path / "space" / edited).write_text(page.replace("Mar 01, 2025", "Apr 01, 2025"))
    report = ingest(tmp_path / "kb", [tmp_path / "space"], IngestConfig(mirror=True), embedder=embedder)
    assert report.updated == (edited,)
    # Every other file changed (the export time in its footer) but not its content: no new version.
    assert set(report.unchanged) == set(ids) - {edited} | {"index.html"}
    assert report.chunks_embedded > 0
    docs = _docs(tmp_path / "kb")
    assert (docs[edited].version, docs[edited].updated_at) == (2, "2025-04-01")
    assert all(d.version == 1 for k, d in docs.items() if k != edited)


def test_a_server_source_names_its_wiki_address_for_the_api_sync_jobs(tmp_path):
    from api import load_config

    (tmp_path / "server.toml").write_text(
        '[collections.it]\nkb_dir = "kb"\nsources = [{path = "space", base_url = "https://wiki.tallyo.example"}]\n'
    )
    source = load_config(tmp_path / "server.toml").collections["it"].sources[0]
    assert (source.path, source.base_url) == ((tmp_path / "space").resolve(), "https://wiki.tallyo.example")
