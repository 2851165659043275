"""The knowledge bases the benchmarks run on, built once under the work directory and reused.

    sample     data/docs ingested (the repository's sample KB)
    scifact    BEIR SciFact's 5,183 abstracts ingested with ingest_texts (about 12k chunks)
    synthetic  N chunks made from SciFact's REAL chunk vectors: copy 0 is SciFact itself, copy k > 0
               re-adds every SciFact document under a new source and title "<title> [k]" with each
               vector plus Gaussian noise (sigma per dimension) and re-normalised. Texts are reused
               (so BM25 and the character n-gram views exist and behave like real text); the title
               suffix keeps each copy's retrieval text, and so its stored vector, distinct.

A JSON marker beside each KB records how it was built (and how long that took); a KB whose
marker does not match the requested build is rebuilt. Nothing is written inside the repository.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench.common import scifact_corpus
from kb import IndexConfig, KnowledgeBase, NewChunk, NewDocument, load_embedder


def _marker(kb_dir: Path) -> Path:
    return kb_dir.with_name(kb_dir.name + ".json")


def _cached(kb_dir: Path, key: dict) -> dict | None:
    marker = _marker(kb_dir)
    if not marker.exists() or not (kb_dir / "kb.sqlite").exists():
        return None
    info = json.loads(marker.read_text())
    return info if info.get("key") == key else None


def _fresh(kb_dir: Path) -> None:
    _marker(kb_dir).unlink(missing_ok=True)
    shutil.rmtree(kb_dir, ignore_errors=True)
    kb_dir.parent.mkdir(parents=True, exist_ok=True)


def _save(kb_dir: Path, key: dict, info: dict) -> dict:
    info = {"key": key, **info}
    _marker(kb_dir).write_text(json.dumps(info, indent=1))
    return info


def index_key() -> dict:
    """The index defaults a KB was built under: a change of defaults means a rebuild."""
    return asdict(IndexConfig())


def sample_kb(workdir: Path) -> tuple[Path, dict]:
    """data/docs ingested into workdir/kb_sample; returns (dir, build info)."""
    from data import SAMPLE_DOCS
    from ingest import IngestConfig, ingest

    kb_dir = workdir / "kb_sample"
    files = sorted(p.name + str(p.stat().st_size) for p in SAMPLE_DOCS.iterdir())
    key = {"what": "sample", "files": files, "index": index_key()}
    info = _cached(kb_dir, key)
    if info is None:
        _fresh(kb_dir)
        report = ingest(kb_dir, [SAMPLE_DOCS], IngestConfig(), embedder=load_embedder())
        info = _save(
            kb_dir,
            key,
            {
                "seconds": report.seconds,
                "stage_seconds": dict(report.stage_seconds),
                "chunks": report.chunks_written,
                "reused": False,
            },
        )
    else:
        info["reused"] = True
    return kb_dir, info


def scifact_kb(workdir: Path) -> tuple[Path, dict]:
    """SciFact's corpus ingested with ingest_texts into workdir/kb_scifact (about 2.5 min cold)."""
    from ingest import IngestConfig, TextRecord, ingest_texts

    kb_dir = workdir / "kb_scifact"
    key = {"what": "scifact", "index": index_key()}
    info = _cached(kb_dir, key)
    if info is not None:
        info["reused"] = True
        return kb_dir, info
    _fresh(kb_dir)
    records = [
        TextRecord(source=d["_id"], title=d.get("title", ""), text=d.get("text", ""), name=d["_id"])
        for d in scifact_corpus()
    ]
    embedder = load_embedder()
    report = ingest_texts(kb_dir, records, IngestConfig(), embedder=embedder)
    stages = dict(report.stage_seconds)
    stages["commit"] = max(report.seconds - sum(stages.values()), 0.0)
    info = _save(
        kb_dir,
        key,
        {
            "seconds": report.seconds,
            "stage_seconds": stages,
            "chunks": report.chunks_written,
            "precision": embedder.precision,
            "reused": False,
        },
    )
    return kb_dir, info


