"""Property-based fuzzing of the whole OpenAPI schema (schemathesis) against a real `kb serve`.

Every operation gets generated requests, valid and invalid, with an admin key; half of them name
the real collection so they reach the code behind the routing. The property: no response is a
server error (5xx); every bad input is a 4xx with a message.
"""

from __future__ import annotations

import shutil

import pytest

from api import KeyStore
from data import SAMPLE_DOCS
from tests.api_server import running_server, sync_collection

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    docs = base / "docs"
    docs.mkdir()
    for name in ("billing-faq.html", "support-hours-and-escalation.txt", "privacy-policy.pdf"):
        shutil.copy(SAMPLE_DOCS / name, docs / name)
    (base / "server.toml").write_text(f'keys = "keys.sqlite"\nmax_upload_mb = 1\nmax_request_kb = 16\n'
                                      f'[collections.fuzz]\nkb_dir = "kb"\nsources = [{{path = "{docs}"}}]\n')
    token, _ = KeyStore(base / "keys.sqlite").create("fuzzer", "admin", ["*"], ["*"])
    with running_server(base / "server.toml", base / "server.log") as (url, client, proc):
        assert sync_collection(client, "fuzz", token)["state"] == "done"
        yield url, token, base


def test_no_generated_request_gets_a_server_error(fuzz_server):
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
    from hypothesis import HealthCheck, given, settings

    url, token, base = fuzz_server
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    calls, errors, client_errors = 0, [], 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            nonlocal calls, client_errors
            if case.path_parameters and "collection" in case.path_parameters and calls % 2 == 0:
                case.path_parameters["collection"] = "fuzz"
            response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=120)
            calls += 1
            if response.status_code >= 500:
                errors.append(f"{operation.label} -> {response.status_code}: {response.text[:300]}")
            elif response.status_code >= 400:
                client_errors += 1
                assert response.json().get("detail"), f"{operation.label}: a 4xx without a message"

        check()
    print(f"\nschemathesis: {calls} requests over {len(list(schema.get_all_operations()))} operations, "
          f"{client_errors} answered 4xx with a message, {len(errors)} server errors")
    assert calls >= 10 * EXAMPLES_PER_OPERATION
    assert not errors, errors[:5]
    assert "Traceback" not in (base / "server.log").read_text()
