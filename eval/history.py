"""`kb eval --history FILE`: replay confirmed (question, passage) pairs into a question memory before scoring.

FILE is a labelled set in the JSONL layout ({"question": ..., "relevant": [...]}); `relevant` names documents
the way the evaluated set names them (document sources or names, corpus ids for a BEIR folder), or chunk
ids for a chunk-level set. Each pair is one confirmation (a thumbs up) of the passage that answers it: for
a document, its chunk closest in meaning to the question. The memory is a scratch file, never the KB's
own; the scored questions never include a replayed one (same text, case and spacing ignored). Each
Hopfield row of the report gets a twin, "<label>+memory", reading that memory; the plain rows read none.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from eval.cache import QueryVectorCache
from eval.datasets import LabelledSet, Tally, load_dataset
from eval.errors import EvalError
from kb import KnowledgeBase, QuestionMemory, TextEmbedder, question_key


@dataclass
class Replay:
    """A replayed history: its memory, the question keys it holds, pairs confirmed, and warnings."""

    memory: QuestionMemory
    questions: frozenset[str]
    pairs: int
    warnings: tuple[str, ...] = ()

    def holds(self, question: str) -> bool:
        return question_key(question) in self.questions

    def with_memory(self, specs: Sequence) -> list:
        """specs with a "+memory" twin after each Hopfield row (the twin reads this replay's memory)."""
        out = []
        for s in specs:
            out.append(s)
            if s.name == "hopfield":
                out.append(replace(s, label=f"{s.label}+memory", memory=self.memory))
        return out


def _doc_chunks(kb: KnowledgeBase) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """{document source: its chunk ids}, {document name: sources}."""
    snap = kb.snapshot()
    ids = [int(i) for i in snap.ids]
    by_source: dict[str, list[int]] = {}
    for i, rec in zip(ids, kb.chunks(ids)):
        if rec is not None:
            by_source.setdefault(rec.doc_source, []).append(i)
    names: dict[str, list[str]] = {}
    for d in kb.documents():
        names.setdefault(d.name, []).append(d.source)
    return by_source, names


def replay_history(
    history: LabelledSet | str | Path,
    kb: KnowledgeBase,
    embedder: TextEmbedder,
    cache_dir: Path | None = None,
    memory_dir: Path | None = None,
    users: Sequence[str | None] | None = None,
) -> Replay:
    """Confirm every (question, relevant target) pair of history into a fresh scratch memory.

    memory_dir: where the memory file goes (default: a temporary folder removed with the Replay).
    users: who confirmed each question (parallel to history's questions; default: nobody, as an import).
    """
    labelled = history if isinstance(history, LabelledSet) else load_dataset(Path(history))
    tally = Tally(f"history {labelled.name}")
    by_source, names = _doc_chunks(kb)
    snap = kb.snapshot()
    present = {int(i) for i in snap.ids}
    qids = list(labelled.queries)
    texts = [labelled.queries[q] for q in qids]
    vectors = QueryVectorCache(cache_dir, embedder).vectors(texts)
    items: dict[str | None, list[tuple[str, np.ndarray, int]]] = {}
    for n, (qid, text, vec) in enumerate(zip(qids, texts, vectors)):
        user = users[n] if users is not None else None
        for target in labelled.qrels[qid]:
            if labelled.level == "chunk":
                if int(target) not in present:
                    tally.add("replayed chunk ids skipped: not in the KB", target)
                    continue
                chunk = int(target)
            else:
                sources = [target] if target in by_source else names.get(target, [])
                if len(sources) != 1 or sources[0] not in by_source:
                    tally.add("replayed documents skipped: not (or not uniquely) in the KB", target)
                    continue
                cands = np.array(by_source[sources[0]], dtype=np.int64)
                pos = snap.positions(cands)
                chunk = int(cands[int(np.argmax(np.asarray(snap.vectors[pos]) @ vec))])
            items.setdefault(user, []).append((text, vec, chunk))
    if memory_dir is None:
        scratch = Path(tempfile.mkdtemp(prefix="kb-eval-memory-"))
        path = scratch / "memory.sqlite"
    else:
        scratch = None
        Path(memory_dir).mkdir(parents=True, exist_ok=True)
        path = Path(memory_dir) / "memory.sqlite"
        path.unlink(missing_ok=True)
    memory = QuestionMemory(kb, path=path)
    pairs = 0
    for user, rows in items.items():
        memory.learn(rows, +1.0, user=user, origin="replay")
        pairs += len(rows)
    if not pairs:
        raise EvalError(f"none of the {len(qids)} history questions names a passage of the KB at {kb.dir}")
    replay = Replay(memory, frozenset(question_key(t) for t in texts), pairs, tuple(tally.messages()))
    if scratch is not None:
        weakref.finalize(memory, shutil.rmtree, scratch, True)
    return replay
