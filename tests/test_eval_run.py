"""eval end to end on real KBs: a synthetic BEIR set ingested for real, the sample set, `kb eval`, a SciFact slice."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from data import SAMPLE_QUESTIONS
from eval import EvalConfig, EvalError, evaluate, load_dataset, run_eval
from kb import KnowledgeBase
from retriever import make_retriever
from tests.helpers import write_beir
from ui.cli import main

TOPICS = {
    "refunds": "Refunds are paid within fourteen days of the first payment. Annual plans cancelled later get a "
    "prorated refund for whole unused months minus a termination fee.",
    "passwords": "To reset a forgotten password open the sign-in page, choose forgot password and follow the link "
    "sent by email. Links expire after thirty minutes.",
    "invoices": "Invoices are issued on the first day of each billing month and can be downloaded as PDF from the "
    "billing page by account owners and billing admins.",
    "outages": "During an outage the status page is updated every thirty minutes and affected customers receive "
    "service credits according to the service level agreement.",
    "exports": "Workspace exports produce a ZIP archive of every project as CSV files. Large exports are emailed "
    "when ready, usually within an hour.",
    "security": "All customer data is encrypted at rest with AES-256 and in transit with TLS 1.2 or later. Keys are "
    "rotated every ninety days.",
}
QUERIES = {
    "q1": ("how long do refunds take after the first payment", ["refunds"]),
    "q2": ("I forgot my password, how do I reset it", ["passwords"]),
    "q3": ("where can I download an invoice as PDF", ["invoices"]),
    "q4": ("how often is the status page updated during an outage", ["outages", "handbook"]),
    "q5": ("how is customer data encrypted", ["security", "handbook"]),
}


def handbook_text() -> str:
    """A long document that splits into several chunks, so document-level counting matters."""
    parts = [f"Section {i}. {text}" for i, text in enumerate(list(TOPICS.values()) * 3)]
    return " ".join(parts)


@pytest.fixture(scope="module")
def beir_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("beir") / "tiny"
    corpus = [{"_id": k, "title": k.title(), "text": v} for k, v in TOPICS.items()]
    corpus.append({"_id": "handbook", "title": "Support handbook", "text": handbook_text()})
    corpus.append({"_id": "blank", "title": "Nothing here", "text": ""})
    queries = [{"_id": q, "text": text} for q, (text, _) in QUERIES.items()]
    qrels = [f"{q}\t{d}\t1" for q, (_, docs) in QUERIES.items() for d in docs] + ["q1\tmissing-doc\t1", "q2\tblank\t1"]
    return write_beir(folder, corpus, queries, qrels)


@pytest.fixture(scope="module")
def beir_run(beir_set, tmp_path_factory, embedder):
    """The tiny set ingested into a fresh KB and evaluated once (dense, bm25, hopfield at two betas)."""
    kb_dir = tmp_path_factory.mktemp("beir_kb") / "kb"
    config = EvalConfig(
        retrievers=("dense", "bm25", "hopfield"),
        betas=(4.0, 16.0),
        conditions=("clean", "typo-20"),
        cache_dir=kb_dir.parent / "cache",
        candidates=20,
    )
    return kb_dir, config, run_eval(load_dataset(beir_set), kb_dir, config, embedder=embedder)


def test_beir_corpus_is_ingested_and_every_retriever_is_scored_per_condition(beir_run):
    kb_dir, _, report = beir_run
    kb = KnowledgeBase(kb_dir)
    assert {d.source for d in kb.documents()} == set(TOPICS) | {"handbook"}
    assert kb.document("handbook").n_chunks >= 2
    assert report.meta["ingest"]["added"] == len(TOPICS) + 1 and report.meta["ingest"]["failed"] == 1
    assert report.retrievers == ("dense", "bm25", "hopfield(beta=4)", "hopfield(beta=16)")
    assert report.betas == {"hopfield(beta=4)": 4.0, "hopfield(beta=16)": 16.0}
    assert report.n_queries == len(QUERIES)
    for cond in ("clean", "typo-20"):
        for r in report.retrievers:
            assert set(report.results[cond][r]) == set(report.metrics)
            assert all(0.0 <= v <= 1.0 for v in report.results[cond][r].values())
        assert set(report.pvalues[cond]) == set(report.retrievers[1:])
    # The blank corpus entry could not be ingested and a judgement names no corpus document: both counted.
    text = " | ".join(report.warnings)
    assert "1 judgements skipped: document id not in corpus.jsonl" in text
    assert "corpus documents not ingested: empty text (blank)" in text
    assert "relevant documents skipped: not in the KB (blank)" in text
    assert report.queries["typo-20"]["q1"] != QUERIES["q1"][0]


def test_document_level_runs_are_the_chunk_rankings_deduplicated_by_document(beir_run, embedder):
    kb_dir, config, report = beir_run
    kb = KnowledgeBase(kb_dir)
    ranked = make_retriever("dense", kb, embedder=embedder).rank([QUERIES["q4"][0]], k=config.depth)[0]
    docs = [c.doc_source for c in kb.chunks(ranked.ids)]
    assert len(docs) > len(set(docs))  # the handbook's chunks really do compete with each other
    expected = list(dict.fromkeys(docs))[:10]
    assert report.top["clean"]["dense"]["q4"] == expected
    per_q = report.per_query["clean"]["dense"]["q4"]
    relevant = set(QUERIES["q4"][1])
    assert per_q["recall@1"] == pytest.approx(len(relevant & set(expected[:1])) / 2)
    assert per_q["recall@5"] == pytest.approx(len(relevant & set(expected[:5])) / 2)


def test_rerun_reuses_the_ingested_corpus_and_cached_query_vectors(beir_set, beir_run, embedder):
    kb_dir, config, first = beir_run
    again = run_eval(load_dataset(beir_set), kb_dir, config, embedder=embedder)
    assert again.meta["ingest"]["chunks_embedded"] == 0 and again.meta["ingest"]["unchanged"] == len(TOPICS) + 1
    assert again.meta["query_cache"]["embedded"] == 0 and again.meta["query_cache"]["hits"] > 0
    assert again.results == first.results  # seeded garbling, same KB: the same numbers


def test_a_beir_set_refuses_a_kb_holding_other_documents(beir_set, kb_copy, embedder):
    with pytest.raises(EvalError, match="documents that are not in the tiny corpus.*own --kb-dir"):
        run_eval(load_dataset(beir_set), kb_copy, EvalConfig(retrievers=("bm25",)), embedder=embedder)
    assert all("tiny" not in d.source for d in KnowledgeBase(kb_copy).documents())


def test_kb_eval_json_prints_condition_retriever_metric_and_writes_the_report(beir_set, beir_run, tmp_path):
    kb_dir, _, _ = beir_run
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--dataset",
            str(beir_set),
            "--kb-dir",
            str(kb_dir),
            "--out",
            str(out),
            "--retrievers",
            "bm25,dense,hopfield",
            "--conditions",
            "clean,typo-10",
            "--beta",
            "2,8",
            "-K",
            "20",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert list(table) == ["clean", "typo-10"]
    assert list(table["clean"]) == ["bm25", "dense", "hopfield(beta=2)", "hopfield(beta=8)"]
    assert table["clean"]["dense"]["recall@10"] >= table["clean"]["dense"]["recall@1"]
    assert "warning: tiny vs" in result.stderr or "warning: " in result.stderr
    for name in (
        "results.md",
        "results.json",
        "per_query.json",
        "recall_at_k.png",
        "recall10_vs_beta.png",
        "recall10_vs_typo.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "recall_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"] == table and saved["command"].startswith("kb eval --dataset")
    assert set(saved["pvalues"]["typo-10"]) == {"dense", "hopfield(beta=2)", "hopfield(beta=8)"}
    per_query = json.loads((out / "per_query.json").read_text())
    assert set(per_query["per_query"]["clean"]["bm25"]) == set(QUERIES)
    md = (out / "results.md").read_text()
    assert "| hopfield(beta=8) |" in md and "## typo-10" in md and "## Warnings" in md


def test_kb_eval_reports_bad_options_as_one_line_and_exit_code_2(beir_set, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main, ["eval", "--dataset", str(beir_set), "--conditions", "clean,typo-lots", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "unknown condition 'typo-lots'" in result.stderr
    result = runner.invoke(main, ["eval", "--dataset", str(tmp_path / "nothing.jsonl")])
    assert result.exit_code == 2 and "no labelled set at" in result.stderr
    assert "Traceback" not in result.output


def test_sample_questions_evaluate_against_the_sample_kb(sample_kb_dir, tmp_path):
    out = tmp_path / "sample"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--dataset",
            str(SAMPLE_QUESTIONS),
            "--kb-dir",
            str(sample_kb_dir),
            "--out",
            str(out),
            "--retrievers",
            "dense,hybrid",
            "--conditions",
            "clean,lower-nopunct",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["n_queries"] == 60 and saved["warnings"] == []
    # Every sample question names a document of the sample KB; dense retrieval finds nearly all in its top 10.
    assert saved["results"]["clean"]["dense"]["recall@10"] >= 0.9
    assert "recall@10" in result.stdout and "hybrid" in result.stdout


def test_app_quick_evaluation_names_missing_documents_and_returns_rows(sample_kb, embedder):
    records = [
        {"id": "a", "question": "How do I reset my password?", "relevant": ["account-recovery.md"]},
        {"id": "b", "question": "What is the refund window?", "relevant": ["no-such-file.md"]},
    ]
    rows = evaluate(sample_kb, records, retrievers=["bm25", "dense"], k=5, embedder=embedder)
    assert [r["retriever"] for r in rows] == ["bm25", "dense"]
    assert all(r["questions"] == 1 and 0.0 <= r["recall@5"] <= 1.0 for r in rows)
    with pytest.raises(EvalError, match="none of the 1 questions.*has a relevant target"):
        evaluate(sample_kb, records[1:], retrievers=["bm25"], k=5, embedder=embedder)


@pytest.mark.shared
def test_scifact_slice_dense_beats_its_garbled_self_and_every_judgement_maps(shared_dir, tmp_path, embedder):
    """30 SciFact test claims, their abstracts and 200 seeded distractors, ingested and evaluated."""
    src = shared_dir / "datasets" / "scifact"
    full = load_dataset(src)
    qids = list(full.queries)[:30]
    wanted = {d for q in qids for d in full.qrels[q]}
    rng = random.Random(0)
    others = [r for r in full.corpus if r.source not in wanted]
    keep = wanted | {r.source for r in rng.sample(others, 200)}
    corpus = [{"_id": r.source, "title": r.title, "text": r.text} for r in full.corpus if r.source in keep]
    folder = write_beir(
        tmp_path / "scifact-slice",
        corpus,
        [{"_id": q, "text": full.queries[q]} for q in qids],
        [f"{q}\t{d}\t{g}" for q in qids for d, g in full.qrels[q].items()],
    )
    config = EvalConfig(retrievers=("dense", "bm25"), conditions=("clean", "typo-20"), cache_dir=tmp_path / "cache")
    report = run_eval(load_dataset(folder), tmp_path / "kb", config, embedder=embedder)
    assert report.n_queries == 30 and report.warnings == ()
    assert report.meta["kb_documents"] == len(keep)
    clean, typo = report.results["clean"]["dense"], report.results["typo-20"]["dense"]
    assert clean["recall@10"] >= 0.8
    assert typo["ndcg@10"] < clean["ndcg@10"]


@pytest.mark.shared
def test_hopfield_does_not_lose_to_dense_on_real_user_questions_and_wins_on_typos(shared_dir, tmp_path, embedder):
    """covidfaq: 1,073 questions people typed, against 67 FAQ entries; the first 400, clean and typo-20."""
    config = EvalConfig(
        retrievers=("dense", "hopfield"),
        conditions=("clean", "typo-20", "truncate-50"),
        limit=400,
        metrics=("recall@1", "recall@10"),
        cache_dir=tmp_path / "cache",
    )
    report = run_eval(load_dataset(shared_dir / "datasets" / "covidfaq"), tmp_path / "kb", config, embedder=embedder)
    for condition in ("clean", "truncate-50"):
        for metric in ("recall@1", "recall@10"):
            dense, hop = (report.results[condition][r][metric] for r in ("dense", "hopfield"))
            p = report.pvalues[condition]["hopfield"][metric]
            assert hop >= dense or p >= 0.05, (condition, metric, hop, dense, p)
    typo = report.results["typo-20"]
    assert typo["hopfield"]["recall@1"] >= typo["dense"]["recall@1"] + 0.15
    assert report.pvalues["typo-20"]["hopfield"]["recall@1"] < 0.05
