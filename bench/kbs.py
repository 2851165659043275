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

import hashlib
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


def kb_documents(src: KnowledgeBase) -> list[tuple[NewDocument, np.ndarray]]:
    """Every document of a KB with its chunks and their stored vectors, in id order (to write into another KB)."""
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


def _copied(doc: NewDocument, vecs: np.ndarray, copy: int, noise: np.ndarray) -> tuple[NewDocument, np.ndarray]:
    """Copy number `copy` (> 0) of a document: its own key and title, each vector plus noise, re-normalised."""
    noisy = vecs + noise
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    title = f"{doc.title} [{copy}]"
    return NewDocument(**{**doc.__dict__, "source": f"{doc.source}#copy{copy}", "title": title}), noisy


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
    base = kb_documents(src)
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
                    noise = rng.normal(0.0, sigma, vecs.shape).astype(np.float32)
                    doc, noisy = _copied(doc, vecs, copy, noise)
                    if len(cosines) < 2000:
                        cosines.extend((noisy * vecs).sum(1).tolist())
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


def shard_of(source: str, shards: int) -> int:
    """The shard (0..shards-1) that holds a document: a stable hash of its key, so every chunk and version of a
    document lives in one shard and any process routes a changed document without a lookup table."""
    digest = hashlib.blake2b(source.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def synthetic_documents(base: list[tuple[NewDocument, np.ndarray]], sigma: float, seed: int):
    """The endless synthetic corpus: copy 0 is base itself, copy c > 0 every base document as _copied with noise
    drawn from an rng seeded by (seed, c), so a document's vectors do not depend on which shard asks for it."""
    offsets = np.cumsum([0] + [len(vecs) for _, vecs in base])
    copy = 0
    while True:
        if copy == 0:
            yield from base
        else:
            rng = np.random.default_rng([seed, copy])
            noise = rng.normal(0.0, sigma, (int(offsets[-1]), base[0][1].shape[1])).astype(np.float32)
            for (doc, vecs), start in zip(base, offsets):
                yield _copied(doc, vecs, copy, noise[start : start + len(vecs)])
        copy += 1


def write_shard(
    kb_dir: Path,
    documents,
    shard: int,
    shards: int,
    model: str,
    dim: int,
    n: int | None = None,
    index: IndexConfig | None = None,
) -> int:
    """Write into a new KB at kb_dir, in one commit, the documents of `documents` ((NewDocument, vectors) pairs)
    that shard_of puts in `shard`, until n chunks (None: all; the last document is cut to fit). Returns chunks."""
    kb = KnowledgeBase(kb_dir, create=True, index=index or IndexConfig())
    written = 0
    with kb.writer(model=model, dim=dim) as writer:
        for doc, vecs in documents:
            if n is not None and written >= n:
                break
            if shard_of(doc.source, shards) != shard:
                continue
            if n is not None and len(doc.chunks) > n - written:
                doc = NewDocument(**{**doc.__dict__, "chunks": doc.chunks[: n - written]})
                vecs = vecs[: n - written]
            writer.put_document(doc, vecs)
            written += len(doc.chunks)
    return written


def synthetic_shards(
    workdir: Path, source: Path, shards: int, n: int, sigma: float = 0.025, seed: int = 1
) -> list[tuple[Path, dict]]:
    """`shards` KBs of n chunks each under workdir/shards_<S>x<n>/shard_<i>, cut from one synthetic corpus
    (synthetic_documents over the KB at source) by shard_of: together they hold S x n distinct chunks, as one
    KB of S x n chunks split by document key would. Each is built once (about 85 s per 100k chunks for the
    lexical index) and reused while its marker matches. Returns (dir, build info) per shard."""
    src = KnowledgeBase(source)
    manifest = src.manifest
    if manifest is None:
        raise RuntimeError(f"{src.dir} has no manifest: build the SciFact KB first")
    base = kb_documents(src)
    out = []
    for shard in range(shards):
        kb_dir = workdir / f"shards_{shards}x{n}" / f"shard_{shard}"
        key = {
            "what": "shard",
            "shard": shard,
            "shards": shards,
            "n": n,
            "sigma": sigma,
            "seed": seed,
            "source_token": src.token(),
            "index": index_key(),
        }
        info = _cached(kb_dir, key)
        if info is not None:
            info["reused"] = True
            out.append((kb_dir, info))
            continue
        _fresh(kb_dir)
        started = time.perf_counter()
        chunks = write_shard(kb_dir, synthetic_documents(base, sigma, seed), shard, shards, manifest.model, manifest.dim, n)
        info = _save(kb_dir, key, {"seconds": time.perf_counter() - started, "chunks": chunks, "reused": False})
        out.append((kb_dir, info))
    return out


def split_kb(
    workdir: Path, source: Path, n: int, shards: int, sigma: float = 0.025, seed: int = 1
) -> tuple[Path, list[Path]]:
    """One KB of the first n chunks of the synthetic corpus (SciFact itself first) and `shards` KBs that hold
    exactly its documents, cut by shard_of: the same chunks served whole or sharded. Built once, under
    workdir/split_<S>x<n>/. Returns (the whole KB's dir, the shards' dirs)."""
    src = KnowledgeBase(source)
    manifest = src.manifest
    if manifest is None:
        raise RuntimeError(f"{src.dir} has no manifest: build the SciFact KB first")
    root = workdir / f"split_{shards}x{n}"
    whole, parts = root / "whole", [root / f"shard_{i}" for i in range(shards)]
    key = {
        "what": "split",
        "n": n,
        "shards": shards,
        "sigma": sigma,
        "seed": seed,
        "source_token": src.token(),
        "index": index_key(),
    }
    if _cached(whole, key) is not None and all((p / "kb.sqlite").exists() for p in parts):
        return whole, parts
    for d in (whole, *parts):
        _fresh(d)
    write_shard(whole, synthetic_documents(kb_documents(src), sigma, seed), 0, 1, manifest.model, manifest.dim, n)
    docs = kb_documents(KnowledgeBase(whole))
    for i, part in enumerate(parts):
        write_shard(part, docs, i, shards, manifest.model, manifest.dim)
    _save(whole, key, {})
    return whole, parts
