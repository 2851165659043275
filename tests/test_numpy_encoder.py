"""The question path's numpy MiniLM (kb/numpy_encoder.py): torch's vectors, and no torch import to answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kb import (
    DEFAULT_MODEL,
    Embedder,
    EmbedderConfig,
    KBError,
    NumpyEncoder,
    query_embedder_for,
    query_encoder,
    resolve_model_path,
)
from kb.numpy_encoder import bert_folder_supported, gelu

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "data" / "questions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def numpy_encoder() -> NumpyEncoder:
    return NumpyEncoder(EmbedderConfig(), resolve_model_path(DEFAULT_MODEL))


@pytest.fixture(scope="module")
def torch_fp32() -> Embedder:
    return Embedder(EmbedderConfig(precision="fp32"))


def test_numpy_vectors_match_torch_fp32_and_the_kb_embedder(numpy_encoder, torch_fp32, embedder):
    texts = QUESTIONS + ["", "a", "word " * 400]  # the empty text, one token, and one truncated at max_tokens
    ours = numpy_encoder.encode_queries(texts)
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * torch_fp32.encode(texts)).sum(1).min() >= 0.9999
    # The embedder the KB was built with (bf16 where the CPU has it): within its own batch noise.
    assert (ours * embedder.encode_queries(texts)).sum(1).min() >= 0.999
    alone = np.stack([numpy_encoder.encode_queries([t])[0] for t in QUESTIONS[:8]])
    assert (alone * ours[:8]).sum(1).min() >= 0.99999  # padding in a batch does not move a vector


def test_token_counts_match_the_transformers_tokenizer(numpy_encoder, torch_fp32):
    for text in QUESTIONS[:20] + ["Ünïcode naïve café — 12,345.67"]:
        assert numpy_encoder.count_tokens(text) == torch_fp32.count_tokens(text)


def test_gelu_is_the_exact_erf_gelu():
    from scipy.special import erf

    x = np.linspace(-10, 10, 100_001).astype(np.float32)
    exact = 0.5 * x.astype(np.float64) * (1 + erf(x.astype(np.float64) / np.sqrt(2)))
    assert np.abs(gelu(x) - exact).max() < 1e-6 and gelu(x).dtype == np.float32


def test_the_question_path_picks_numpy_and_the_switch_brings_torch(monkeypatch, sample_kb_dir):
    # auto: torch is loaded in this test process (the session's embedder), so a server-like process keeps torch;
    # the fresh-process test below sees auto choose numpy.
    assert isinstance(query_embedder_for(sample_kb_dir), Embedder)
    monkeypatch.setenv("KB_QUERY_ENCODER", "numpy")
    assert isinstance(query_embedder_for(sample_kb_dir), NumpyEncoder)
    assert not isinstance(query_encoder(EmbedderConfig(precision="bf16")), NumpyEncoder)  # asked for torch's bf16
    assert not isinstance(query_encoder(EmbedderConfig(model="bge-small-en-v1.5")), NumpyEncoder)  # an ONNX model
    monkeypatch.setenv("KB_QUERY_ENCODER", "torch")
    assert isinstance(query_embedder_for(sample_kb_dir), Embedder)
    monkeypatch.setenv("KB_QUERY_ENCODER", "onnx")
    with pytest.raises(KBError, match="KB_QUERY_ENCODER='onnx' is not auto, numpy or torch"):
        query_encoder()


def test_a_folder_that_is_not_a_mean_pooled_bert_is_refused(tmp_path):
    folder = resolve_model_path(DEFAULT_MODEL)
    assert bert_folder_supported(folder)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "hidden_act": "gelu"}))
    assert not bert_folder_supported(tmp_path)
    with pytest.raises(KBError, match="use the torch embedder"):
        NumpyEncoder(EmbedderConfig(), tmp_path)


def test_a_fresh_kb_ask_answers_without_importing_torch(sample_kb_dir):
    """The whole `kb ask` path (CLI, reader, answer, cross-encoder) in a fresh process: torch never loads."""
    code = (
        "import sys\n"
        "from ui.cli import main\n"
        "try:\n"
        f"    main(['ask', {QUESTIONS[0]!r}, '--kb-dir', {str(sample_kb_dir)!r}, '--json'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        # numba comes with bm25s's package import, which kb.lexicon's stopwords avoid (~0.25 s)
        "from kb import query_encoder\n"
        "print('ENCODER', type(query_encoder()).__name__)\n"
        "print('LOADED', sorted(m for m in ('torch', 'transformers', 'numba') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("LOADED []"), proc.stdout[-500:]
    assert "ENCODER NumpyEncoder" in proc.stdout
    answer = json.loads(proc.stdout[: proc.stdout.rindex("ENCODER")])
    assert answer["citations"] and not answer["abstained"]


def test_blas_threads_holds_blas_to_n_threads_and_restores_them_after():
    from threadpoolctl import threadpool_info

    from kb.blas import blas_threads

    def blas() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas()
    assert before, "numpy ships a BLAS library"
    with blas_threads(1):
        assert blas() == [1] * len(before)
    assert blas() == before
    with blas_threads(None):
        assert blas() == before


def test_blas_for_a_few_texts_is_one_thread_and_for_a_batch_as_it_was():
    from threadpoolctl import threadpool_info

    from kb import blas_for
    from kb.blas import SMALL_BATCH

    def blas() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas()
    with blas_for(1):  # a question: what the Hopfield reader ranks it under
        assert blas() == [1] * len(before)
    with blas_for(SMALL_BATCH):
        assert blas() == before
    assert blas() == before
