"""`kb reembed`: move a KB to another embedding model in one commit.

Under the KB's write lock (a sync waits or is refused meanwhile; searches go on against the old
model), every current chunk's retrieval text is embedded with the new model, and the question
memory's questions with its query encoding. Then one SQLite transaction replaces the stored
vectors, writes a new FAISS snapshot and records the model; manifest.json is rewritten after it.
Killed before that commit, the KB is the old model's, whole; killed after, kb.sqlite's record
wins over the stale manifest.json (kb.store), so the vectors and the model always agree.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kb.embedder import load_embedder
from kb.embedder_base import EmbedderConfig
from kb.question_memory import QuestionMemory
from kb.records import text_hash
from kb.schema import has_table
from kb.store import KnowledgeBase


@dataclass(frozen=True)
class ReembedReport:
    """What a re-embed did. texts: distinct retrieval texts embedded (identical chunks share a vector);
    questions: question-memory associations given new vectors; seconds: the whole run, lock wait included."""

    model_before: str
    model: str
    dim: int
    chunks: int
    texts: int
    questions: int
    seconds: float


def reembed(kb_dir: str | Path, config: EmbedderConfig, wait: float = 0.0, progress: bool = False) -> ReembedReport:
    """Re-embed every current chunk of the KB at kb_dir with config.model and switch the KB to it.

    Raises KBError naming the fix when there is no KB, the model is unknown or its files are damaged,
    or another writer holds the KB past wait seconds.
    """
    started = time.perf_counter()
    kb = KnowledgeBase(kb_dir)
    embedder = load_embedder(config)  # before the lock: a bad model name fails without waiting
    with kb.model_switch(embedder.name, embedder.dim, wait) as writer:
        assert kb.manifest is not None  # model_switch refuses a KB without one
        before = kb.manifest.model
        _, texts = kb.chunk_texts()
        unique = list(dict.fromkeys(texts))
        vectors = embedder.encode(unique, progress=progress)
        writer.switch_model(dict(zip((text_hash(t) for t in unique), vectors)))
        questions = QuestionMemory(kb).questions()
        question_vectors = dict(zip(questions, embedder.encode_queries(questions))) if questions else {}
        changed: list[int] = []
        writer.in_commit(lambda con: changed.append(revector(con, question_vectors, embedder.encode_queries)))
    return ReembedReport(
        model_before=before,
        model=embedder.name,
        dim=embedder.dim,
        chunks=len(texts),
        texts=len(unique),
        questions=sum(changed),
        seconds=time.perf_counter() - started,
    )


def revector(
    con: sqlite3.Connection, vectors: dict[str, np.ndarray], encode_queries: Callable[[list[str]], np.ndarray]
) -> int:
    """Give every association the new model's vector of its question, inside con's open transaction (a model
    switch, kb.reembed); vectors: those embedded beforehand, encode_queries embeds questions learnt since.
    Returns the associations changed; readers see a new memory version."""
    if not has_table(con, "qmem_associations"):
        return 0
    rows = con.execute("SELECT id, question FROM qmem_associations").fetchall()
    late = sorted({q for _, q in rows if q not in vectors})
    if late:
        vectors = {**vectors, **dict(zip(late, encode_queries(late)))}
    con.executemany(
        "UPDATE qmem_associations SET vector = ? WHERE id = ?",
        [(np.asarray(vectors[q], dtype=np.float32).tobytes(), i) for i, q in rows],
    )
    if rows:
        QuestionMemory.bump_version(con)
    return len(rows)
