"""The MCP server with the official SDK's own client, over both transports: streamable HTTP at /mcp of a real
`kb serve` (tests/conftest.py's api_server) and stdio (`kb mcp` in a child process). A key scoped to public
documents sees only those through every tool and resource, over both; the local owner sees everything."""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import AsyncIterator

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from api.mcp_server import TOOLS, AskTool, SearchTool, document_uri, parse_uri
from api.schemas import AskRequest, SearchRequest
from tests.api_server import PUBLIC, ROOT, wait_for

INTERNAL_QUESTION = "How do I recover an account after losing the 2FA device?"
# `kb mcp` through the installed entry point; a checkout whose install predates the command (entry points are read
# from the installed metadata: `pip install -e .` refreshes them) runs the same click command directly.
KB_MCP = (
    ["-m", "ui.cli", "mcp"]
    if "mcp" in {e.name for e in entry_points(group="hopfield_kb.commands")}
    else ["-c", "from api.commands import mcp; mcp(prog_name='kb mcp')"]
)


def test_kb_mcp_is_a_kb_command_through_the_entry_point():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["hopfield_kb.commands"]["mcp"] == "api.commands:mcp"


def test_tool_arguments_carry_the_limits_of_the_http_routes():
    for tool, route in ((SearchTool, SearchRequest), (AskTool, AskRequest)):
        for name, field in route.model_fields.items():
            if name != "stream":
                assert tool.model_fields[name].metadata == field.metadata, (tool.__name__, name)
    assert "stream" not in AskTool.model_json_schema()["properties"]
    assert set(TOOLS) == {"search", "ask", "get_document", "list_documents"}
    for key in ("policies/refunds.md", "a b/ü?#.md"):
        assert parse_uri(document_uri("support", key)) == ("support", key)


@asynccontextmanager
async def over_http(url: str, key: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=180) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            yield client


def over_stdio(served: dict, key: str | None = None) -> Client:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    env.pop("HOPFIELD_KB_KEY", None)
    if key is not None:
        env["HOPFIELD_KB_KEY"] = key
    config = str(served["base"] / "server.toml")
    return Client(StdioServerParameters(command=sys.executable, args=[*KB_MCP, "--config", config], env=env, cwd=ROOT))


async def documents_of(client: Client, **args) -> set[str]:
    result = await client.call_tool("list_documents", {"limit": 1000, **args})
    assert not result.is_error, result.content
    return {d["key"] for d in result.structured_content["documents"]}


async def sees_only_public_documents(client: Client) -> None:
    """Every tool and resource of a key scoped to support's public documents keeps to them."""
    assert await documents_of(client) == set(PUBLIC)  # support is the key's only collection: no need to name it
    search = await client.call_tool("search", {"query": INTERNAL_QUESTION, "k": 10})
    hits = search.structured_content["hits"]
    assert hits and {h["document"] for h in hits} <= set(PUBLIC) and all(h["score"] is None for h in hits)
    ask = await client.call_tool("ask", {"question": INTERNAL_QUESTION})
    cited = ask.structured_content["citations"] + ask.structured_content["closest"]
    assert {c["document"] for c in cited} <= set(PUBLIC) and ask.structured_content["evidence"] is None
    hidden = await client.call_tool("get_document", {"document": "account-recovery.md"})
    assert hidden.is_error and hidden.content[0].text == "no document 'account-recovery.md' in 'support'"
    other = await client.call_tool("list_documents", {"collection": "it"})
    assert other.is_error and "not allowed to use collection 'it'" in other.content[0].text
    resources = (await client.list_resources()).resources
    assert {r.uri for r in resources} == {document_uri("support", key) for key in PUBLIC}
    with pytest.raises(MCPError, match="no document 'account-recovery.md'"):
        await client.read_resource(document_uri("support", "account-recovery.md"))
    readable = await client.read_resource(document_uri("support", "billing-faq.html"))
    assert "Billing" in readable.contents[0].text


