"""What the question log adds to a question, and what reading a period of it costs.

    python -m bench.bench_question_log [--entries 100000] [--writes 300]

Fills a fresh KB's question log with --entries entries (two citations each, spread over 80 days), then
times --writes more record() calls as retriever.log_answer makes them (redaction, retention pruning and one
committed transaction each; goal: < 2 ms, issue 29) and one read of every entry with document health over it.
Half the writes carry personal data (redacted, no vector kept), half a clean question with its 384-d question
vector (kept for insights). Prints milliseconds per write (median, p95; and per kind) and the read's seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from insights import document_health
from kb import KnowledgeBase, LoggedCitation, QuestionLog
from kb.schema import QUESTION_LOG_TABLES, ensure_tables

DAY = 86400.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--writes", type=int, default=300)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Path(tmp) / "kb", create=True)
        log = QuestionLog(kb)
        now = time.time()
        with kb.db.write() as con:
            ensure_tables(con, QUESTION_LOG_TABLES)
        with kb.db.transaction() as con:  # the fill, in one transaction (not what is timed)
            rows = [(now - 80 * DAY * i / max(args.entries, 1), f"question {i}", "answered") for i in range(args.entries)]
            con.executemany("INSERT INTO question_log (at, question, outcome) VALUES (?,?,?)", rows)
            con.execute("INSERT INTO question_log_citations SELECT id, 1, id % 500, 'doc' || (id % 50), 1 FROM question_log")
        cites = [LoggedCitation(1, "doc1", 1), LoggedCitation(2, "doc2", 1)]
        times, with_vector = [], []
        rng = np.random.default_rng(0)
        for i in range(args.writes):
            vector = rng.standard_normal(384).astype(np.float32).tobytes() if i % 2 else None
            question = f"How long is the refund window, case {i}?" if vector else f"mail me at user{i}@example.com"
            t = time.perf_counter()
            log.record(question, "answered", cites, asked_by="key:1", vector=vector, model="all-MiniLM-L6-v2")
            times.append(time.perf_counter() - t)
            with_vector.append(vector is not None)
        t = time.perf_counter()
        entries = log.entries(since=now - 30 * DAY)
        document_health(kb.documents(), entries, [])
        read_s = time.perf_counter() - t
    ms = np.array(times) * 1000
    out = {
        "entries": args.entries,
        "write_ms_median": round(float(np.median(ms)), 2),
        "write_ms_p95": round(float(np.quantile(ms, 0.95)), 2),
        "write_ms_median_with_vector": round(float(np.median(ms[np.array(with_vector)])), 2),
        "write_ms_median_redacted": round(float(np.median(ms[~np.array(with_vector)])), 2),
        "read_30_days_and_health_s": round(read_s, 2),
        "entries_read": len(entries),
    }
    print(out)
    return out


if __name__ == "__main__":
    main()
