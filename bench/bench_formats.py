"""What the newer sources cost: pages/s through the crawler, rows/s through the spreadsheet and CSV loaders.

    crawl        the sample site (data/sample_site.py) on 127.0.0.1 with --bulk copies of its pages, crawled
                 from its sitemap with NO politeness delay (delay 0; a real sync waits 1 s per request by
                 default, so a real site's figure is its delay, not ours): fetch only (ingest.crawl), then
                 a full `ingest` (fetch, main content by trafilatura, chunk, embed, commit), then the
                 same sync again, where every page answers 304 and nothing is parsed
    xlsx, csv    a --rows-row sheet (XlsxWriter; eight columns of distinct values) and the same rows as CSV:
                 load (parse) and parse_file (parse, chunk, checks) in this process, as rows/s

Prints one JSON object. Usage: .venv/bin/python -m bench.bench_formats [--rows 100000] [--bulk 10]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HEADER = ["Order", "Customer", "Plan", "Seats", "Region", "Amount", "Currency", "Status"]
PLANS, REGIONS, STATUSES = ("Starter", "Team", "Business"), ("EU", "US", "APAC"), ("paid", "refunded", "open")


def rows(n: int) -> list[list[object]]:
    """n distinct order rows (no two chunks repeat, so the repetition check passes as on real sheets)."""
    return [
        [f"INV-{i:06d}", f"Customer {i * 7919 % 100_003}", PLANS[i % 3], 1 + i % 40, REGIONS[i % 3], round(10 + i * 0.37, 2)]
        + ["USD", STATUSES[i % 3]]
        for i in range(n)
    ]


def spreadsheet_bytes(data: list[list[object]]) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"constant_memory": True, "in_memory": True})
    sheet = book.add_worksheet("Orders")
    sheet.write_row(0, 0, HEADER)
    for r, row in enumerate(data, start=1):
        sheet.write_row(r, 0, row)
    book.close()
    return out.getvalue()


def csv_bytes(data: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(data)
    return out.getvalue().encode()


def table_rates(n: int) -> dict:
    from ingest import ChunkConfig, load, parse_file

    data = rows(n)
    out: dict = {"rows": n}
    for kind, make in (("xlsx", spreadsheet_bytes), ("csv", csv_bytes)):
        blob, path = make(data), Path(f"orders.{kind}")
        started = time.perf_counter()
        parsed = load(path, blob)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        doc, _ = parse_file(path, blob, ChunkConfig())
        chunked = time.perf_counter() - started
        out[kind] = {
            "mb": round(len(blob) / 2**20, 1),
            "load_s": round(loaded, 2),
            "load_rows_per_s": round(n / loaded),
            "parse_chunk_s": round(chunked, 2),
            "parse_chunk_rows_per_s": round(n / chunked),
            "chunks": len(doc.chunks),
            "sections": len(parsed.blocks),
        }
        print(kind, out[kind], file=sys.stderr, flush=True)
    return out


def crawl_rates(bulk: int) -> dict:
    from data.sample_site import SampleSite
    from ingest import CrawlConfig, IngestConfig, crawl, ingest
    from kb import EmbedderConfig, load_embedder

    config = CrawlConfig(delay=0.0, timeout=2.0)
    embedder = load_embedder(EmbedderConfig())
    with SampleSite(bulk=bulk) as site, tempfile.TemporaryDirectory() as tmp:
        site.listed = [p for p in site.listed if p != "/help/hang"]  # a timeout would measure our budget, not us
        sitemap = site.url("/help/sitemap.xml")
        started = time.perf_counter()
        fetched = crawl([sitemap], config)
        fetch_s = time.perf_counter() - started
        pages = sum(1 for p in fetched.pages if p.data)
        started = time.perf_counter()
        first = ingest(Path(tmp) / "kb", [sitemap], IngestConfig(mirror=True, crawl=config), embedder=embedder)
        sync_s = time.perf_counter() - started
        requests_before = sum(site.requests.values())
        started = time.perf_counter()
        again = ingest(Path(tmp) / "kb", [sitemap], IngestConfig(mirror=True, crawl=config), embedder=embedder)
        resync_s = time.perf_counter() - started
        stages = dict(first.stage_seconds)
        return {
            "pages": pages,
            "politeness_delay_s": 0.0,
            "fetch_s": round(fetch_s, 2),
            "fetch_pages_per_s": round(pages / fetch_s, 1),
            "sync_s": round(sync_s, 2),
            "sync_pages_per_s": round(len(first.added) / sync_s, 2),
            "sync_stages_s": {k: round(v, 2) for k, v in stages.items()},
            "parse_pages_per_s": round(len(first.added) / stages["parse"], 1),
            "chunks": first.chunks_written,
            "resync_s": round(resync_s, 2),
            "resync_pages_per_s": round(len(again.unchanged) / resync_s, 1),
            "resync_304": sum(site.not_modified.values()),
            "resync_requests": sum(site.requests.values()) - requests_before,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--bulk", type=int, default=10, help="copies of the sample pages on the site")
    args = parser.parse_args()
    result = {"tables": table_rates(args.rows), "crawl": crawl_rates(args.bulk)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
