"""Scanned PDFs: OCR character accuracy, pages per second, and retrieval on a KB built from scans.

Every sample document is typeset as a born-digital PDF and rendered to an image-only "scan" at
300 dpi (data/make_scans.py). Measured in one run:
  - character accuracy of the OCR text against the born-digital text layer of the same page
    (1 - character error rate, jiwer, whitespace runs folded to one space), per page;
  - pages/s: the PDF loader on the scans (render + Tesseract; pages side by side, and one at a time)
    and on the born-digital PDFs;
  - recall@5 of the sample questions (data/questions.jsonl) on a KB synced from the scans
    against one synced from the born-digital PDFs, per retriever, and their ratio.

Usage:
    .venv/bin/python -m bench.bench_ocr [--work DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from data.make_scans import born_digital, scanned_copy

RETRIEVERS = ("hopfield", "dense", "bm25")


def _fold(text: str) -> str:
    return " ".join(text.split())


def page_texts(pdf: Path) -> list[str]:
    from pypdf import PdfReader

    return [_fold(p.extract_text() or "") for p in PdfReader(pdf).pages]


def accuracy(scans: Path, originals: Path) -> tuple[list[tuple[str, int, float]], float]:
    """((document, page, 1 - CER) of every scanned page against the born-digital page's text layer,
    pages/s of the loader on the scans)."""
    import jiwer

    from ingest import load

    out = []
    started = time.perf_counter()
    for scan in sorted(scans.glob("*.pdf")):
        truth = page_texts(originals / scan.name)
        parsed = load(scan, scan.read_bytes())
        for block in parsed.blocks:
            assert block.page is not None  # a PDF's blocks have pages
            ocr = _fold(parsed.text[block.start : block.end])
            out.append((scan.name, block.page, 1 - jiwer.cer(truth[block.page - 1], ocr)))
    return out, len(out) / (time.perf_counter() - started)


def pages_per_second(folder: Path, ocr=None) -> tuple[int, float]:
    """(pages, pages/s) of the PDF loader over every PDF in folder (ocr: an OcrConfig, default OcrConfig())."""
    from pypdf import PdfReader

    from ingest import load

    pages = sum(len(PdfReader(p).pages) for p in folder.glob("*.pdf"))
    started = time.perf_counter()
    for pdf in sorted(folder.glob("*.pdf")):
        load(pdf, pdf.read_bytes(), ocr)
    return pages, pages / (time.perf_counter() - started)


def recall(folder: Path, kb_dir: Path, embedder) -> dict[str, float]:
    """recall@5 per retriever of the sample questions on a KB synced from folder (labels renamed to .pdf)."""
    from eval import evaluate
    from ingest import IngestConfig, ingest

    report = ingest(kb_dir, [folder], IngestConfig(mirror=True), embedder=embedder)
    if report.failed:
        raise SystemExit(f"sync of {folder} failed: {report.failed}")
    records = []
    for line in SAMPLE_QUESTIONS.read_text().splitlines():
        q = json.loads(line)
        records.append(
            {"id": q["id"], "question": q["question"], "relevant": [Path(r).stem + ".pdf" for r in q["relevant"]]}
        )
    rows = evaluate(kb_dir, records, retrievers=RETRIEVERS, k=5, embedder=embedder)
    return {r["retriever"]: r["recall@5"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Folder for the PDFs and KBs (default: a temp dir).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    born, scans = work / "born-digital", work / "scanned"
    born.mkdir(parents=True, exist_ok=True)
    scans.mkdir(parents=True, exist_ok=True)
    for doc in sorted(SAMPLE_DOCS.iterdir()):
        pdf = born_digital(doc)
        (born / f"{doc.stem}.pdf").write_bytes(pdf)
        (scans / f"{doc.stem}.pdf").write_bytes(scanned_copy(pdf))

    from kb import EmbedderConfig, load_embedder

    embedder = load_embedder(EmbedderConfig())
    from ingest import OcrConfig

    per_page, scan_rate = accuracy(scans, born)
    _, one_thread_rate = pages_per_second(scans, OcrConfig(workers=1))
    _, born_rate = pages_per_second(born)
    r_born = recall(born, work / "kb-born", embedder)
    r_scan = recall(scans, work / "kb-scanned", embedder)
    acc = [a for _, _, a in per_page]
    figures = {
        "pages": len(per_page),
        "ocr_char_accuracy_mean": round(statistics.mean(acc), 4),
        "ocr_char_accuracy_median": round(statistics.median(acc), 4),
        "ocr_char_accuracy_min": round(min(acc), 4),
        "ocr_char_accuracy_worst_page": min(per_page, key=lambda x: x[2])[:2],
        "ocr_pages_per_s": round(scan_rate, 3),
        "ocr_pages_per_s_one_page_at_a_time": round(one_thread_rate, 3),
        "born_digital_pages_per_s": round(born_rate, 2),
        "recall@5_born_digital": r_born,
        "recall@5_scanned": r_scan,
        "recall@5_ratio_scanned_over_born": {k: round(r_scan[k] / r_born[k], 4) if r_born[k] else None for k in r_born},
        "machine": f"{os.cpu_count()} cores, OMP_THREAD_LIMIT={os.environ.get('OMP_THREAD_LIMIT', 'unset')}",
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for key, value in figures.items():
        print(f"{key:>34}: {value}")


if __name__ == "__main__":
    main()