def _scifact_documents(src: KnowledgeBase) -> list[tuple[NewDocument, np.ndarray]]:
    """Every document of the SciFact KB with its chunks and their stored vectors, in id order."""
    snap = src.snapshot()
    found = src.chunks(snap.ids.tolist())
    records = [rec for rec in found if rec is not None]
    if len(records) != len(found):
        raise RuntimeError(f"{src.dir} changed while it was read; copy it again")
    vectors = np.asarray(snap.vectors, dtype=np.float32)
    by_doc: dict[int, list[int]] = {}
    for row, rec in enumerate(records):
        by_doc.setdefault(rec.doc_id, []).append(row)
    docs = {d.id: d for d in src.documents()}
    out = []
    for doc_id, rows in by_doc.items():
        rows.sort(key=lambda r: records[r].ordinal)
        info = docs[doc_id]
        chunks = tuple(
            NewChunk(
                text=records[r].text,
                char_start=records[r].char_start,
                char_end=records[r].char_end,
                n_tokens=records[r].n_tokens,
                page=records[r].page,
                section=records[r].section,
            )
            for r in rows
        )
        doc = NewDocument(
            source=info.source,
            name=info.name,
            title=info.title,
            kind=info.kind,
            content_hash=info.content_hash,
            size_bytes=info.size_bytes,
            text=src.document_text(doc_id),
            chunks=chunks,
        )
        out.append((doc, vectors[rows]))
    return out


def synthetic_kb(
    workdir: Path, source: Path, n: int, sigma: float = 0.025, seed: int = 0, index: IndexConfig | None = None
) -> tuple[Path, dict]:
    """A KB of n chunks built from the SciFact KB at source (see the module docstring).

    sigma 0.025 per dimension moves a 384-d unit vector to cosine ~0.9 of its original, about as
    far as two different abstracts on one topic are apart, so copies do not collapse onto their
    original (which would make approximate search look better, or worse, than on real text).
    index: the index the KB is built with (default: IndexConfig(), what a user's ingest would choose).
    Returns (dir, build info with seconds, chunks, and the measured mean cosine to the original).
    """
    index = index or IndexConfig()
    src = KnowledgeBase(source)
    kb_dir = workdir / f"kb_synth_{n}"
    key = {"what": "synthetic", "n": n, "sigma": sigma, "seed": seed, "source_token": src.token(), "index": asdict(index)}
    info = _cached(kb_dir, key)
    if info is not None:
        info["reused"] = True
        return kb_dir, info
    _fresh(kb_dir)
    started = time.perf_counter()
    base = _scifact_documents(src)
    rng = np.random.default_rng(seed)
    manifest = src.manifest
    if manifest is None:
        raise RuntimeError(f"{src.dir} has no manifest: build the SciFact KB first")
    kb = KnowledgeBase(kb_dir, create=True, index=index)
    written, copy = 0, 0
    cosines: list[float] = []
    with kb.writer(model=manifest.model, dim=manifest.dim) as writer:
        while written < n:
            for doc, vecs in base:
                if written >= n:
                    break
                if len(doc.chunks) > n - written:
                    doc = NewDocument(**{**doc.__dict__, "chunks": doc.chunks[: n - written]})
                    vecs = vecs[: n - written]
                if copy:
                    noisy = vecs + rng.normal(0.0, sigma, vecs.shape).astype(np.float32)
                    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
                    if len(cosines) < 2000:
                        cosines.extend((noisy * vecs).sum(1).tolist())
                    doc = NewDocument(
                        **{**doc.__dict__, "source": f"{doc.source}#copy{copy}", "title": f"{doc.title} [{copy}]"}
                    )
                    vecs = noisy
                writer.put_document(doc, vecs)
                written += len(doc.chunks)
            copy += 1
    seconds = time.perf_counter() - started
    mean_cos = float(np.mean(cosines)) if cosines else 1.0
    info = _save(
        kb_dir,
        key,
        {"seconds": seconds, "chunks": written, "copies": copy, "mean_cosine_to_original": mean_cos, "reused": False},
    )
    return kb_dir, info
