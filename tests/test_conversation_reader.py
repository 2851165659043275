"""Follow-ups read with the conversation before them: the history's budget and checks, the recall math, the
reader on the real sample KB, and the LangChain history-aware contract."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda

from kb import KBError
from retriever import HistoryConfig, KBLangChainRetriever, Turn, answer, history_aware, make_retriever, parse_history
from retriever.conversation import gate, visited_recall, within_budget

REFUND = [
    {"role": "user", "content": "How long is the refund window?"},
    {"role": "assistant", "content": "New subscriptions can be cancelled for a full refund within 14 days. [1]"},
]


def test_history_keeps_the_newest_turns_within_the_budget_and_skips_system_messages():
    turns = parse_history(
        [{"role": "system", "content": "be nice"}] + [{"role": "user", "content": f"q{i}"} for i in range(15)]
    )
    assert turns[0] == Turn("user", "q0") and len(turns) == 15
    kept = within_budget(turns, HistoryConfig(max_turns=10))
    assert [t.content for t in kept] == [f"q{i}" for i in range(5, 15)]
    assert sum(len(t.content) for t in within_budget(turns, HistoryConfig(max_chars=5))) <= 5


@pytest.mark.parametrize(
    "bad, field",
    [
        ([{"role": "user", "content": 3}], "history[0].content"),
        ([{"content": "x"}], "history[0].role"),
        (["hi"], "history[0]"),
    ],
)
def test_a_malformed_history_names_the_item_and_the_fix(bad, field):
    with pytest.raises(KBError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_history(bad)


def test_short_elliptic_turns_lean_more_on_the_conversation_than_self_contained_ones():
    config = HistoryConfig()
    assert gate("and for annual plans?", config) > gate("How do I export my invoices as a PDF file?", config) >= 1.0


def test_visited_recall_is_the_log_sum_exp_of_the_weighted_similarities(rng):
    x = rng.normal(size=(7, 16)).astype(np.float32)
    v = rng.normal(size=(3, 16)).astype(np.float32)
    logw = np.log(np.array([1.0, 0.5, 0.25], dtype=np.float32))
    beta = 10.0
    naive = np.array([np.log(sum(np.exp(beta * float(xc @ vv) + lw) for vv, lw in zip(v, logw))) / beta for xc in x])
    np.testing.assert_allclose(visited_recall(x, v, logw, beta), naive, rtol=1e-4)


def test_a_follow_up_finds_the_passage_about_its_subject_and_a_topic_switch_is_not_dragged_back(sample_kb, embedder):
    reader = make_retriever("hopfield", sample_kb, embedder, top_k=3)
    follow = reader.search("and for annual plans?", history=parse_history(REFUND))
    assert follow.history is not None and follow.history.visited > 0 and follow.history.gate > 1
    assert any("refund" in h.chunk.text.lower() and "annual" in h.chunk.text.lower() for h in follow.hits[:1])
    switch = reader.search("What is the fee for American Express payments?", history=parse_history(REFUND))
    assert switch.hits[0].chunk.doc_name == "payments-and-payouts.md"
    ans = answer("and for annual plans?", reader, history=REFUND)
    assert not ans.abstained and "refund" in ans.citations[0].quote.lower()
    assert answer("what about the CEO's salary?", reader, history=REFUND).abstained
    # dense cannot read a Context: it ranks the turn in its context as one text, and says what it read
    dense = make_retriever("dense", sample_kb, embedder, top_k=3).search(
        "and for annual plans?", history=parse_history(REFUND)
    )
    assert dense.history is not None and dense.hits[0].chunk.doc_name == "refund-and-cancellation-policy.md"


def test_the_langchain_history_aware_contract_reads_the_chat_history(sample_kb, embedder):
    lc = KBLangChainRetriever(retriever=make_retriever("hopfield", sample_kb, embedder), k=2)
    chain = history_aware(lc) | RunnableLambda(lambda docs: [d.page_content for d in docs])
    texts = chain.invoke(
        {
            "input": "and for annual plans?",
            "chat_history": [HumanMessage(REFUND[0]["content"]), AIMessage(REFUND[1]["content"])],
        }
    )
    assert "refund" in texts[0].lower() and "annual" in texts[0].lower()
    pairs = history_aware(lc).invoke({"input": "and for annual plans?", "chat_history": [("human", REFUND[0]["content"])]})
    assert "refund" in pairs[0].page_content.lower()
    assert len(history_aware(lc).invoke({"input": "and for annual plans?"})) == 2  # no history: the turn alone
    with pytest.raises(TypeError, match="chat_history"):
        history_aware(lc).invoke({"input": "and for annual plans?", "chat_history": [42]})
