"""Every retriever on the real sample KB: right passages, diagnostics, clear errors, LangChain."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from langchain_core.runnables import RunnableLambda

from data import SAMPLE_QUESTIONS
from kb import EmptyKBError, KBError, KnowledgeBase
from retriever import RETRIEVERS, HopfieldConfig, KBLangChainRetriever, VocabularyMemory, make_retriever
from tests.helpers import read_questions
from ui.cli import main

QUESTIONS = read_questions(SAMPLE_QUESTIONS)


def _doc_hits_at(results, questions, k: int) -> int:
    return sum(any(h.chunk.doc_name in q["relevant"] for h in r.hits[:k]) for r, q in zip(results, questions))


@pytest.mark.parametrize("name", RETRIEVERS)
def test_each_retriever_finds_the_right_document_for_clean_questions(sample_kb, embedder, name):
    clean = [q for q in QUESTIONS if q["style"] == "clean"]
    results = make_retriever(name, sample_kb, embedder, top_k=5).search_batch([q["question"] for q in clean])
    assert _doc_hits_at(results, clean, 5) >= 0.9 * len(clean)
    for r in results:
        scores = [h.score for h in r.hits]
        assert len(r.hits) == 5 and scores == sorted(scores, reverse=True)
        assert [h.rank for h in r.hits] == [1, 2, 3, 4, 5]
        assert all(h.chunk is not None and h.chunk.text for h in r.hits)


def test_hopfield_ranks_the_answer_first_for_typo_questions_at_least_as_often_as_dense(sample_kb, embedder):
    typo = [q for q in QUESTIONS if q["style"] == "typo"]
    texts = [q["question"] for q in typo]
    hop = make_retriever("hopfield", sample_kb, embedder).search_batch(texts)
    dense = make_retriever("dense", sample_kb, embedder).search_batch(texts)
    assert _doc_hits_at(hop, typo, 1) >= _doc_hits_at(dense, typo, 1)
    assert _doc_hits_at(hop, typo, 5) == len(typo)


def test_hopfield_repairs_garbled_words_and_reports_its_dynamics(sample_kb, embedder):
    result = make_retriever("hopfield", sample_kb, embedder).search("refnd polcy for anual plan cancelation")
    d = result.diagnostics
    assert dict(d.repairs) == {"refnd": "refund", "polcy": "policy", "anual": "annual", "cancelation": "cancellation"}
    assert d.query_used == "refund policy for annual plan cancellation"
    assert result.hits[0].chunk.doc_name == "refund-and-cancellation-policy.md"
    assert 1 <= d.steps <= HopfieldConfig().update_steps_max and len(d.energy) == d.steps
    assert all(b <= a + 1e-5 for a, b in zip(d.energy, d.energy[1:]))
    assert 0.0 <= d.entropy <= math.log(d.candidates) + 1e-6


def test_batched_search_equals_one_query_at_a_time(sample_kb):
    from kb import EmbedderConfig, load_embedder

    # fp32 questions: a bf16 vector moves with its batch's shape (up to 5e-3 in these scores on an AMX CPU), which
    # would hide a reader that mixed up its batch; in fp32 the two agree to ~1e-6.
    texts = [q["question"] for q in QUESTIONS[:6]]
    retriever = make_retriever("hopfield", sample_kb, load_embedder(EmbedderConfig(precision="fp32")))
    batched = retriever.search_batch(texts)
    for text, b in zip(texts, batched):
        single = retriever.search(text)
        assert [h.chunk.id for h in single.hits] == [h.chunk.id for h in b.hits]
        np.testing.assert_allclose([h.score for h in single.hits], [h.score for h in b.hits], atol=1e-4)


def test_vocabulary_memory_leaves_known_and_foreign_words_alone():
    memory = VocabularyMemory.build(["Refund policy for annual plans and invoices"])
    assert memory.repair("refund policy").changes == ()
    assert memory.repair("Rückerstattung für 年間プラン").changes == ()
    assert memory.repair("invoces").text == "invoices"


def _garbled(word: str, rng: np.random.Generator) -> str:
    """word with one or two random edits: a deletion, an insertion, a substitution or a swap of neighbours."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(int(rng.integers(1, 3))):
        i, kind = int(rng.integers(0, len(word))), int(rng.integers(0, 4))
        c = letters[int(rng.integers(0, 26))]
        if kind == 0 and len(word) > 1:
            word = word[:i] + word[i + 1 :]
        elif kind == 1:
            word = word[:i] + c + word[i:]
        elif kind == 2:
            word = word[:i] + c + word[i + 1 :]
        elif i + 1 < len(word):
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word


