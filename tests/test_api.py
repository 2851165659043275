"""The HTTP API against a real `kb serve` (uvicorn on 127.0.0.1), real keys, real KBs, real HTTP clients.

Two collections: support (the sample docs: three public, the rest internal, synced through the
API's own sync job) and it (one internal note). Four keys: admin, a public-only reader of support,
a writer of support and a reader of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from api import KeyStore
from data import SAMPLE_DOCS
from tests.api_server import (
    PUBLIC,
    ROOT,
    free_port,
    sample_server,
    wait_for,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with sample_server(tmp_path_factory.mktemp("api")) as served:
        yield served


def auth(server, who: str) -> dict:
    return {"Authorization": f"Bearer {server['keys'][who]}"}


def test_health_is_open_and_everything_else_needs_a_valid_key(server):
    c = server["client"]
    assert c.get("/v1/health").json() == {"status": "ok"}
    for method, path in (
        ("GET", "/v1/collections"),
        ("POST", "/v1/collections/support/search"),
        ("GET", "/v1/collections/support/documents"),
        ("GET", "/v1/metrics"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/ready"),
    ):
        assert c.request(method, path).status_code == 401, path
        assert c.request(method, path, headers={"Authorization": "Bearer hkb_000000000000_" + "x" * 43}).status_code == 401
        assert c.request(method, path, headers={"X-API-Key": "not-a-key"}).status_code == 401
    r = c.get("/v1/collections", headers={"X-API-Key": server["keys"]["admin"]})
    assert r.status_code == 200 and {x["name"] for x in r.json()} == {"support", "it"}


def test_scopes_keep_keys_inside_their_collections_and_roles(server):
    c = server["client"]
    query = {"query": "refund window"}
    assert c.post("/v1/collections/support/search", headers=auth(server, "it"), json=query).status_code == 403
    assert c.post("/v1/collections/it/search", headers=auth(server, "public"), json=query).status_code == 403
    assert c.post("/v1/collections/it/search", headers=auth(server, "it"), json=query).status_code == 200
    assert [x["name"] for x in c.get("/v1/collections", headers=auth(server, "it")).json()] == ["it"]
    files = {"file": ("note.txt", b"A note about refunds for the test.", "text/plain")}
    assert c.post("/v1/collections/support/documents", headers=auth(server, "public"), files=files).status_code == 403
    assert c.delete("/v1/collections/support/documents/billing-faq.html", headers=auth(server, "public")).status_code == 403
    assert c.post("/v1/collections/support/sync", headers=auth(server, "public"), json={}).status_code == 403
    assert c.get("/v1/metrics", headers=auth(server, "writer")).status_code == 403
    assert (
        c.post(
            "/v1/chat/completions",
            headers=auth(server, "it"),
            json={"model": "support", "messages": [{"role": "user", "content": "refunds?"}]},
        ).status_code
        == 403
    )


def test_a_public_key_never_sees_is_cited_from_or_answered_from_an_internal_document(server):
    c, h = server["client"], auth(server, "public")
    internal_questions = [
        "What uptime does Tallyo commit to in the service level agreement?",
        "How do I recover an account after losing the 2FA device?",
        "What are the API rate limits of the Team plan?",
    ]
    for q in internal_questions:
        hits = c.post("/v1/collections/support/search", headers=h, json={"query": q, "k": 10}).json()["hits"]
        assert hits and all(x["visibility"] == "public" and x["name"] in PUBLIC for x in hits), q
        ans = c.post("/v1/collections/support/ask", headers=h, json={"question": q}).json()
        assert all(x["name"] in PUBLIC for x in ans["citations"] + ans["closest"]), q
        chat = c.post(
            "/v1/chat/completions", headers=h, json={"model": "support", "messages": [{"role": "user", "content": q}]}
        ).json()
        assert all(x["name"] in PUBLIC for x in chat["citations"]), q
    assert {d["key"] for d in c.get("/v1/collections/support/documents", headers=h).json()} == set(PUBLIC)
    assert c.get("/v1/collections/support/documents/account-recovery.md", headers=h).status_code == 404
    assert c.get("/v1/collections/support/documents/account-recovery.md/history", headers=h).status_code == 404
    internal_chunk = c.post(
        "/v1/collections/support/search",
        headers=auth(server, "admin"),
        json={"query": "lost 2FA device recovery codes", "k": 1},
    ).json()["hits"][0]
    assert internal_chunk["visibility"] == "internal"
    assert (
        c.post(
            "/v1/collections/support/feedback",
            headers=h,
            json={"question": "q", "chunk_id": internal_chunk["chunk_id"], "helpful": True},
        ).status_code
        == 404
    )
    # Asking for internal documents explicitly gives nothing, not a leak.
    r = c.post("/v1/collections/support/search", headers=h, json={"query": "2FA", "filters": {"visibility": ["internal"]}})
    assert r.status_code == 200 and r.json()["hits"] == []
    assert "repairs" not in (
        c.post("/v1/collections/support/search", headers=h, json={"query": "refnd polcy"}).json()["diagnostics"] or {}
    )


def test_search_filters_by_key_prefix_kind_tag_and_time(server):
    c, h = server["client"], auth(server, "admin")

    def names(filters: dict) -> set[str]:
        r = c.post(
            "/v1/collections/support/search",
            headers=h,
            json={"query": "refund policy and fees", "k": 20, "filters": filters},
        )
        assert r.status_code == 200, r.text
        return {x["name"] for x in r.json()["hits"]}

    assert names({"kinds": ["pdf"]}) and all(n.endswith(".pdf") for n in names({"kinds": ["pdf"]}))
    assert names({"tags": ["faq"]}) <= set(PUBLIC) and names({"tags": ["faq"]})
    assert names({"key_prefix": "billing"}) == {"billing-faq.html"}
    assert names({"ingested_after": time.time() + 3600}) == set()
    assert (
        c.post("/v1/collections/support/search", headers=h, json={"query": "x", "filters": {"colour": "red"}}).status_code
        == 422
    )


def test_ask_answers_as_json_and_as_a_stream_of_sentences_then_citations(server):
    c, h = server["client"], auth(server, "admin")
    body = {"question": "What is the fee for American Express payments?"}
    ans = c.post("/v1/collections/support/ask", headers=h, json=body).json()
    assert not ans["abstained"] and "3.5%" in ans["answer"] and ans["citations"][0]["name"] == "payments-and-payouts.md"
    events = []
    with c.stream("POST", "/v1/collections/support/ask", headers={**h, "Accept": "text/event-stream"}, json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    kinds = [e for e, _ in events]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"sentence"}
    assert " ".join(d["text"] for e, d in events if e == "sentence") == ans["answer"]
    assert events[-2][1] == ans["citations"] and events[-1][1]["snapshot"] == ans["snapshot"]
    unknown = c.post("/v1/collections/support/ask", headers=h, json={"question": "Who is the CEO of Tallyo?"}).json()
    assert unknown["abstained"] and unknown["answer"] == "Not found in the knowledge base." and unknown["closest"]


def test_answers_are_logged_per_key_and_collection_redacted_and_never_in_the_server_log(server):
    from kb import KnowledgeBase, QuestionLog

    c, store = server["client"], server["store"]
    ids = {k.name: k.id for k in store.list()}
    started = time.time()  # the module's other tests asked with these keys before
    question = "How long is a VPN profile valid? Mail me at jo.doe@example.com"
    reply = c.post("/v1/collections/it/ask", headers=auth(server, "it"), json={"question": question}).json()
    chat = {"model": "support", "messages": [{"role": "user", "content": "Refund window for new plans? Call 555-123-4567"}]}
    assert c.post("/v1/chat/completions", headers=auth(server, "public"), json=chat).status_code == 200
    # Logged after the reply is sent (a background task): wait for the entries, not a fixed time.
    it = wait_for(
        lambda: QuestionLog(KnowledgeBase(server["base"] / "kbs" / "it")).entries(
            since=started, asked_by=f"key:{ids['it bot']}"
        ),
        30,
        "the it collection's log entry",
    )
    assert [(e.question, e.collection, e.abstained) for e in it] == [
        ("How long is a VPN profile valid? Mail me at [email]", "it", reply["abstained"])
    ]
    assert [x.chunk_id for x in it[0].citations] == [x["chunk_id"] for x in reply["citations"]]
    support = wait_for(
        lambda: QuestionLog(KnowledgeBase(server["base"] / "kbs" / "support")).entries(
            since=started, asked_by=f"key:{ids['website bot']}"
        ),
        30,
        "the support collection's log entry",
    )
    assert [(e.question, e.collection) for e in support] == [("Refund window for new plans? Call [phone]", "support")]
    log_text = server["log"].read_text()
    assert "jo.doe@example.com" not in log_text and "VPN profile valid" not in log_text and "555-123-4567" not in log_text


def test_the_openai_client_reads_cited_answers_from_the_compatible_endpoint(server):
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    client = openai.OpenAI(base_url=server["url"] + "/v1", api_key=server["keys"]["public"])
    assert [m.id for m in client.models.list().data] == ["support"]
    reply = client.chat.completions.create(
        model="support",
        messages=[
            {"role": "system", "content": "You help support agents."},
            {"role": "user", "content": "How many days do new subscriptions have for a full refund?"},
        ],
    )
    text = reply.choices[0].message.content
    assert "[1]" in text and "Sources:" in text and "refund-and-cancellation-policy.md" in text
    extra = reply.model_extra or {}
    assert extra["citations"][0]["name"] == "refund-and-cancellation-policy.md"
    streamed = client.chat.completions.create(
        model="support",
        stream=True,
        messages=[{"role": "user", "content": "How many days do new subscriptions have for a full refund?"}],
    )
    chunks = list(streamed)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_extra["citations"] == extra["citations"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server["url"] + "/v1", api_key="wrong").models.list()


def test_a_follow_up_is_answered_in_the_context_of_the_conversation_through_chat_ask_and_search(server):
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    client = openai.OpenAI(base_url=server["url"] + "/v1", api_key=server["keys"]["public"])
    first = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "How long is the refund window?"}]
    )
    messages = [
        {"role": "system", "content": "You help support agents."},
        {"role": "user", "content": "How long is the refund window?"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "and for annual plans?"},
    ]
    reply = client.chat.completions.create(model="support", messages=messages)
    extra = reply.model_extra or {}
    # The follow-up quotes the annual plans' refund rule, not their price list as the turn alone would.
    quote = extra["citations"][0]["quote"]
    assert "refund" in quote.lower() and "annual" in quote.lower(), quote
    used = extra["history_used"]
    assert [t["role"] for t in used["turns"]] == ["user", "assistant"] and used["gate"] > 1
    alone = client.chat.completions.create(model="support", messages=messages[-1:]).model_extra
    assert alone["history_used"] is None and "refund" not in alone["citations"][0]["quote"].lower()

    c, h = server["client"], auth(server, "public")
    history = messages[1:3]
    ans = c.post(
        "/v1/collections/support/ask", headers=h, json={"question": "and for annual plans?", "history": history}
    ).json()
    assert not ans["abstained"] and "refund" in ans["citations"][0]["quote"].lower()
    assert ans["history_used"]["turns"][0]["content"] == "How long is the refund window?"
    hits = c.post(
        "/v1/collections/support/search", headers=h, json={"query": "and for annual plans?", "history": history}
    ).json()
    assert hits["hits"][0]["name"] == "refund-and-cancellation-policy.md" and hits["history_used"]["visited"] > 0
    away = c.post(
        "/v1/collections/support/ask",
        headers=h,
        json={"question": "what about for my daughter's school?", "history": history},
    ).json()
    assert away["abstained"]
    too_many = [{"role": "user", "content": "x"}] * 201
    assert (
        c.post("/v1/collections/support/ask", headers=h, json={"question": "refunds?", "history": too_many}).status_code
        == 422
    )
    too_long = [{"role": "user", "content": "x" * 8001}]
    assert (
        c.post("/v1/collections/support/search", headers=h, json={"query": "refunds?", "history": too_long}).status_code
        == 422
    )
    odd = [{"role": "robot", "content": "hi"}]
    bad = c.post("/v1/collections/support/ask", headers=h, json={"question": "refunds?", "history": odd})
    assert bad.status_code == 422 and "history" in bad.json()["detail"]


def test_an_upload_of_a_synced_document_becomes_its_new_version_and_the_next_answer_cites_it(server):
    c, h = server["client"], auth(server, "writer")
    key = "refund-and-cancellation-policy.md"
    before = c.get(f"/v1/collections/support/documents/{key}", headers=h).json()
    text = (SAMPLE_DOCS / key).read_text().replace("within 14 days", "within 21 days").replace("14-day", "21-day")
    text = text.replace("14 calendar days", "21 calendar days")
    r = c.post(
        "/v1/collections/support/documents",
        headers=h,
        files={"file": (key, text.encode(), "text/markdown")},
        data={"visibility": "public", "tags": "faq"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "updated" and r.json()["document"]["version"] == before["version"] + 1
    docs = c.get("/v1/collections/support/documents", headers=h).json()
    assert [d["key"] for d in docs].count(key) == 1 and len(docs) == 12
    ans = c.post(
        "/v1/collections/support/ask",
        headers=h,
        json={"question": "Within how many days can a new subscription be refunded in full?"},
    ).json()
    cited = [x for x in ans["citations"] if x["document"] == key]
    assert cited and all(x["version"] == before["version"] + 1 for x in cited) and "21" in ans["answer"]
    history = c.get(f"/v1/collections/support/documents/{key}/history", headers=h).json()
    assert [e["event"] for e in history][-1] == "updated"
    # A public-only writer could not have marked it internal; this writer can, and the public key then loses it.
    bad = c.post(
        "/v1/collections/support/documents", headers=h, files={"file": ("tool.exe", b"MZ\x90\x00", "application/x")}
    )
    assert bad.status_code == 400 and "not allowed" in bad.json()["detail"]
    big = c.post(
        "/v1/collections/support/documents", headers=h, files={"file": ("big.txt", b"a" * (2 * 2**20), "text/plain")}
    )
    assert big.status_code == 413


def test_delete_removes_a_document_and_its_passages_from_every_later_answer(server):
    c, h = server["client"], auth(server, "writer")
    files = {
        "file": (
            "frobnicator-notes.txt",
            b"The frobnicator must be recalibrated every 17 days by the night shift.",
            "text/plain",
        )
    }
    assert c.post("/v1/collections/support/documents", headers=h, files=files).json()["status"] == "added"
    q = {"query": "how often is the frobnicator recalibrated", "k": 3}
    assert c.post("/v1/collections/support/search", headers=h, json=q).json()["hits"][0]["name"] == "frobnicator-notes.txt"
    r = c.delete("/v1/collections/support/documents/frobnicator-notes.txt", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "removed"
    hits = c.post("/v1/collections/support/search", headers=h, json=q).json()["hits"]
    assert all(x["name"] != "frobnicator-notes.txt" for x in hits)
    assert c.get("/v1/collections/support/documents/frobnicator-notes.txt", headers=h).status_code == 404


def test_sync_jobs_run_only_configured_folders_and_report_progress_and_result(server):
    c, h = server["client"], auth(server, "writer")
    assert c.post("/v1/collections/support/sync", headers=h, json={"sources": ["/etc"]}).status_code == 400
    job = c.post("/v1/collections/support/sync", headers=h, json={"dry_run": True})
    assert job.status_code == 202, job.text
    done = wait_for(
        lambda: (lambda j: j if j["state"] in ("done", "failed") else None)(
            c.get(f"/v1/collections/support/sync/{job.json()['id']}", headers=h).json()
        ),
        120,
        "the dry run",
    )
    assert done["state"] == "done" and done["progress"] == 1.0 and len(done["results"]) == 2
    assert c.get("/v1/collections/support/sync/nope", headers=h).status_code == 404


def test_feedback_is_stored_with_the_key_that_gave_it(server):
    from kb import KnowledgeBase

    c, h = server["client"], auth(server, "public")
    hit = c.post("/v1/collections/support/search", headers=h, json={"query": "support hours", "k": 1}).json()["hits"][0]
    r = c.post(
        "/v1/collections/support/feedback",
        headers=h,
        json={"question": "support hours?", "chunk_id": hit["chunk_id"], "helpful": True},
    )
    assert r.status_code == 201
    fb = [f for f in KnowledgeBase(server["base"] / "kbs" / "support").feedback() if f.id == r.json()["id"]][0]
    assert fb.helpful and fb.doc_source == hit["document"] and fb.by.startswith("key:")
    # ... and teaches the question memory, per key: the association names the passage and the key.
    from kb import QuestionMemory

    def learnt():  # applied in batches, within seconds (api/feedback.py)
        return [
            a
            for a in QuestionMemory(KnowledgeBase(server["base"] / "kbs" / "support")).associations()
            if a.question == "support hours?"
        ]

    found = wait_for(learnt, 30, "the question memory to learn the feedback")
    assert len(found) == 1 and found[0].user == fb.by and found[0].strength > 0


def test_one_keys_confirmation_moves_a_passage_up_but_it_takes_two_keys_to_make_the_bot_answer(server):
    from kb import KnowledgeBase, QuestionMemory

    c = server["client"]
    asked = "a church group is asking if they get it cheaper"

    def ask() -> dict:
        return c.post("/v1/collections/support/ask", headers=auth(server, "public"), json={"question": asked}).json()

    def confirm(who: str, confirmations: int) -> None:
        body = {"question": asked, "chunk_id": target, "helpful": True}
        assert c.post("/v1/collections/support/feedback", headers=auth(server, who), json=body).status_code == 201
        memory = QuestionMemory(KnowledgeBase(server["base"] / "kbs" / "support"))
        wait_for(
            lambda: len([a for a in memory.associations() if a.question == asked]) == confirmations,
            30,
            f"the question memory to learn {who}'s confirmation",
        )

    first = ask()
    assert first["abstained"]
    target = next(h["chunk_id"] for h in first["closest"] if "non-profit" in h["text"])
    # The website bot's key (its anonymous users' thumbs) confirms it: the passage comes first, still refused.
    confirm("public", 1)
    once = ask()
    assert once["abstained"] and once["closest"][0]["chunk_id"] == target
    # The docs team's key confirms it too: two keys vouch for it, and the bot answers from it.
    confirm("writer", 2)
    twice = ask()
    assert not twice["abstained"] and twice["citations"][0]["chunk_id"] == target
    assert "non-profit" in twice["citations"][0]["quote"]


def test_metrics_readiness_and_request_limits(server):
    c, h = server["client"], auth(server, "admin")
    wait_for(lambda: c.get("/v1/ready", headers=h).status_code == 200, 120, "readiness")
    text = c.get("/v1/metrics", headers=h).text
    assert any(
        line.startswith("hkb_requests_total{")
        and all(
            part in line
            for part in (
                'method="POST"',
                'route="/v1/collections/{collection}/search"',
                'status="200"',
                'collection="support"',
            )
        )
        for line in text.splitlines()
    )
    assert 'hkb_documents{collection="support"}' in text and "hkb_last_sync_timestamp_seconds" in text
    r = c.post(
        "/v1/collections/support/search",
        headers={**h, "content-type": "application/json"},
        content=json.dumps({"query": "refund"}) + " " * (20 * 1024),
    )
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert c.post("/v1/collections/support/search", headers=h, json={"query": "", "k": 5}).status_code == 422
    assert c.post("/v1/collections/support/search", headers=h, json={"query": "a", "k": 0}).status_code == 422
    assert c.post("/v1/collections/nope/search", headers=h, json={"query": "a"}).status_code == 404


def test_keys_are_stored_hashed_never_printed_by_list_and_revocation_takes_effect(server, tmp_path):
    from click.testing import CliRunner

    from ui.cli import main

    db = (server["base"] / "keys.sqlite").read_bytes()
    for token in server["keys"].values():
        assert token.split("_", 2)[2].encode() not in db  # the secret may itself hold "_"
    runner = CliRunner()
    listed = runner.invoke(main, ["keys", "list", "--keys", str(server["base"] / "keys.sqlite")])
    assert listed.exit_code == 0 and "website bot" in listed.output
    assert not any(t in listed.output for t in server["keys"].values())
    made = runner.invoke(
        main,
        [
            "keys",
            "create",
            "--name",
            "temp",
            "--keys",
            str(server["base"] / "keys.sqlite"),
            "--collections",
            "support",
            "--visibility",
            "public",
            "--expires",
            "90d",
            "--json",
        ],
    )
    token = json.loads(made.output)["key"]
    c = server["client"]
    assert c.get("/v1/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert (
        runner.invoke(
            main, ["keys", "revoke", json.loads(made.output)["id"], "--keys", str(server["base"] / "keys.sqlite")]
        ).exit_code
        == 0
    )
    wait_for(
        lambda: c.get("/v1/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 401,
        30,
        "the revoked key to be refused",
    )
    bad = runner.invoke(main, ["keys", "create", "--name", "x", "--role", "root", "--keys", str(tmp_path / "k.sqlite")])
    assert bad.exit_code == 2
    assert token not in server["log"].read_text()


def test_sigterm_stops_the_server_with_its_children(server, tmp_path):
    # A second server on the same config: SIGTERM must end it (and leave no process behind) promptly.
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "serve", "--config", str(server["base"] / "server.toml"), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"),
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    wait_for(lambda: client.get("/v1/health").status_code == 200, 120, "the second server")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) is not None
    client.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)


def test_the_key_store_refuses_damage_with_a_clear_message(tmp_path):
    from kb import KBError

    path = tmp_path / "keys.sqlite"
    path.write_bytes(b"this is not sqlite" * 10)
    with pytest.raises(KBError, match="cannot be used"):
        KeyStore(path).list()
    assert KeyStore(tmp_path / "none.sqlite").verify("hkb_000000000000_" + "a" * 43) is None
