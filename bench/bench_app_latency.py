"""Time from question submit to rendered answer in the real app (headless Chromium), on the sample KB.

Starts `streamlit run ui/app/main.py` on a free localhost port against a KB (by default a
fresh one built from data/docs in a temp folder), opens it in Chromium, asks N sample
questions from data/questions.jsonl one after another in one conversation, and
measures for each the wall time from pressing Enter to the answer (or the
not-found message) appearing in the page. The first question after start-up is
reported separately (it pays for loading the model and building the indexes).

Usage:
    .venv/bin/python -m bench.bench_app_latency                 # 10 questions, hopfield retriever
    .venv/bin/python -m bench.bench_app_latency --kb-dir kb_data -n 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from ingest import IngestConfig, ingest
from ui.app.server import running_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, default=None, help="KB to serve (default: temp KB from data/docs)")
    parser.add_argument("-n", type=int, default=10, help="questions to time (default 10)")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a screenshot of the final page here")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures (for bench.run)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("Chromium is not installed: apt-get install chromium", file=sys.stderr)
        return 2
    tmp = tempfile.TemporaryDirectory()
    kb_dir = args.kb_dir
    if kb_dir is None:
        kb_dir = Path(tmp.name) / "kb"
        ingest(kb_dir, [SAMPLE_DOCS], IngestConfig())
    questions = [json.loads(line)["question"] for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]
    # spread over the set: clean, typo and loose questions alike
    picked = [questions[i * len(questions) // args.n] for i in range(args.n)]

    started = time.perf_counter()
    with running_app(kb_dir, log_path=Path(tmp.name) / "app.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url)
        box = page.get_by_test_id("stChatInputTextArea")
        box.wait_for()
        ready = time.perf_counter() - started
        times = []
        for i, question in enumerate(["How do I reset a forgotten password?"] + picked):
            box.fill(question)
            t0 = time.perf_counter()
            box.press("Enter")
            page.locator(".kb-answer").nth(i).wait_for()
            times.append(time.perf_counter() - t0)
        if args.screenshot:
            page.screenshot(path=str(args.screenshot), full_page=True)
        browser.close()
    tmp.cleanup()
    warm = times[1:]
    print(f"app ready (server start + first page load): {ready:.2f} s")
    print(f"first question after start-up (loads the model, builds indexes): {times[0] * 1000:.0f} ms")
    print(
        f"{len(warm)} sample questions, submit -> rendered answer: median {statistics.median(warm) * 1000:.0f} ms, "
        f"min {min(warm) * 1000:.0f} ms, max {max(warm) * 1000:.0f} ms"
    )
    print("per question (ms): " + ", ".join(f"{t * 1000:.0f}" for t in warm))
    if args.json:
        print(
            json.dumps(
                {
                    "ready_s": ready,
                    "first_s": times[0],
                    "median_s": statistics.median(warm),
                    "max_s": max(warm),
                    "n": len(warm),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
