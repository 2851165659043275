"""kb_client against a real `kb serve` (tests/conftest.py's api_server): the sync and async clients, streamed answers,
refusals as exceptions carrying the server's message, and the LangChain and LlamaIndex retrievers over it. The
typed results are kept field for field with the server's JSON shapes (retriever/serialize.py, api/schemas.py)."""

from __future__ import annotations

import dataclasses
import importlib.util

import anyio
import pytest
from langchain_core.retrievers import BaseRetriever

from api.schemas import DocumentOut
from kb_client import (
    Answer,
    AsyncClient,
    Citation,
    Client,
    Document,
    Forbidden,
    HistoryUsed,
    Hit,
    InvalidRequest,
    KBConnectionError,
    NotFound,
    SearchResult,
    Sentence,
    Unauthorized,
)
from kb_client.langchain import KBRetriever
from retriever import AnswerDict, CitationDict, HistoryDict, HitDict, SearchDict
from tests.api_server import PUBLIC, free_port

INTERNAL_QUESTION = "How do I recover an account after losing the 2FA device?"
REFUNDS = "How long is the refund window?"


@pytest.mark.parametrize(
    "typed, shape",
    [(Hit, HitDict), (Citation, CitationDict), (HistoryUsed, HistoryDict), (SearchResult, SearchDict), (Answer, AnswerDict)],
)
def test_each_result_type_has_exactly_the_fields_of_the_servers_json_shape(typed, shape):
    assert dataclasses.fields(typed) and {f.name for f in dataclasses.fields(typed)} == set(shape.__annotations__)
    assert typed.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_a_document_has_the_fields_of_the_apis_document_and_its_text():
    assert {f.name for f in dataclasses.fields(Document)} == set(DocumentOut.model_fields) | {"text"}


def client(served: dict, who: str = "admin", **options) -> Client:
    return Client(served["url"], served["keys"][who], collection="support", **options)


def test_the_client_searches_answers_and_reads_documents_within_its_keys_scope(api_server):
    with client(api_server, "public") as kb:
        assert [(c.name, c.documents) for c in kb.collections()] == [("support", len(PUBLIC))]
        result = kb.search(INTERNAL_QUESTION, k=4)
        assert len(result.hits) == 4 and all(h.document in PUBLIC and h.score is None for h in result.hits)
        answer = kb.ask(REFUNDS)
        assert not answer.abstained and answer.citations[0].document == "refund-and-cancellation-policy.md"
        assert answer.text.count("[1]") == 1 and answer.evidence is None
        assert {d.key for d in kb.documents()} == set(PUBLIC)
        doc = kb.document("billing-faq.html", text=True)
        assert doc.visibility == "public" and doc.text and "Billing" in doc.text
        assert kb.document("billing-faq.html").text is None
        assert kb.feedback(REFUNDS, helpful=True, chunk_id=answer.citations[0].chunk_id) > 0
    with client(api_server) as kb:  # an unscoped key: scores, evidence and internal documents
        result = kb.search(INTERNAL_QUESTION, k=3)
        assert result.hits[0].document == "account-recovery.md" and result.hits[0].score is not None
        follow = kb.ask("and for annual plans?", history=[("user", REFUNDS), {"role": "assistant", "content": "14 days"}])
        assert follow.history_used is not None and follow.history_used.turns[0]["content"] == REFUNDS


def test_a_streamed_answer_comes_sentence_by_sentence_then_whole(api_server):
    with client(api_server) as kb:
        whole = kb.ask(REFUNDS)
        events = list(kb.ask_stream(REFUNDS))
    *sentences, last = events
    assert sentences and all(isinstance(s, Sentence) for s in sentences) and isinstance(last, Answer)
    assert " ".join(s.text for s in sentences) == whole.text.strip()
    assert last.citations == whole.citations and last.text == whole.text


