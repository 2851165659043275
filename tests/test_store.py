"""The KB on disk: FAISS agrees with brute force, ids are stable, the manifest guards the format and
the model, a failed write changes nothing, one writer at a time, and stored metadata is exact.

Synthetic KBs are written through the public writer with seeded random unit vectors (no model
needed); the sample KB (data/docs ingested once per session) is used read-only.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from ingest import ChunkConfig, IngestConfig, TextRecord, count_tokens, ingest, ingest_texts
from kb import (
    FORMAT_VERSION,
    KBError,
    KBLockedError,
    KnowledgeBase,
    ManifestError,
    NewDocument,
    retrieval_text,
)
from retriever import make_retriever
from tests.helpers import read_questions, sentence_document

MODEL, DIM = "synthetic-test-model", 24


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _doc(name: str, n_chunks: int, edition: int = 1) -> NewDocument:
    """A document whose text is n_chunks sentences; chunk i spans sentence i exactly."""
    return sentence_document(
        name, [f"{name} edition {edition} sentence {i} about topic {i * 7 % 11}." for i in range(n_chunks)], per_section=3
    )


def _write(
    kb: KnowledgeBase, docs: dict[str, NewDocument], vectors: dict[str, np.ndarray], removals: tuple[str, ...] = ()
) -> None:
    with kb.writer(model=MODEL, dim=DIM) as w:
        for name, doc in docs.items():
            w.put_document(doc, vectors[name])
        for name in removals:
            w.remove_document(f"/virtual/{name}")


def _synthetic_kb(path: Path, rng: np.random.Generator, sizes: dict[str, int]) -> tuple[KnowledgeBase, dict]:
    kb = KnowledgeBase(path, create=True)
    docs = {name: _doc(name, n) for name, n in sizes.items()}
    vectors = {name: _unit(rng, n) for name, n in sizes.items()}
    _write(kb, docs, vectors)
    return kb, vectors


def _assert_faiss_equals_brute_force(kb: KnowledgeBase, queries: np.ndarray, k: int) -> None:
    snap = kb.snapshot()
    scores, ids = snap.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    exact = queries @ np.asarray(snap.vectors).T
    for q in range(len(queries)):
        top = np.argsort(-exact[q], kind="stable")[:k]
        assert ids[q].tolist() == snap.ids[top].tolist(), f"query {q}: FAISS ids differ from brute force"
        np.testing.assert_allclose(scores[q], exact[q, top], atol=1e-5)


def _vectors_by_chunk(kb: KnowledgeBase) -> dict[tuple[str, int], np.ndarray]:
    snap = kb.snapshot()
    recs = kb.chunks(snap.ids)
    return {(r.doc_name, r.ordinal): np.asarray(snap.vectors[i]) for i, r in enumerate(recs)}


def test_faiss_search_equals_brute_force_inner_product_before_and_after_an_update(tmp_path, rng):
    kb, vectors = _synthetic_kb(tmp_path / "kb", rng, {"alpha": 30, "beta": 25, "gamma": 40, "delta": 5})
    stored = _vectors_by_chunk(kb)
    for name, vecs in vectors.items():  # the snapshot holds exactly the vectors that were written
        for i, v in enumerate(vecs):
            np.testing.assert_array_equal(stored[(name, i)], v)
    queries = _unit(rng, 12)
    _assert_faiss_equals_brute_force(kb, queries, k=10)

    # An incremental commit (remove_ids + add_with_ids on the old index) must stay exact too.
    new_beta = _doc("beta", 12, edition=2)
    _write(
        kb,
        {"beta": new_beta, "epsilon": _doc("epsilon", 8)},
        {"beta": _unit(rng, 12), "epsilon": _unit(rng, 8)},
        removals=("delta",),
    )
    snap = kb.snapshot()
    assert snap.size == 30 + 12 + 40 + 8 and snap.index.ntotal == snap.size
    assert np.all(np.diff(snap.ids) > 0), "snapshot ids must be sorted and unique"
    _assert_faiss_equals_brute_force(kb, queries, k=10)
    _assert_faiss_equals_brute_force(kb, queries, k=snap.size)  # the whole ranking, not just the top
    assert kb.check().ok, kb.check().problems


def test_faiss_search_on_the_sample_kb_equals_brute_force(sample_kb, embedder):
    questions = [q["question"] for q in read_questions(SAMPLE_QUESTIONS)[:20]]
    _assert_faiss_equals_brute_force(sample_kb, embedder.encode(questions), k=10)
    snap = sample_kb.snapshot()
    for pos in (0, snap.size // 2, snap.size - 1):  # FAISS stores each chunk's vector under its chunk id
        np.testing.assert_array_equal(snap.index.reconstruct(int(snap.ids[pos])), snap.vectors[pos])


def test_chunk_ids_are_stable_when_unchanged_documents_are_ingested_again(kb_copy, embedder):
    kb = KnowledgeBase(kb_copy)
    ids, token = kb.snapshot().ids.copy(), kb.token()
    before = [(r.id, r.doc_name, r.ordinal, r.text) for r in kb.chunks(ids)]
    report = ingest(kb_copy, [SAMPLE_DOCS], IngestConfig(), embedder=embedder)
    assert report.chunks_embedded == 0 and len(report.unchanged) == len(list(SAMPLE_DOCS.iterdir()))
    assert kb.token() == token, "re-ingesting unchanged documents committed a new snapshot"
    assert [(r.id, r.doc_name, r.ordinal, r.text) for r in kb.chunks(kb.snapshot().ids)] == before


def test_adding_a_document_keeps_the_ids_of_the_others(tmp_path, rng):
    kb, _ = _synthetic_kb(tmp_path / "kb", rng, {"alpha": 6, "beta": 4})
    before = {(r.doc_name, r.ordinal): r.id for r in kb.chunks(kb.snapshot().ids)}
    _write(kb, {"gamma": _doc("gamma", 5)}, {"gamma": _unit(rng, 5)})
    after = {(r.doc_name, r.ordinal): r.id for r in kb.chunks(kb.snapshot().ids)}
    assert {key: after[key] for key in before} == before
    assert min(v for (name, _), v in after.items() if name == "gamma") > max(before.values())


def test_manifest_records_model_dimension_and_format_version(sample_kb_dir, sample_kb, embedder):
    on_disk = json.loads((sample_kb_dir / "manifest.json").read_text())
    assert on_disk == {"model": embedder.name, "dim": embedder.dim, "format_version": FORMAT_VERSION}
    assert (sample_kb.manifest.model, sample_kb.manifest.dim) == ("all-MiniLM-L6-v2", 384)
    stats = sample_kb.stats()
    assert (stats["model"], stats["dim"], stats["format_version"]) == ("all-MiniLM-L6-v2", 384, FORMAT_VERSION)


def test_a_kb_from_a_newer_format_version_is_refused_with_a_clear_message(tmp_path, rng):
    kb_dir = tmp_path / "kb"
    _synthetic_kb(kb_dir, rng, {"alpha": 3})
    manifest = json.loads((kb_dir / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (kb_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as err:
        KnowledgeBase(kb_dir)
    message = str(err.value)
    assert f"format version {FORMAT_VERSION + 1}" in message and "upgrade hopfield-kb" in message
    assert str(kb_dir / "manifest.json") in message

    (kb_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable manifest"):
        KnowledgeBase(kb_dir)


def test_writing_with_another_model_or_dimension_is_refused_naming_the_fix(tmp_path, rng):
    kb, _ = _synthetic_kb(tmp_path / "kb", rng, {"alpha": 3})
    token = kb.token()
    for model, dim in (("other-model", DIM), (MODEL, DIM * 2)):
        with pytest.raises(ManifestError) as err:
            with kb.writer(model=model, dim=dim):
                pytest.fail("a writer opened for the wrong model")
        message = str(err.value)
        assert repr(MODEL) in message and f"dim {DIM}" in message and "--kb-dir" in message
    # A fresh KnowledgeBase object reads the same manifest and refuses too.
    with pytest.raises(ManifestError):
        with KnowledgeBase(tmp_path / "kb").writer(model="other-model", dim=DIM):
            pass
    # Vectors of the wrong width are refused even under the right model name.
    with pytest.raises(ManifestError, match=f"dimension {DIM}"):
        with kb.writer(model=MODEL, dim=DIM) as w:
            w.put_document(_doc("beta", 2), _unit(rng, 2, dim=DIM + 1))
    assert kb.token() == token and kb.check().ok


def _kb_state(kb: KnowledgeBase) -> tuple:
    """Every table row and every KB file (name, bytes), for before/after comparisons."""
    con = sqlite3.connect(kb.dir / "kb.sqlite")
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        con.close()
    files = {
        p.name: p.read_bytes()
        for p in kb.dir.iterdir()
        if p.name not in ("kb.sqlite", "kb.sqlite-wal", "kb.sqlite-shm", "write.lock")
    }
    return rows, files


def test_an_exception_inside_the_writer_leaves_the_kb_exactly_as_before(tmp_path, rng):
    kb, _ = _synthetic_kb(tmp_path / "kb", rng, {"alpha": 5, "beta": 4})
    before = _kb_state(kb)
    with pytest.raises(RuntimeError, match="boom"):
        with kb.writer(model=MODEL, dim=DIM) as w:
            w.put_document(_doc("alpha", 7, edition=2), _unit(rng, 7))
            w.put_document(_doc("gamma", 3), _unit(rng, 3))
            w.remove_document("/virtual/beta")
            raise RuntimeError("boom")
    assert _kb_state(kb) == before
    assert kb.check().ok and kb.document("alpha").version == 1
    # The lock was released: the next writer gets in at once.
    with kb.writer(model=MODEL, dim=DIM, wait=0) as w:
        w.remove_document("/virtual/beta")
    assert kb.document("beta") is None and kb.check().ok


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path, rng, embedder):
    _synthetic_kb(tmp_path / "kb", rng, {"alpha": 3})
    first, second = KnowledgeBase(tmp_path / "kb"), KnowledgeBase(tmp_path / "kb")
    with first.writer(model=MODEL, dim=DIM) as w:
        w.put_document(_doc("beta", 2), _unit(rng, 2))
        with pytest.raises(KBLockedError, match="another ingest or sync is writing"):
            with second.writer(model=MODEL, dim=DIM, wait=0):
                pass
        started = time.monotonic()
        with pytest.raises(KBLockedError):
            with second.writer(model=MODEL, dim=DIM, wait=0.5):
                pass
        assert time.monotonic() - started >= 0.5, "wait= was not honoured"
        assert second.document("beta") is None, "staged changes are visible before the commit"
    assert second.document("beta") is not None
    with second.writer(model=MODEL, dim=DIM, wait=0):
        pass


def test_every_sample_chunk_points_at_its_exact_span_with_consistent_metadata(sample_kb, embedder):
    config = ChunkConfig()
    docs = sample_kb.documents()
    assert sorted(d.name for d in docs) == sorted(p.name for p in SAMPLE_DOCS.iterdir())
    by_id = {d.id: d for d in docs}
    texts = {d.id: sample_kb.document_text(d.id) for d in docs}
    records = sample_kb.chunks(sample_kb.snapshot().ids)
    assert all(r is not None for r in records)
    per_doc: dict[int, list[int]] = {}
    for r in records:
        doc = by_id[r.doc_id]
        assert r.text == texts[r.doc_id][r.char_start : r.char_end], (doc.name, r.ordinal)
        assert r.text.strip() == r.text and r.text
        assert (r.doc_source, r.doc_name, r.doc_title, r.doc_version) == (doc.source, doc.name, doc.title, doc.version)
        # n_tokens sums the pieces a chunk was built from; the joined text may differ by the joins.
        assert 1 <= r.n_tokens <= config.size and abs(r.n_tokens - count_tokens(r.text)) <= 2 + r.text.count("\n")
        assert (r.page is not None) == (doc.kind == "pdf")
        per_doc.setdefault(r.doc_id, []).append(r.ordinal)
    for doc in docs:
        assert sorted(per_doc[doc.id]) == list(range(doc.n_chunks)), doc.name
        raw = Path(doc.path).read_bytes()
        assert doc.content_hash == hashlib.sha256(raw).hexdigest() and doc.size_bytes == len(raw)
        assert (
            doc.version == 1
            and doc.kind == {".pdf": "pdf", ".md": "markdown", ".html": "html", ".txt": "text"}[Path(doc.path).suffix]
        )
        assert time.time() - 3600 < doc.ingested_at <= time.time()
    # The stored vector of a chunk is the embedding of its retrieval text (title | section + text).
    r = records[len(records) // 2]
    expected = embedder.encode([retrieval_text(r.doc_title, r.section, r.text)])[0]
    assert float(expected @ sample_kb.snapshot().vectors[len(records) // 2]) > 0.999


def test_markdown_chunks_name_the_heading_they_sit_under(sample_kb):
    heading = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
    checked = 0
    for doc in sample_kb.documents():
        if doc.kind != "markdown":
            continue
        text = sample_kb.document_text(doc.id)
        ids = [r.id for r in sample_kb.chunks(sample_kb.snapshot().ids) if r.doc_id == doc.id]
        for r in sample_kb.chunks(ids):
            above = [m.group(1) for m in heading.finditer(text) if m.start() <= r.char_start]
            assert r.section == (above[-1] if above else None), (doc.name, r.ordinal, r.section)
            checked += 1
    assert checked >= 20


def test_pdf_chunks_carry_the_page_their_text_was_printed_on(sample_kb):
    from pypdf import PdfReader

    def norm(s: str) -> str:
        return " ".join(s.split())

    checked = tables = 0
    for doc in sample_kb.documents():
        if doc.kind != "pdf":
            continue
        pages = [norm(p.extract_text() or "") for p in PdfReader(doc.path).pages]
        assert len(pages) >= 2, f"{doc.name}: sample PDFs are meant to be multi-page"
        ids = [r.id for r in sample_kb.chunks(sample_kb.snapshot().ids) if r.doc_id == doc.id]
        for r in sample_kb.chunks(ids):
            assert 1 <= r.page <= len(pages)
            if " | " in r.text:
                # Table rows are rewritten with their header ("Plan: Team | Credit: 10%"): every word of the
                # chunk is still printed on its page, and not all of them on any other page.
                words = set(re.findall(r"[\w.%,]+", r.text))
                on = [words <= set(re.findall(r"[\w.%,]+", p)) for p in pages]
                assert on[r.page - 1] and sum(on) == 1, (doc.name, r.page, r.text[:60])
                tables += 1
            else:
                assert norm(r.text) in pages[r.page - 1], (doc.name, r.page, r.text[:60])
                assert sum(norm(r.text) in p for p in pages) == 1, "chunk text is ambiguous between pages"
            checked += 1
    assert checked >= 10 and tables >= 1


PDF_QUESTIONS = [q for q in read_questions(SAMPLE_QUESTIONS) if q["style"] == "clean" and q["page"] is not None]


def test_dense_search_finds_the_right_pdf_page_for_clean_questions(sample_kb, embedder):
    assert len(PDF_QUESTIONS) >= 5
    retriever = make_retriever("dense", sample_kb, embedder, top_k=5)
    results = retriever.search_batch([q["question"] for q in PDF_QUESTIONS])
    misses = []
    for q, res in zip(PDF_QUESTIONS, results):
        found = [(h.chunk.doc_name, h.chunk.page) for h in res.hits]
        if (q["relevant"][0], q["page"]) not in found:
            misses.append((q["id"], q["relevant"][0], q["page"], found))
    assert not misses, misses


def test_opening_a_missing_kb_says_how_to_create_one(tmp_path):
    with pytest.raises(KBError, match=r"no knowledge base at .*run `kb ingest PATH --kb-dir"):
        KnowledgeBase(tmp_path / "nothing-here")
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(KBError, match="is not a knowledge base"):
        KnowledgeBase(tmp_path / "empty-dir")


def test_a_writer_checks_the_model_against_the_manifest_on_disk_not_a_stale_copy(tmp_path, rng):
    # Two objects open a new KB before either has written (two ingests racing, or an app opened
    # before the first ingest): the second writer must see the first one's manifest.
    first, second = KnowledgeBase(tmp_path / "kb", create=True), KnowledgeBase(tmp_path / "kb", create=True)
    assert first.manifest is None and second.manifest is None
    _write(first, {"alpha": _doc("alpha", 3)}, {"alpha": _unit(rng, 3)})
    for model, dim in (("other-model", DIM), (MODEL, DIM * 2)):
        with pytest.raises(ManifestError, match=repr(MODEL)):
            with second.writer(model=model, dim=dim) as w:
                w.put_document(_doc("beta", 2), _unit(rng, 2, dim=dim))
    assert json.loads((tmp_path / "kb" / "manifest.json").read_text())["model"] == MODEL
    assert second.manifest.model == MODEL and second.document("beta") is None
    _write(second, {"beta": _doc("beta", 2)}, {"beta": _unit(rng, 2)})  # the right model still gets in
    assert KnowledgeBase(tmp_path / "kb").check().ok


def test_history_by_file_name_treats_underscores_and_percents_literally(tmp_path, rng):
    names = ["axb.md", "a_b.md", "100%.md"]
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    _write(kb, {n: _doc(n, 2) for n in names}, {n: _unit(rng, 2) for n in names})
    for name in names:
        assert [(h.source, h.event) for h in kb.history(name)] == [(f"/virtual/{name}", "added")]
    assert kb.history("%.md") == [] and kb.history("a_b") == []


def test_document_filters_select_exactly_what_a_brute_force_scan_selects(tmp_path, embedder, rng):
    from kb import DocumentFilter

    kb_dir = tmp_path / "kb"
    for visibility, tags, prefix in (
        ("public", ("faq",), "help/"),
        ("internal", ("runbook", "faq"), "ops/"),
        ("internal", (), "ops/old-"),
    ):
        records = [
            TextRecord(source=f"{prefix}{i}", title=f"Doc {prefix}{i}", text=f"Text number {i} for {prefix}.")
            for i in range(int(rng.integers(2, 5)))
        ]
        ingest_texts(kb_dir, records, IngestConfig(visibility=visibility, tags=tags), embedder=embedder)
    kb = KnowledgeBase(kb_dir)
    docs = kb.documents()
    chunks = [r for r in kb.chunks(kb.snapshot().ids)]
    middle = sorted(d.ingested_at for d in docs)[len(docs) // 2]
    filters = [
        DocumentFilter(visibility=("public",)),
        DocumentFilter(visibility=()),
        DocumentFilter(key_prefix="ops/"),
        DocumentFilter(key_prefix="ops/old-"),
        DocumentFilter(tags=("faq",)),
        DocumentFilter(tags=("runbook",)),
        DocumentFilter(kinds=("pdf",)),
        DocumentFilter(ingested_after=middle),
        DocumentFilter(visibility=("internal",), tags=("faq",), key_prefix="ops/"),
    ]
    for where in filters:

        def allows(d) -> bool:
            return (
                (where.visibility is None or d.visibility in where.visibility)
                and (where.key_prefix is None or d.source.startswith(where.key_prefix))
                and (where.kinds is None or d.kind in where.kinds)
                and (where.tags is None or bool(set(d.tags) & set(where.tags)))
                and (where.ingested_after is None or d.ingested_at > where.ingested_after)
            )

        expected_docs = {d.id for d in docs if allows(d)}
        assert {d.id for d in kb.documents(where)} == expected_docs, where
        assert kb.chunk_ids(where).tolist() == sorted(r.id for r in chunks if r.doc_id in expected_docs), where
    assert kb.document("help/0").visibility == "public" and kb.document("ops/0").tags == ("runbook", "faq")
    with pytest.raises(KBError, match="visibility"):
        IngestConfig(visibility="Top Secret")
    with pytest.raises(KBError, match="tag"):
        IngestConfig(tags=("ok", "bad\nline"))


def test_a_background_refreshing_kb_keeps_answering_from_the_loaded_snapshot_while_the_new_one_loads(tmp_path, rng):
    kb, vectors = _synthetic_kb(tmp_path / "kb", rng, {"alpha": 4})
    server = KnowledgeBase(kb.dir, background_refresh=True)
    old = server.snapshot()
    _write(KnowledgeBase(kb.dir), {"beta": _doc("beta", 3)}, {"beta": _unit(rng, 3)})  # another writer
    new_token = kb.token()
    assert server.snapshot().token == old.token  # not blocked on the load: the loaded one answers
    deadline = time.monotonic() + 120
    while server.snapshot().token != new_token:
        assert time.monotonic() < deadline, "the new snapshot was never loaded in the background"
        time.sleep(0.05)
    assert server.snapshot().size == old.size + 3
    # A commit through the server's own writer is served as soon as commit() returns.
    _write(server, {"gamma": _doc("gamma", 2)}, {"gamma": _unit(rng, 2)})
    assert server.snapshot().token == kb.token() and server.snapshot().size == old.size + 5


def test_many_threads_opening_a_new_kb_at_once_all_succeed(tmp_path):
    # A sync job and the server's warm-up can open a brand-new KB together; each once raced the other to
    # add the same column ("duplicate column name").
    import threading

    for attempt in range(20):
        kb_dir = tmp_path / f"kb{attempt}"
        kb_dir.mkdir()
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_it() -> None:
            start.wait()
            try:
                KnowledgeBase(kb_dir, create=True)
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert KnowledgeBase(kb_dir).documents() == []


def test_a_read_whose_statement_fails_keeps_the_threads_connection(tmp_path, rng):
    # Every question asks the question memory's version; a KB whose memory was never written has no such table,
    # and that error once closed the thread's kept connection, so each question reopened it with a cold cache.
    kb, _ = _synthetic_kb(tmp_path / "kb", rng, {"alpha": 3})
    with kb.db.read() as con:
        kept = con
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with kb.db.read() as con:
            con.execute("SELECT value FROM no_such_table").fetchone()
    with kb.db.read() as con:
        assert con is kept
        assert con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 3


def test_a_sync_that_removes_the_hits_between_ranking_and_lookup_is_answered_from_the_new_snapshot(kb_copy, embedder):
    # A server's KB loads a new snapshot in the background. A sync that replaced the documents of a question's hits
    # left the old snapshot ranking chunks that were gone; with the question's words cached (no lexical read to notice
    # the commit), every retry ranked the same snapshot and the question failed: "the knowledge base kept changing".
    writer = KnowledgeBase(kb_copy)
    server = KnowledgeBase(kb_copy, background_refresh=True)
    server._load_in_background = lambda token: None  # the background load has not finished yet
    reader = make_retriever("hopfield", server, embedder)
    question = "How long do I have to ask for a refund?"
    before = reader.search(question)
    source = before.hits[0].chunk.doc_source
    stale = {h.chunk.id for h in before.hits}
    text = writer.document_text(writer.document(source).id)
    ingest_texts(writer, [TextRecord(source, "Refunds", text + " Reviewed in the December audit.")], IngestConfig())
    after = reader.search(question)
    assert after.snapshot == writer.token() != before.snapshot
    assert after.hits and not stale & {h.chunk.id for h in after.hits if h.chunk.doc_source == source}