def test_the_scan_and_the_edit_dictionary_pick_the_same_word_for_every_typo():
    from retriever.vocabulary import SCANS_BEFORE_BUILD, english_words

    # A real vocabulary of 82k words with skewed counts: symspellpy's English list, each word counted by its rank.
    words = sorted(english_words())
    rng = np.random.default_rng(7)
    counts = rng.zipf(1.6, size=len(words)).clip(max=10**6)
    scanning, built = VocabularyMemory(words, counts), VocabularyMemory(words, counts)
    built.prepare()
    typos = [_garbled(words[int(i)], rng) for i in rng.choice(len(words), size=min(300, SCANS_BEFORE_BUILD - 1))]
    picked = [(scanning.nearest_by_edits(t), built.nearest_by_edits(t)) for t in typos]
    assert [a for a, _ in picked] == [b for _, b in picked]
    assert "_edits" not in scanning.__dict__  # every lookup above was a scan
    assert sum(a is not None for a, _ in picked) > 250
    assert sum(_tied(t, words, counts) for t in typos) >= 5  # both broke the ties at the top alike (alphabetically)


def _tied(typo: str, words: list[str], counts: np.ndarray) -> bool:
    """Whether more than one word is nearest to typo (within 1 or 2 edits, as query repair looks) and most frequent."""
    from rapidfuzz import process
    from rapidfuzz.distance import OSA

    found = process.extract(typo, words, scorer=OSA.distance, score_cutoff=1 if len(typo) <= 4 else 2, limit=None)
    if not found:
        return False
    nearest = min(d for _, d, _ in found)
    top = [counts[i] for _, d, i in found if d == nearest]
    return top.count(max(top)) > 1


def test_a_fresh_memory_scans_its_first_typos_and_builds_the_dictionary_after_enough(monkeypatch):
    import retriever.vocabulary as vocabulary

    monkeypatch.setattr(vocabulary, "SCANS_BEFORE_BUILD", 2)
    memory = VocabularyMemory.build(["Refund policy for annual plans, invoices and the quarterly warranty."])
    assert memory.repair("quartrly warrnty").text == "quarterly warranty"
    assert not memory.prepared and "_edits" not in memory.__dict__  # two typos: two scans, nothing built
    assert memory.repair("invoces").text == "invoices"
    assert "_edits" in memory.__dict__  # the third unknown word built the dictionary


def test_a_warm_up_search_builds_query_repair_that_a_clean_question_leaves_unbuilt(kb_copy, embedder):
    from retriever import WARM_UP_QUERY
    from retriever.corpus import corpus_for

    kb = KnowledgeBase(kb_copy)  # a directory of its own: no other test's corpus or vocabulary
    hop = make_retriever("hopfield", kb, embedder)
    hop.search("How do I reset my password?")
    vocabulary = corpus_for(kb).vocabulary
    assert not vocabulary.prepared  # a clean question never pays for the dictionaries
    hop.search(WARM_UP_QUERY)  # what the API server and the app search before they say ready
    assert vocabulary.prepared and corpus_for(kb).vocabulary is vocabulary


def test_a_later_snapshot_memory_reuses_the_edit_dictionary_and_repairs_like_a_fresh_one():
    before = VocabularyMemory.build(["Refund policy for annual plans, invoices and the quarterly warranty."])
    before.prepare()  # builds the edit dictionary (a fresh memory scans its first typos instead)
    assert before.repair("quartrly warrnty").text == "quarterly warranty"
    texts = ["Refund policy for annual plans and invoices.", "Chargeback disputes and subscription renewals."]
    fresh = VocabularyMemory.build(texts)
    later = before.updated(fresh.words, fresh.counts)
    assert later.__dict__["_edits"] is before.__dict__["_edits"]  # shared, not rebuilt
    for typo in ("chargebak", "subscripton renewls", "quartrly warrnty", "invoces polcy", "disputs"):
        assert later.repair(typo).text == fresh.repair(typo).text, typo
    assert later.repair("quartrly warrnty").changes == ()  # words the sync removed are never suggested
    assert before.repair("chargebak").changes == ()  # nor words only a later snapshot holds