def test_refusals_are_exceptions_with_the_status_and_the_servers_message(api_server):
    with client(api_server, "public") as kb:
        with pytest.raises(NotFound) as missing:
            kb.document("account-recovery.md")  # internal: as absent as a document that does not exist
        assert missing.value.status == 404 and missing.value.message == "no document 'account-recovery.md' in 'support'"
        with pytest.raises(Forbidden, match="not allowed to use collection 'it'"):
            kb.search("vpn", collection="it")
        with pytest.raises(InvalidRequest) as invalid:
            kb.search("refunds", k=0)
        assert invalid.value.status == 422 and invalid.value.message.startswith("body.k:")
        with pytest.raises(InvalidRequest, match="question"):
            list(kb.ask_stream("x" * 3000))
    with Client(api_server["url"], "hkb_000000000000_" + "a" * 43) as bad:
        with pytest.raises(Unauthorized, match="invalid, expired or revoked API key"):
            bad.collections()
    with Client(f"http://127.0.0.1:{free_port()}", "k", timeout=5) as nowhere:
        with pytest.raises(KBConnectionError) as down:
            nowhere.collections()
    assert down.value.status is None


def test_the_async_client_does_what_the_sync_one_does(api_server):
    async def scenario() -> tuple:
        async with AsyncClient(api_server["url"], api_server["keys"]["public"], collection="support") as kb:
            result = await kb.search(INTERNAL_QUESTION, k=3)
            assert (await kb.ask(REFUNDS)).citations[0].document == "refund-and-cancellation-policy.md"
            events = [e async for e in kb.ask_stream(REFUNDS)]
            docs = await kb.documents()
            with pytest.raises(NotFound):
                await kb.document("account-recovery.md")
            return result, events, docs

    result, events, docs = anyio.run(scenario)
    with client(api_server, "public") as kb:
        assert [h.chunk_id for h in result.hits] == [h.chunk_id for h in kb.search(INTERNAL_QUESTION, k=3).hits]
    assert isinstance(events[-1], Answer) and events[-1].citations and {d.key for d in docs} == set(PUBLIC)


def test_the_langchain_retriever_takes_k_per_call_is_natively_async_and_ids_documents_by_chunk(api_server):
    retriever = KBRetriever(base_url=api_server["url"], api_key=api_server["keys"]["public"], collection="support", k=4)
    assert type(retriever)._aget_relevant_documents is not BaseRetriever._aget_relevant_documents
    docs = retriever.invoke(REFUNDS)
    two = retriever.invoke(REFUNDS, k=2)
    assert len(docs) == 4 and [d.id for d in two] == [d.id for d in docs[:2]]
    with client(api_server, "public") as kb:
        hits = kb.search(REFUNDS, k=4).hits
    assert [d.id for d in docs] == [str(h.chunk_id) for h in hits]
    first = docs[0].metadata
    assert first["document"] == hits[0].document == first["source"] and first["chunk_id"] == hits[0].chunk_id
    assert {"title", "version", "section", "char_start", "char_end", "url"} <= set(first)
    assert all(d.metadata["document"] in PUBLIC for d in docs)

    async def in_a_loop() -> list:
        return await retriever.ainvoke(REFUNDS, k=3)

    assert [d.id for d in anyio.run(in_a_loop)] == [d.id for d in docs[:3]]
    assert retriever.async_client() is retriever.async_client()  # the async path has its own client, reused


@pytest.mark.skipif(
    importlib.util.find_spec("llama_index") is None,
    reason="llama-index-core is absent: pip install 'hopfield-kb[llamaindex]'",
)
def test_the_llamaindex_retriever_returns_nodes_named_by_chunk_id(api_server):
    from kb_client.llamaindex import KBLlamaIndexRetriever

    with client(api_server) as kb:
        hits = kb.search(REFUNDS, k=3).hits
        nodes = KBLlamaIndexRetriever(kb, top_k=3).retrieve(REFUNDS)
    assert [n.node.node_id for n in nodes] == [str(h.chunk_id) for h in hits]
    assert [n.score for n in nodes] == [h.score for h in hits] and nodes[0].node.metadata["document"] == hits[0].document

    async def scenario() -> list:
        async with AsyncClient(api_server["url"], api_server["keys"]["public"], collection="support") as akb:
            with client(api_server, "public") as kb:
                return await KBLlamaIndexRetriever(kb, top_k=5, async_client=akb).aretrieve(INTERNAL_QUESTION)

    scoped = anyio.run(scenario)
    assert len(scoped) == 5 and all(n.node.metadata["document"] in PUBLIC and n.score is None for n in scoped)
