"""From a labelled set to the KB: ingest its corpus, and map its targets onto the KB's identities.

A set names what is relevant by document source (or name) or by chunk id; a KB ranks chunks. These
functions put the two in one vocabulary: qrels keyed by what the KB holds, rankings as targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from eval.datasets import LabelledSet, Tally
from eval.errors import EvalError
from ingest import IngestConfig, IngestReport, ingest_texts
from kb import KnowledgeBase, TextEmbedder


def prepare_kb(labelled: LabelledSet, kb_dir: Path, embedder: TextEmbedder, progress: bool = False) -> IngestReport | None:
    """Ingest the set's corpus into kb_dir (new or changed documents only); None when it has no corpus.

    A KB holding documents that are not in the corpus is refused: they would compete with the
    corpus and change every number (and ingesting a benchmark into a real KB would pollute it).
    """
    if labelled.corpus is None:
        return None
    corpus_ids = {r.source for r in labelled.corpus}
    if (kb_dir / "kb.sqlite").exists():
        foreign = [d.source for d in KnowledgeBase(kb_dir).documents() if d.source not in corpus_ids]
        if foreign:
            raise EvalError(
                f"{kb_dir} holds {len(foreign)} documents that are not in the {labelled.name} corpus "
                f"(e.g. {foreign[0]!r}); give the dataset its own --kb-dir"
            )
    return ingest_texts(kb_dir, list(labelled.corpus), IngestConfig(progress=progress), embedder=embedder)


def resolve_qrels(labelled: LabelledSet, kb: KnowledgeBase) -> tuple[dict[str, dict[str, int]], list[str]]:
    """The set's judgements keyed by KB identity (document source, or chunk id as text), and warnings.

    Targets the KB does not hold are dropped and counted; so are questions left with none.
    """
    tally = Tally(f"{labelled.name} vs {kb.dir}")
    if labelled.level == "doc":
        sources: set[str] = set()
        by_name: dict[str, list[str]] = {}
        for d in kb.documents():
            sources.add(d.source)
            by_name.setdefault(d.name, []).append(d.source)

        def key(target: str) -> str | None:
            if target in sources:
                return target
            hits = by_name.get(target, [])
            if len(hits) > 1:
                tally.add("relevant names skipped: they name several KB documents (give the full source)", target)
                return None
            if not hits:
                tally.add("relevant documents skipped: not in the KB", target)
                return None
            return hits[0]
    else:
        present = {str(int(i)) for i in kb.snapshot().ids}

        def key(target: str) -> str | None:
            if target in present:
                return target
            tally.add("relevant chunk ids skipped: not in the KB", target)
            return None

    qrels: dict[str, dict[str, int]] = {}
    for qid, targets in labelled.qrels.items():
        kept: dict[str, int] = {}
        for target, grade in targets.items():
            k = key(target)
            if k is not None:
                kept[k] = max(grade, kept.get(k, 0))
        if kept:
            qrels[qid] = kept
        else:
            tally.add("questions dropped: none of their relevant targets is in the KB", qid)
    if not qrels:
        raise EvalError(
            f"none of the {len(labelled.qrels)} questions of {labelled.name} has a relevant target in "
            f"the KB at {kb.dir} ({'; '.join(tally.messages())}); is it the right --kb-dir?"
        )
    return qrels, tally.messages()


def chunk_documents(kb: KnowledgeBase) -> dict[int, str]:
    """{chunk id: document source} for every chunk of the current snapshot."""
    ids = [int(i) for i in kb.snapshot().ids]
    return {i: rec.doc_source for i, rec in zip(ids, kb.chunks(ids)) if rec is not None}


def to_targets(chunk_ids: Sequence[int] | np.ndarray, doc_of: dict[int, str] | None, cutoff: int) -> list[str]:
    """Chunk ids best first -> targets best first: chunk ids as text, or each document once at its best chunk."""
    if doc_of is None:
        return [str(int(i)) for i in chunk_ids[:cutoff]]
    out: dict[str, None] = {}
    for i in chunk_ids:
        doc = doc_of.get(int(i))
        if doc is not None and doc not in out:
            out[doc] = None
            if len(out) == cutoff:
                break
    return list(out)