def test_correct_english_words_the_kb_lacks_are_never_rewritten():
    # The old memory rewrote every word the KB lacked: wife -> life, despise -> despite, yes -> years.
    memory = VocabularyMemory.build(["Life insurance years: despite the mandatory invitation, commit to many plans."])
    question = "my wife says yes but we despise mandatory indentation, can we omit it?"
    repair = memory.repair(question)
    assert repair.changes == () and repair.text == question and repair.unknown == 0
    assert memory.repair("mandatry invitaton").text == "mandatory invitation"


def test_contractions_acronyms_and_names_mid_sentence_are_left_as_typed():
    memory = VocabularyMemory.build(["You should not share devices; the customer does the payment."])
    for question in ["shouldn't the customer's payment go through?", "do NSAIDs or hTRPML matter", "dev keys"]:
        assert memory.repair(question).changes == (), question


def test_garble_level_switches_the_character_view_on_only_for_garbled_questions(sample_kb, embedder):
    retriever = make_retriever("hopfield", sample_kb, embedder)
    clean = retriever.search("a church group is asking if they get it cheaper").diagnostics
    garbled = retriever.search("refnd polcy for anual plan cancelation").diagnostics
    assert clean.garble == 0.0 and clean.char_gate == 0.0 and clean.repairs == ()
    assert garbled.garble == pytest.approx(4 / 6) and garbled.char_gate == 1.0


def test_hopfield_ranks_the_right_document_first_at_least_as_often_as_dense_on_all_sample_questions(sample_kb, embedder):
    texts = [q["question"] for q in QUESTIONS]
    hop = make_retriever("hopfield", sample_kb, embedder).search_batch(texts)
    dense = make_retriever("dense", sample_kb, embedder).search_batch(texts)
    assert _doc_hits_at(hop, QUESTIONS, 1) >= _doc_hits_at(dense, QUESTIONS, 1)
    assert _doc_hits_at(hop, QUESTIONS, 5) >= 0.95 * len(QUESTIONS)


@pytest.mark.parametrize("query", ["年間プランの返金ポリシー", "политика возврата", "🙂 refund ??", "a", "x" * 5000])
def test_odd_scripts_and_odd_lengths_return_results(sample_kb, embedder, query):
    result = make_retriever("hopfield", sample_kb, embedder).search(query)
    assert len(result.hits) == 5


@pytest.mark.parametrize("query", ["", "   ", "?!.,;", "\n\t"])
def test_empty_or_punctuation_queries_are_refused_clearly(sample_kb, embedder, query):
    with pytest.raises(KBError, match="empty or only punctuation"):
        make_retriever("hopfield", sample_kb, embedder).search(query)


@pytest.mark.parametrize("beta", [0, -1, float("nan"), float("inf")])
def test_bad_beta_is_refused_naming_the_range(beta):
    with pytest.raises(KBError, match="beta must be"):
        HopfieldConfig(beta=beta)


def test_candidates_below_top_k_and_unknown_names_are_refused(sample_kb, embedder):
    with pytest.raises(KBError, match="candidates"):
        make_retriever("hopfield", sample_kb, embedder, top_k=10, candidates=5)
    with pytest.raises(KBError, match="unknown retriever"):
        make_retriever("nearest", sample_kb, embedder)


def test_searching_an_empty_kb_says_to_ingest_first(tmp_path, embedder):
    kb = KnowledgeBase(tmp_path / "empty", create=True)
    with pytest.raises(EmptyKBError, match="ingest"):
        make_retriever("hopfield", kb, embedder).search("refund")