def test_over_http_mcp_needs_a_key_and_keeps_a_scoped_key_to_its_documents(api_server):
    url, keys = api_server["url"], api_server["keys"]
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert httpx.post(f"{url}/mcp", json=hello, timeout=30).status_code == 401
    assert httpx.post(f"{url}/mcp", json=hello, headers={"Authorization": "Bearer hkb_x"}, timeout=30).status_code == 401
    big = httpx.post(
        f"{url}/mcp",
        content=json.dumps({**hello, "params": {"pad": "x" * 40_000}}),
        headers={"Authorization": f"Bearer {keys['public']}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert big.status_code == 413  # the server config's max_request_kb (16), as for every route

    async def scenario() -> None:
        async with over_http(url, keys["public"]) as client:
            assert {t.name for t in (await client.list_tools()).tools} == set(TOOLS)
            await sees_only_public_documents(client)
            bad = await client.call_tool("search", {"query": "refunds", "k": 0})
            assert bad.is_error and bad.content[0].text.startswith("k: Input should be greater than or equal to 1")
        async with over_http(url, keys["admin"]) as client:  # the same questions reach internal documents
            assert "account-recovery.md" in await documents_of(client, collection="support")
            got = await client.call_tool("get_document", {"collection": "support", "document": "account-recovery.md"})
            assert not got.is_error and "2FA" in got.structured_content["text"]

    anyio.run(scenario)


def test_over_http_ask_reads_a_follow_up_with_its_conversation_and_is_logged_for_its_key(api_server):
    from kb import KnowledgeBase, QuestionLog

    started = time.time()

    async def scenario() -> dict:
        async with over_http(api_server["url"], api_server["keys"]["admin"]) as client:
            result = await client.call_tool(
                "ask",
                {
                    "collection": "support",
                    "question": "and for annual plans?",
                    "history": [
                        {"role": "user", "content": "How long is the refund window?"},
                        {"role": "assistant", "content": "14 days [1]"},
                    ],
                },
            )
            assert not result.is_error
            return result.structured_content

    answer = anyio.run(scenario)
    assert answer["history_used"]["turns"][0]["content"] == "How long is the refund window?"
    assert answer["citations"] and "[1]" in answer["answer"]
    admin = next(k.id for k in api_server["store"].list() if k.name == "ops")
    logged = wait_for(
        lambda: [
            e
            for e in QuestionLog(KnowledgeBase(api_server["base"] / "kbs" / "support")).entries(
                since=started, asked_by=f"key:{admin}"
            )
            if e.question == "and for annual plans?"
        ],
        30,
        "the MCP answer's log entry",
    )
    assert [x.chunk_id for x in logged[0].citations] == [c["chunk_id"] for c in answer["citations"]]


def test_over_stdio_kb_mcp_acts_as_the_owner_or_with_the_scope_of_its_key(api_server):
    async def scenario() -> None:
        async with over_stdio(api_server) as client:
            unnamed = await client.call_tool("list_documents", {})
            assert unnamed.is_error and unnamed.content[0].text == "name the collection: this key may use support, it"
            everything = await documents_of(client, collection="support")
            assert set(PUBLIC) < everything and "account-recovery.md" in everything
            assert await documents_of(client, collection="it") == {"vpn.txt"}
            ask = await client.call_tool("ask", {"collection": "support", "question": INTERNAL_QUESTION})
            cited = {c["document"] for c in ask.structured_content["citations"]}
            assert "account-recovery.md" in cited and ask.structured_content["evidence"] is not None
            assert "Sources:\n[1] " in ask.content[0].text
        async with over_stdio(api_server, api_server["keys"]["public"]) as client:
            await sees_only_public_documents(client)

    anyio.run(scenario)


def test_kb_mcp_refuses_a_bad_key_before_serving(api_server, tmp_path):
    import subprocess

    env = dict(os.environ, HOPFIELD_KB_KEY="hkb_000000000000_" + "a" * 43)
    config = str(api_server["base"] / "server.toml")
    done = subprocess.run(
        [sys.executable, *KB_MCP, "--config", config], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "HOPFIELD_KB_KEY: invalid, expired or revoked API key" in done.stderr
    missing = subprocess.run(
        [sys.executable, *KB_MCP, "--kb-dir", str(tmp_path / "none")], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and "no knowledge base at" in missing.stderr and "Traceback" not in missing.stderr
