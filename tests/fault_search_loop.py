"""Search a KB in a loop until told to stop, recording every answer: the reader side of the fault tests.

Run in its own process (tests/fault_server.py calls main) while syncs commit to the same KB.
argv: KB_DIR OUT_JSONL STOP_FILE. Each line of OUT_JSONL is one search:
    {"retriever", "token", "hits": [[doc_name, doc_version, [revision codes in the chunk text]]...], "error"}
and every 7th line also a full integrity check: {"check": [problems]}. The loop keeps one
KnowledgeBase and one retriever per kind for its whole life, as the UI does, so it must follow
each commit without a restart.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from kb import KnowledgeBase, load_embedder
from retriever import make_retriever
from tests.fault_corpus import CODE, QUERY


def main(argv: list[str]) -> int:
    kb_dir, out_path, stop = Path(argv[0]), Path(argv[1]), Path(argv[2])
    kb = KnowledgeBase(kb_dir)
    embedder = load_embedder()
    retrievers = [make_retriever(name, kb, embedder=embedder, top_k=8, candidates=20) for name in ("dense", "bm25")]
    n = 0
    with open(out_path, "w", encoding="utf-8") as out:
        while not stop.exists():
            r = retrievers[n % 2]
            row: dict = {"retriever": r.name}
            try:
                result = r.search(QUERY)
                row["hits"] = [[h.chunk.doc_name, h.chunk.doc_version, CODE.findall(h.chunk.text)] for h in result.hits]
                row["token"] = kb.token()
                if n % 7 == 0:
                    row["check"] = list(kb.check().problems)
            except Exception:  # recorded, not raised: the test asserts there were none
                row["error"] = traceback.format_exc()
            out.write(json.dumps(row) + "\n")
            out.flush()
            n += 1
            time.sleep(0.005)  # leave the syncs some CPU on a 2-core machine; still ~100 searches/s
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
