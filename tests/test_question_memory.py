"""The question memory (issue 16): recall math, learning, versions, forgetting, per-user caps, eval replay."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from ingest import IngestConfig, ingest
from kb import KBError, KnowledgeBase
from kb.memory_records import DAY, MemoryConfig
from kb.question_memory import QuestionMemory
from retriever import AnswerConfig, HopfieldRetriever, answer
from retriever.question_recall import chunk_mass, recall_attention

POLICY = "refund-and-cancellation-policy.md"


def _chunk_with(kb: KnowledgeBase, needle: str) -> int:
    ids = [int(i) for i in kb.snapshot().ids]
    found = [r.id for r in kb.chunks(ids) if r is not None and needle in r.text]
    assert len(found) == 1, (needle, found)
    return found[0]


def _vec(embedder, text: str) -> np.ndarray:
    return embedder.encode([text])[0]


def test_recall_step_matches_brute_force(rng):
    sims = rng.uniform(-0.2, 1.0, size=(4, 9))
    weights = rng.uniform(0.1, 3.0, size=9)
    attn = recall_attention(sims, np.log(weights), beta=20.0, threshold=0.5)
    chunk_of = rng.integers(0, 4, size=9)
    mass = chunk_mass(attn, chunk_of, 4)
    for b in range(4):
        # softmax over [null pattern (logit 0), each stored question (beta (s - threshold) + ln w)]
        logits = [0.0] + [20.0 * (s - 0.5) + math.log(w) for s, w in zip(sims[b], weights)]
        z = sum(math.exp(x) for x in logits)
        expected = [math.exp(x) / z for x in logits[1:]]
        assert np.allclose(attn[b], expected, rtol=1e-9, atol=1e-12)
        for c in range(4):
            assert mass[b, c] == pytest.approx(sum(e for e, k in zip(expected, chunk_of) if k == c))
    # A question far from every stored one recalls (almost) nothing: the null pattern takes the mass.
    far = recall_attention(np.full((1, 9), 0.1), np.log(weights), 20.0, 0.5)
    assert far.sum() < 1e-2


def test_empty_memory_changes_nothing(kb_copy, embedder):
    kb = KnowledgeBase(kb_copy)
    questions = [json.loads(line)["question"] for line in SAMPLE_QUESTIONS.read_text().splitlines()[:12]]
    plain = HopfieldRetriever(kb, embedder, memory=None).rank(questions, k=5)
    memory = QuestionMemory(kb)
    with_kb = HopfieldRetriever(kb, embedder).rank(questions, k=5)  # the KB's memory: never written
    # Written and then emptied again: still no change.
    a = memory.confirm(questions[0], _vec(embedder, questions[0]), int(plain[3].ids[0]))
    assert memory.forget(a.id)
    emptied = HopfieldRetriever(kb, embedder).rank(questions, k=5)
    for p, w, e in zip(plain, with_kb, emptied):
        assert np.array_equal(p.ids, w.ids) and np.array_equal(p.ids, e.ids)
        assert np.allclose(p.scores, w.scores) and np.allclose(p.scores, e.scores)
        assert w.diagnostics.memory == () and e.diagnostics.memory == ()


def test_confirmed_question_finds_its_paraphrase(kb_copy, embedder):
    kb = KnowledgeBase(kb_copy)
    asked = "When do annual plans get billed?"
    paraphrase = "when are yearly plans billed"
    plain = HopfieldRetriever(kb, embedder, memory=None)
    # The passage confirmed is one the reader alone does not put first for the paraphrase.
    target = int(plain.rank([paraphrase], k=5)[0].ids[2])
    QuestionMemory(kb).confirm(asked, _vec(embedder, asked), target, origin="thumbs_up")
    result = HopfieldRetriever(kb, embedder).search(paraphrase)
    assert result.hits[0].chunk.id == target
    top = result.diagnostics.memory[0]
    assert top.chunk_id == target and asked in top.questions and top.mass > 0.5
    # An unrelated question recalls nothing and ranks as before.
    other = "How do I reset two-factor authentication?"
    assert HopfieldRetriever(kb, embedder).search(other).diagnostics.memory == ()
    assert [h.chunk.id for h in HopfieldRetriever(kb, embedder).search(other).hits] == [
        h.chunk.id for h in plain.search(other).hits
    ]


def test_a_confirmed_loose_question_and_its_paraphrase_are_answered_not_refused(kb_copy, embedder):
    kb = KnowledgeBase(kb_copy)
    asked = "a church group is asking if they get it cheaper"
    paraphrase = "our church asks whether they can pay less"
    target = _chunk_with(kb, "non-profit")
    first = answer(asked, HopfieldRetriever(kb, embedder))
    # None of the question's words are the passage's: the reader finds it, the evidence refuses it.
    assert first.abstained and first.search.hits[0].chunk.id == target and "memory" not in first.signals
    QuestionMemory(kb).confirm(asked, _vec(embedder, asked), target, origin="cited_helpful")
    for question in (asked, paraphrase):
        again = answer(question, HopfieldRetriever(kb, embedder))
        assert not again.abstained, (question, again.evidence)
        assert again.signals["memory"] > 0.9 and again.evidence == again.signals["memory"] > again.signals["evidence_score"]
        assert again.citations[0].chunk_id == target and "non-profit" in again.citations[0].quote
        off = answer(question, HopfieldRetriever(kb, embedder), AnswerConfig(memory_evidence=False))
        assert off.abstained and off.evidence == off.signals["evidence_score"]
    # An out-of-scope question recalls nothing and still abstains.
    assert answer("Does Tallyo run payroll for my employees?", HopfieldRetriever(kb, embedder)).abstained


def test_a_confirmation_is_vouched_for_by_the_owner_or_by_two_keys_and_a_rejection_does_not_vouch(kb_copy, embedder):
    kb = KnowledgeBase(kb_copy)
    memory = QuestionMemory(kb)
    target = _chunk_with(kb, "non-profit")
    cases = {
        "do charities pay less": [None],
        "is there a discount for churches": ["key:1"],
        "do schools get a lower price": ["key:1", "key:2"],
        "discount for a food bank": ["key:1", "key:1"],  # one key twice is still one key
    }
    for question, users in cases.items():
        for user in users:
            memory.confirm(question, _vec(embedder, question), target, user=user)
    memory.reject("discount for a food bank", _vec(embedder, "discount for a food bank"), target, user="key:2")
    patterns = memory.patterns()
    vouched = dict(zip(patterns.questions, patterns.vouched.tolist()))
    assert vouched == {
        "do charities pay less": True,
        "is there a discount for churches": False,
        "do schools get a lower price": True,
        "discount for a food bank": False,
    }
    assert QuestionMemory(kb, MemoryConfig(vouching_users=1)).patterns().vouched.all()
    with pytest.raises(KBError, match="vouching_users must be at least 1, not 0"):
        MemoryConfig(vouching_users=0)


def test_changed_policy_is_never_answered_from_the_old_version(kb_copy, tmp_path, embedder):
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    kb = KnowledgeBase(kb_copy)
    memory = QuestionMemory(kb)
    changed_q = "How long is the money-back guarantee?"
    kept_q = "Do I get charged again after cancelling a monthly plan?"
    old_changed = _chunk_with(kb, "comes with a 14-day money-back guarantee")
    old_kept = _chunk_with(kb, "you keep full access until the end of the billing month")
    old_text = kb.chunks([old_kept])[0].text
    a_changed = memory.confirm(changed_q, _vec(embedder, changed_q), old_changed)
    a_kept = memory.confirm(kept_q, _vec(embedder, kept_q), old_kept)
    memory.confirm(kept_q, _vec(embedder, kept_q), old_kept)  # confirmed twice: Hebbian strength 2

    # The policy changes: the guarantee becomes 30 days. Everything else in the document stays as it was.
    policy = docs / POLICY
    policy.write_text(
        policy.read_text().replace("comes with a 14-day money-back guarantee", "comes with a 30-day money-back guarantee")
    )
    report = ingest(kb_copy, [docs], IngestConfig(mirror=True), embedder=embedder)
    assert not report.failed and report.updated
    kb = KnowledgeBase(kb_copy)
    new_changed = _chunk_with(kb, "comes with a 30-day money-back guarantee")

    result = HopfieldRetriever(kb, embedder).search(changed_q, top_k=5)
    suggested = {s.chunk_id for s in result.diagnostics.memory}
    assert new_changed not in suggested and old_changed not in suggested
    assert all("14-day money-back" not in h.chunk.text for h in result.hits)
    # The association to the changed passage is retired: kept as history, never used again.
    retired = memory.get(a_changed.id)
    assert retired.retired and "changed" in retired.retired_reason
    assert memory.current_chunk(retired) is None
    assert [e.event for e in memory.events(a_changed.id)] == ["confirmed", "retired"]
    # The unchanged passage's association carried over to its new chunk (same text, new version).
    carried = memory.get(a_kept.id)
    assert not carried.retired and carried.doc_version == 2 and carried.confirmations == 2
    new_kept = memory.current_chunk(carried)
    assert new_kept != old_kept and kb.chunks([new_kept])[0].text == old_text
    assert "carried" in [e.event for e in memory.events(a_kept.id)]
    kept = HopfieldRetriever(kb, embedder).search(kept_q)
    assert kept.diagnostics.memory and kept.diagnostics.memory[0].chunk_id == new_kept

    # Deleting the document removes its associations.
    policy.unlink()
    ingest(kb_copy, [docs], IngestConfig(mirror=True), embedder=embedder)
    assert HopfieldRetriever(KnowledgeBase(kb_copy), embedder).search(kept_q).diagnostics.memory == ()
    assert memory.get(a_kept.id) is None and "removed" in [e.event for e in memory.events(a_kept.id)]


def test_decay_forget_and_thumbs_down(kb_copy, embedder):
    kb = KnowledgeBase(kb_copy)
    memory = QuestionMemory(kb, MemoryConfig(half_life_days=10))
    q = "Can I get a refund on an annual plan?"
    chunk = _chunk_with(kb, "you may request a prorated refund")
    t0 = 1_700_000_000.0
    a = memory.confirm(q, _vec(embedder, q), chunk, now=t0)
    assert memory.patterns(now=t0).weights[0] == pytest.approx(1.0)
    assert memory.patterns(now=t0 + 10 * DAY).weights[0] == pytest.approx(0.5)
    assert memory.patterns(now=t0 + 20 * DAY).weights[0] == pytest.approx(0.25)
    assert len(memory.patterns(now=t0 + 100 * DAY)) == 0  # below min_strength: unused
    # A new confirmation after one half-life: the decayed 0.5 plus 1.
    assert memory.confirm(q, _vec(embedder, q), chunk, now=t0 + 10 * DAY).strength == pytest.approx(1.5)
    # Anti-Hebbian: two thumbs down take it below zero, and it is no longer used.
    memory.reject(q, _vec(embedder, q), chunk, now=t0 + 10 * DAY)
    memory.reject(q, _vec(embedder, q), chunk, now=t0 + 10 * DAY)
    assert memory.get(a.id).strength == pytest.approx(-0.5)
    assert len(memory.patterns(now=t0 + 10 * DAY)) == 0
    assert memory.forget(a.id) and not memory.forget(a.id)
    assert memory.get(a.id) is None
    assert [e.event for e in memory.events(a.id)][-1] == "forgotten"


def test_one_user_cannot_swamp_the_memory(kb_copy, embedder):
    kb = KnowledgeBase(kb_copy)
    memory = QuestionMemory(kb, MemoryConfig(user_cap=3))
    wrong = _chunk_with(kb, "you keep full access until the end of the billing month")
    right = _chunk_with(kb, "you may request a prorated refund")
    q = "refund for a yearly plan"
    for _ in range(20):  # the same thumbs up, twenty times
        a = memory.confirm(q, _vec(embedder, q), wrong, user="key:mallory")
    assert a.strength == 3 and a.confirmations == 20
    for i in range(10):  # ten wordings, all pointing at the same passage
        memory.confirm(f"{q} please {i}", _vec(embedder, f"{q} please {i}"), wrong, user="key:mallory")
    p = memory.patterns()
    assert p.weights[p.chunk_ids == wrong].sum() == pytest.approx(3.0)  # one user adds at most user_cap
    for user in ("key:ann", "key:bob", "key:cy"):
        memory.confirm(q, _vec(embedder, q), right, user=user)
        memory.reject(q, _vec(embedder, q), wrong, user=user)
    p = memory.patterns()
    assert p.weights[p.chunk_ids == right].sum() == pytest.approx(3.0)
    # Three users' thumbs down cancel mallory's cap on the question they share; her other wordings remain.
    assert q not in [p.questions[i] for i in np.flatnonzero(p.chunk_ids == wrong)]
    result = HopfieldRetriever(kb, embedder).search(q)
    assert result.hits[0].chunk.id == right


def test_eval_history_replay_never_scores_a_replayed_question(kb_copy, tmp_path, embedder):
    from eval import EvalConfig, load_dataset, run_eval

    records = [json.loads(line) for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]
    history = tmp_path / "history.jsonl"
    replayed = records[:20]
    # One of them typed differently (case, spaces): still the same question, still not scored.
    replayed[0] = {**replayed[0], "question": "  " + replayed[0]["question"].upper()}
    history.write_text("".join(json.dumps({"question": r["question"], "relevant": r["relevant"]}) + "\n" for r in replayed))
    labelled = load_dataset(SAMPLE_QUESTIONS)
    config = EvalConfig(retrievers=("hopfield",), metrics=("recall@1",), cutoff=5, depth=20, history=history)
    report = run_eval(labelled, kb_copy, config, embedder=embedder)
    assert report.retrievers == ("hopfield", "hopfield+memory")
    assert report.n_queries == len(records) - 20
    scored = set(report.queries["clean"].values())
    assert not scored & {r["question"] for r in records[:20]}
    assert report.meta["history"]["pairs"] == sum(len(r["relevant"]) for r in replayed)
    assert not QuestionMemory(kb_copy).exists()  # the replay never writes into the KB's own memory


def test_memory_commands(kb_copy, embedder):
    from ui.cli import main

    kb = KnowledgeBase(kb_copy)
    memory = QuestionMemory(kb)
    q = "Can I get a refund on an annual plan?"
    a = memory.confirm(q, _vec(embedder, q), _chunk_with(kb, "you may request a prorated refund"))
    memory.confirm(q, _vec(embedder, q), _chunk_with(kb, "you may request a prorated refund"), user="key:k1")
    runner = CliRunner()
    out = runner.invoke(main, ["memory", "list", "--kb-dir", str(kb_copy), "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert {r["id"] for r in rows} >= {a.id} and rows[0]["question"] == q
    out = runner.invoke(main, ["memory", "show", str(a.id), "--kb-dir", str(kb_copy)])
    assert out.exit_code == 0 and "confirmed" in out.output and POLICY in out.output
    out = runner.invoke(main, ["memory", "forget", str(a.id), "--kb-dir", str(kb_copy)])
    assert out.exit_code == 0 and memory.get(a.id) is None
    out = runner.invoke(main, ["memory", "forget", str(a.id), "--kb-dir", str(kb_copy)])
    assert out.exit_code == 2


def test_app_thumbs_up_and_down_teach_the_memory(kb_copy, embedder):
    from types import SimpleNamespace

    from retriever import record_feedback  # what the app's thumbs call (and the API's feedback route)

    kb = KnowledgeBase(kb_copy)
    chunk = _chunk_with(kb, "you may request a prorated refund")
    cited = [SimpleNamespace(chunk_id=chunk, doc_source=POLICY)]
    q = "Can I get part of my annual plan back if I cancel?"
    assert len(record_feedback(kb, q, cited, helpful=True)) == 1
    memory = QuestionMemory(kb)
    [a] = memory.associations()
    assert a.question == q and a.confirmations == 1 and a.user == "" and memory.current_chunk(a) == chunk
    result = HopfieldRetriever(kb, embedder).search("if I cancel my annual plan do I get part of it back")
    assert result.hits[0].chunk.id == chunk and result.diagnostics.memory[0].questions == (q,)
    record_feedback(kb, q, cited, helpful=False)
    assert memory.get(a.id).strength == pytest.approx(0.0, abs=1e-3) and memory.get(a.id).rejections == 1
    assert kb.feedback()[-1].helpful is False  # the feedback table keeps every verdict as before