def test_langchain_retriever_works_inside_a_runnable_chain(sample_kb, embedder):
    lc = KBLangChainRetriever(retriever=make_retriever("hopfield", sample_kb, embedder), k=3)
    chain = RunnableLambda(str.strip) | lc | RunnableLambda(lambda docs: [d.metadata["name"] for d in docs])
    names = chain.invoke("  How many days do new subscriptions have for a full refund?  ")
    assert names[0] == "refund-and-cancellation-policy.md" and len(names) == 3
    doc = lc.invoke("refund window")[0]
    meta = doc.metadata
    assert doc.page_content == sample_kb.document_text(meta["doc_id"])[meta["char_start"] : meta["char_end"]]
    assert {"chunk_id", "title", "page", "section", "score", "version", "steps", "converged"} <= set(meta)
    assert doc.id == str(meta["chunk_id"])  # the stable id: a vector store or a dedup step can key on it


def test_langchain_retriever_takes_k_per_call_and_runs_natively_async(sample_kb, embedder):
    import asyncio

    lc = KBLangChainRetriever(retriever=make_retriever("hopfield", sample_kb, embedder), k=3)
    assert len(lc.invoke("refund window", k=1)) == 1 and len(lc.invoke("refund window")) == 3
    sync_ids = [d.id for d in lc.invoke("refund window", k=2)]
    async_docs = asyncio.run(lc.ainvoke("refund window", k=2))
    assert [d.id for d in async_docs] == sync_ids


def test_kb_search_cli_takes_retriever_and_beta(sample_kb_dir):
    runner = CliRunner()
    out = runner.invoke(
        main,
        [
            "search",
            "anual plan refnd",
            "--kb-dir",
            str(sample_kb_dir),
            "--retriever",
            "hopfield",
            "--beta",
            "8",
            "-k",
            "3",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert len(payload["hits"]) == 3 and payload["diagnostics"]["beta"] == 8
    bad = runner.invoke(main, ["search", "refund", "--kb-dir", str(sample_kb_dir), "--beta", "0"])
    assert bad.exit_code == 2 and "beta must be" in bad.output


@pytest.mark.parametrize("name", RETRIEVERS)
def test_a_filter_keeps_every_retriever_inside_the_allowed_documents(sample_kb, embedder, name):
    from kb import DocumentFilter

    pdfs = DocumentFilter(kinds=("pdf",))
    allowed = {d.source for d in sample_kb.documents(pdfs)}
    assert allowed and len(allowed) < len(sample_kb.documents())
    retriever = make_retriever(name, sample_kb, embedder, top_k=5)
    for q in QUESTIONS[:12]:
        hits = retriever.search(q["question"], where=pdfs).hits
        assert hits and {h.chunk.doc_source for h in hits} <= allowed
    # A filter that allows nothing returns nothing, never a document outside it.
    none = DocumentFilter(key_prefix="no-such-folder/")
    assert retriever.search("refund", where=none).hits == ()


def test_filtered_dense_search_equals_the_unfiltered_ranking_with_other_documents_removed(sample_kb, embedder):
    # Reference check against brute force: FAISS's selector must give the allowed documents' order.
    from kb import DocumentFilter

    where = DocumentFilter(kinds=("markdown",))
    allowed = {d.source for d in sample_kb.documents(where)}
    dense = make_retriever("dense", sample_kb, embedder, top_k=5)
    for q in QUESTIONS[:10]:
        filtered = [h.chunk.id for h in dense.search(q["question"], where=where).hits]
        full = [h.chunk.id for h in dense.search(q["question"], top_k=200).hits if h.chunk.doc_source in allowed][:5]
        assert filtered == full


def test_a_rare_kb_word_opens_the_character_view_only_in_a_large_kb():
    config = HopfieldConfig()
    filler = [f"routine note number {i} about invoices and refunds" for i in range(1999)]
    large = VocabularyMemory.build(filler + ["chenodeoxycholic acid lowers cholesterol"])
    small = VocabularyMemory.build(filler[:76] + ["chenodeoxycholic acid lowers cholesterol"])
    question = "does chenodeoxycholic acid help"
    assert large.rarest_idf(question, 2000) == pytest.approx(math.log(2001 / 1.5))
    assert config.gate(0.0, large.rarest_idf(question, 2000)) == 1.0
    assert config.gate(0.0, small.rarest_idf(question, 77)) == 0.0
    assert config.gate(0.0, large.rarest_idf("invoices and refunds", 2000)) == 0.0
    assert config.gate(0.5, 0.0) == 1.0 and HopfieldConfig(gated=False).gate(0.0, 0.0) == 1.0
