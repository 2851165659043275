"""The lexical index at scale (issue 15): build time, freshness after a sync, query latency and memory.

Runs on a private copy of the given KB (the benchmark KBs stay as built) in one fresh process:

    build       the whole lexical index rebuilt from the chunk texts (what an upgrade or
                `kb check --repair` does; a sync pays it only for new and changed chunks), against
                training and filling the KB's vector index from the same chunks' vectors
    query       Hopfield question -> top-10 latency, warm (p50 / p95); dense for reference
    memory      resident growth per chunk: snapshot loaded, then after 100 Hopfield questions
    fresh       10 documents change in ANOTHER process (ingest_texts appends a sentence to each, as
                `kb sync` of 10 edited files would) while questions keep coming, one after another, as
                they do to the HTTP server (its KnowledgeBase loads a new snapshot in the background):
                the latency of the first question answered from the new snapshot against the warm
                median, the slowest question meanwhile, and how long after the sync finished the new
                version was first served

    python -m bench.bench_views --kb-dir KB [-n 100] [--skip-build]     # prints one JSON object
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from bench.common import ROOT, have_scifact, latency, rss_bytes, sample_questions, scifact_queries

# Edits ten documents of the KB at argv[1] in a separate process: each chunk's text gets a sentence
# appended and is re-embedded (a real sync of ten changed files, without needing the files).
EDIT_TEN = """
import sys
from kb import KnowledgeBase
from ingest import IngestConfig, TextRecord, ingest_texts
kb = KnowledgeBase(sys.argv[1])
docs = kb.documents()[:: max(1, len(kb.documents()) // 10)][:10]
records = [TextRecord(d.source, d.title, kb.document_text(d.id) + " Reviewed in the December policy audit.", name=d.name)
           for d in docs]
report = ingest_texts(kb, records, IngestConfig())
print(report.counts())
"""


def _questions(n: int) -> list[str]:
    pool = scifact_queries()[3] if have_scifact() else sample_questions()
    return list(dict.fromkeys(pool))[:n]


def build_times(kb_dir: Path) -> dict:
    """Seconds to rebuild the lexical index from all chunk texts, and to build the vector index."""
    import sqlite3

    from kb import IndexConfig, KnowledgeBase
    from kb.lexical_rebuild import rebuild
    from kb.reads import retrieval_texts
    from kb.vector_index import build_index

    kb = KnowledgeBase(kb_dir)
    snap = kb.snapshot()
    vectors = np.ascontiguousarray(np.asarray(snap.vectors, dtype=np.float32))
    t = time.perf_counter()
    index = build_index(snap.ids, vectors, IndexConfig())
    vector_s = time.perf_counter() - t
    del index, vectors
    con = sqlite3.connect(kb_dir / "kb.sqlite", isolation_level=None)
    t = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    # As the writer's repair and the schema upgrade call it: the texts read as the rebuild goes, in its transaction.
    # (Until 2026-12-06 every text was read first, 0.3-0.5 s at 100k that the callers overlap with the workers.)
    rebuild(con, retrieval_texts(con))
    con.execute("COMMIT")
    lexical_s = time.perf_counter() - t
    con.close()
    return {"lexical_build_s": lexical_s, "vector_index_build_s": vector_s, "index": type(snap.index).__name__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, required=True)
    parser.add_argument("-n", type=int, default=100, help="measured questions per figure (default 100)")
    parser.add_argument("--skip-build", action="store_true", help="skip the build timing (saves its minutes at 1M)")
    parser.add_argument("--skip-fresh", action="store_true", help="skip the sync and the first question after it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.kb_dir.parent, prefix="views-") as tmp:
        kb_dir = Path(tmp) / "kb"
        if args.skip_build and args.skip_fresh:
            kb_dir = args.kb_dir  # nothing is written: no copy (a 1M-chunk KB is ~14 GB)
        else:
            shutil.copytree(args.kb_dir, kb_dir)
        out: dict = {"kb_dir": str(args.kb_dir)}
        out.update(build_times(kb_dir) if not args.skip_build else {})

        from kb import KnowledgeBase, load_embedder
        from retriever import make_retriever

        embedder = load_embedder()
        questions = _questions(3 * args.n + 20)
        rss0 = rss_bytes()
        kb = KnowledgeBase(kb_dir, background_refresh=True)  # what the HTTP server opens
        snap = kb.snapshot()
        out["chunks"] = snap.size
        out["rss_snapshot_per_chunk"] = (rss_bytes() - rss0) / snap.size
        hop = make_retriever("hopfield", kb, embedder, top_k=10)
        dense = make_retriever("dense", kb, embedder, top_k=10)
        # The retrievers' shared cache of question vectors (512): what is timed below is retrieval, not the model.
        # (Until 2026-12-05 this embedded the questions into no cache, so every timing included ~10 ms of it.)
        for q in questions[:500]:
            hop.embed_queries([q])
        t = time.perf_counter()
        hop.search(questions[0])
        out["first_hopfield_s"] = time.perf_counter() - t
        for q in questions[1:20]:
            hop.search(q)
        warm = latency(lambda q: hop.search(q, 10), questions[20 : 20 + args.n])
        out["hopfield_p50_s"], out["hopfield_p95_s"] = float(np.median(warm)), float(np.percentile(warm, 95))
        out["rss_per_chunk"] = (rss_bytes() - rss0) / snap.size
        d = latency(lambda q: dense.search(q, 10), questions[20 + args.n : 20 + 2 * args.n])
        out["dense_p50_s"], out["dense_p95_s"] = float(np.median(d)), float(np.percentile(d, 95))
        if not args.skip_fresh:
            fresh = iter(questions[20 + 2 * args.n :] * 50)
            sync = subprocess.Popen(
                [sys.executable, "-c", EDIT_TEN, str(kb_dir)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            started = time.perf_counter()
            during = []
            while sync.poll() is None:  # questions while the other process embeds and commits
                t = time.perf_counter()
                hop.search(next(fresh), 10)
                during.append(time.perf_counter() - t)
            stdout, stderr = sync.communicate()
            if sync.returncode != 0:
                raise RuntimeError(f"the sync of ten documents failed:\n{stderr[-2000:]}")
            synced = time.perf_counter()
            out["sync_s"] = synced - started
            out["sync_counts"] = stdout.strip()
            new_token = kb.token()
            after = []
            while True:
                t = time.perf_counter()
                result = hop.search(next(fresh), 10)
                after.append(time.perf_counter() - t)
                if result.snapshot == new_token:
                    break
                if time.perf_counter() - synced > 600:
                    raise RuntimeError("the new snapshot was not served within 600 s")
            out["first_after_sync_s"] = after[-1]
            out["new_version_served_after_s"] = time.perf_counter() - synced
            out["questions_before_new_version"] = len(after) - 1
            out["slowest_question_during_sync_s"] = max(during + after) if during or after else 0.0
            out["answered_from_new_snapshot"] = result.snapshot == new_token != snap.token
            settled = latency(lambda q: hop.search(q, 10), [next(fresh) for _ in range(20)])
            out["after_sync_p50_s"] = float(np.median(settled))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
