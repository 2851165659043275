"""GET /v1/collections/{c}/insights and its replay against a real `kb serve`, real keys and real logged questions.

Collection support: the sample docs, three public, the rest internal. Keys: an all-seeing admin, an admin scoped to
support's public documents, and a public reader. The scoped admin sees only its own questions and only public
documents and passages; the reader may not call the route at all.
"""

from __future__ import annotations

import pytest

from api import KeyStore
from kb import KnowledgeBase, QuestionLog
from tests.api_server import PUBLIC, running_server, split_sample_docs, sync_collection, wait_for, write_server_config

OUT_OF_SCOPE = [
    "Does Tallyo run payroll for my employees?",
    "Can Tallyo file my company's annual tax return with the IRS?",
    "Is there a Tallyo mobile app for Android phones?",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("api-insights")
    public, internal, it = base / "public", base / "internal", base / "it"
    split_sample_docs(public, internal, it)
    write_server_config(base / "server.toml", public, internal, it)
    store = KeyStore(base / "keys.sqlite")
    keys = {
        "admin": store.create("ops", "admin", ["*"], ["*"])[0],
        "scoped": store.create("web team lead", "admin", ["support"], ["public"])[0],
        "reader": store.create("website bot", "read", ["support"], ["public"])[0],
    }
    ids = {k.name: k.id for k in store.list()}
    with running_server(base / "server.toml", base / "server.log") as (url, client, proc):
        done = sync_collection(client, "support", keys["admin"])
        assert done["state"] == "done", done["error"]
        asked = {
            "admin": [OUT_OF_SCOPE[0], "What are the support hours for urgent issues?"],
            "scoped": [OUT_OF_SCOPE[1]],
            "reader": [OUT_OF_SCOPE[2]],
        }
        for who, questions in asked.items():
            for q in questions:
                r = client.post("/v1/collections/support/ask", headers=_auth(keys[who]), json={"question": q})
                assert r.status_code == 200, r.text
        log = QuestionLog(KnowledgeBase(base / "kbs" / "support"))
        wait_for(lambda: len(log) == 4, 60, "the four questions in the log")  # logged after each reply
        yield {"client": client, "keys": keys, "ids": ids, "base": base}


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def get(server, who: str, **params):
    return server["client"].get("/v1/collections/support/insights", headers=_auth(server["keys"][who]), params=params)


def test_only_admin_keys_may_read_insights(server):
    c = server["client"]
    assert c.get("/v1/collections/support/insights").status_code == 401
    refused = get(server, "reader")
    assert refused.status_code == 403 and "needs admin" in refused.json()["detail"]
    assert c.post("/v1/collections/support/insights/replay", headers=_auth(server["keys"]["reader"])).status_code == 403


def test_the_insights_routes_declare_their_replies(server):
    paths = server["client"].get("/openapi.json").json()["paths"]
    for path, method, model in (
        ("/v1/collections/{collection}/insights", "get", "InsightsResponse"),
        ("/v1/collections/{collection}/insights/replay", "post", "ReplayResponse"),
    ):
        schema = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}


def test_the_all_seeing_admin_sees_every_question_and_document(server):
    r = get(server, "admin", since="1d")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["asked"] == 4 and report["abstained"] >= 3
    gap_questions = {q for t in report["topics"] for q in t["questions"]}
    assert set(OUT_OF_SCOPE) <= gap_questions
    for t in report["topics"]:
        assert t["trend"] == "new" and t["previous"] == 0 and t["examples"] and t["passages"]
        assert t["action"].startswith("document ") or t["action"] == "no document covers this: add one"
    cited = {d["source"] for d in report["health"]["most_cited"]}
    internal = {d.source for d in KnowledgeBase(server["base"] / "kbs" / "support").documents()} - set(PUBLIC)
    assert internal & (cited | set(report["health"]["never_cited"]))  # internal documents are in its view


def test_a_scoped_admin_sees_only_its_own_questions_and_public_documents(server):
    r = get(server, "scoped", since="1d", top=50)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["asked"] == 1
    assert [q for t in report["topics"] for q in t["questions"]] == [OUT_OF_SCOPE[1]]
    seen = {p["doc_source"] for t in report["topics"] for p in t["passages"]}
    h = report["health"]
    seen |= {d["source"] for key in ("most_cited", "least_cited", "most_thumbs_down") for d in h[key]}
    seen |= set(h["never_cited"]) | {s["doc_source"] for s in h["stale"]}
    assert seen and seen <= set(PUBLIC)
    assert set(h["never_cited"]) | {d["source"] for d in h["most_cited"]} == set(PUBLIC)
    again = server["client"].post(
        "/v1/collections/support/insights/replay", headers=_auth(server["keys"]["scoped"]), params={"since": "1d"}
    )
    assert again.status_code == 200, again.text
    assert (again.json()["asked"], again.json()["answered"]) == (1, 0)  # nothing changed: still not answered


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"since": "forever"}, "since: 'forever': give a span like 7d"),
        ({"since": "400d"}, "a period is at most 366 days"),
        ({"since": "2d", "until": "3d"}, "until: the period must end after it starts"),
        ({"since": "1d", "until": "soon"}, "until: 'soon'"),
        ({"top": 0}, "top"),
        ({"top": 51}, "top"),
        ({"since": "7" * 60}, "since"),
    ],
)
def test_bad_periods_are_422s_naming_the_parameter(server, params, named):
    r = get(server, "admin", **params)
    assert r.status_code == 422 and named in str(r.json()["detail"]), r.text
