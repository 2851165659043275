"""bench.bench_ingest_formats: the table derived from its figures, and a --quick run of the real bench (real
files, a real local site, both real models) whose JSON holds every figure for each format asked for."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.bench_ingest_formats import table
from bench.common import ROOT


def _figures(chunks: int, ours_s: float, parse_s: float, st_sync_s: float, st_parse_s: float, encode_s: float) -> dict:
    encode_rate = chunks / encode_s
    ratios = {
        "embed_only_ratio": 2.1,
        "wordpiece_batching_gain": 1.1,
        "strict_ratio": chunks / ours_s / encode_rate,
        "like_for_like_ratio": st_sync_s / ours_s,
        "strict_ratio_parse_aside": chunks / (ours_s - parse_s) / encode_rate,
        "like_for_like_ratio_parse_aside": (st_sync_s - st_parse_s) / (ours_s - parse_s),
    }
    return {
        **ratios,
        "median_of_rounds": {key: 1.5 for key in ratios},
        "chunks": chunks,
        "ours_s": ours_s,
        "ours_chunks_per_s": chunks / ours_s,
        "ours_stages_s": {"read": 0.1, "parse": parse_s, "embed": ours_s - parse_s - 0.2, "stage": 0.0, "commit": 0.1},
        "st_encode_chunks_per_s": encode_rate,
        "st_sync_s": st_sync_s,
        "st_sync_stages_s": {"read": 0.1, "parse": st_parse_s, "embed": 1.0, "stage": 0.0, "commit": 0.1},
    }


def test_the_table_has_a_row_per_format_and_shows_scans_with_their_ocr_set_aside():
    result = {
        "documents": {"pdf": 50, "scan": 3},
        "formats": {
            "pdf": _figures(300, 10.0, 0.5, 19.0, 0.5, 20.0),
            "scan": _figures(40, 30.0, 27.0, 33.0, 28.0, 2.0),
        },
    }
    header, rows = table(result)
    assert [r[0] for r in rows] == ["pdf", "scan", "scan, OCR set aside"]
    assert all(len(r) == len(header) for r in rows)
    pdf, scan, aside = (dict(zip(header, r)) for r in rows)
    assert pdf["ours, end to end"] == "30.0 chunks/s (10.0 s)" and pdf["strict"] == "2.00x (median 1.50x)"
    assert pdf["like for like"] == "1.90x (median 1.50x)" and pdf["docs"] == "50"
    assert pdf["embedder alone: vs st; wordpiece batches vs character ones"] == "2.10x (median 1.50x); 1.10x (median 1.50x)"
    assert scan["strict"].startswith("0.07x")  # 1.3 chunks/s end to end against 20 chunks/s of encoding
    # Without the 27 s of OCR: 40 chunks in 3 s against 20 chunks/s; sentence-transformers' sync 5 s against 3 s.
    assert aside["ours, end to end"] == "13.3 chunks/s (3.0 s)" and aside["strict"].startswith("0.67x")
    assert aside["like for like"].startswith("1.67x") and "27.0 s not counted" in aside["stages (ours)"]


def test_a_quick_run_reports_every_figure_for_each_format(shared_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_ingest_formats", "--quick", "--formats", "pdf,html,crawl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(result["formats"]) == ["pdf", "html", "crawl"]
    for fmt, f in result["formats"].items():
        assert f["chunks"] >= 6, fmt  # 3 documents of 2 abstracts each
        assert set(f["ours_stages_s"]) == {"read", "parse", "embed", "stage", "commit"}
        assert f["ours_by_chars_encode_s"] > 0 and f["wordpiece_batching_gain"] > 0
        assert f["ours_stages_s"]["embed"] > 0 and f["strict_ratio"] > 0 and f["like_for_like_ratio"] > 0
        (one,) = f["rounds"]
        # the fastest of one round, and the median of its ratios, are that round's
        assert one["strict_ratio"] == f["strict_ratio"] == f["median_of_rounds"]["strict_ratio"]
        # the rates are rounded to 0.1 chunk/s, the ratio computed before rounding
        assert abs(f["strict_ratio"] - f["ours_chunks_per_s"] / f["st_encode_chunks_per_s"]) < 0.05 * f["strict_ratio"]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| format ") and " strict " in lines[0]
    assert [line.split("|")[1].strip() for line in lines[2:5]] == ["pdf", "html", "crawl"]
