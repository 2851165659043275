"""The knowledge base as an MCP server (the official `mcp` SDK's low-level Server): tools and resources for
desktop assistants and IDEs.

Tools: search, ask (with the conversation so far, if given), get_document, list_documents. Resources: every
document the caller may see, as kb://{collection}/{document key} (its text). Every tool and resource goes through
api.queries (what the HTTP routes call), the request models of api.schemas (the same limits) and the Caller of
api/auth.py (the same collection, role and visibility checks): nothing here searches, answers or scopes itself.

Two transports, one server (build_server):
    HTTP   `kb serve` mounts McpEndpoint at /mcp (streamable HTTP, stateless, JSON replies). It sits behind the
           API's front gate (api.limits.Gate): the same key (Authorization: Bearer), rate, concurrency and body
           limits, and each request acts with the scope of the key it came with (request_caller).
    stdio  `kb mcp` (api.commands.mcp): one local client. It acts as the KB's owner (LOCAL_OWNER: every collection,
           every label), or with the scope of a key from the store when given one (HOPFIELD_KB_KEY or --key).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable
from urllib.parse import quote, unquote

import anyio
import mcp_types as types
from fastapi import HTTPException
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from api import queries
from api.auth import Caller, KeyCache
from api.config import scrub_paths
from api.errors import Conflict, EmptyCollection
from api.keys import ApiKey
from api.openai_compat import sources_text
from api.schemas import AnswerResponse, AskRequest, SearchRequest, SearchResponse
from api.services import Services
from kb import KBError
from retriever import answer_dict

log = logging.getLogger("hopfield_kb.mcp")

URI_SCHEME = "kb://"
RESOURCES_PAGE = 500  # resources per resources/list page
MAX_URI = 1100  # characters of a resource URI read: kb://, a collection name and a document key
# `kb mcp` without a key: the local owner of the KB, as `kb ask` is (read only: MCP has no tool that writes).
LOCAL_OWNER = ApiKey("local", "kb mcp (local owner)", "read", ("*",), ("*",), created_at=0.0)

CallerOf = Callable[[ServerRequestContext[Any, Any]], Caller]
COLLECTION = Field(None, max_length=64, description="the collection; default: the only one this key may use")


class SearchTool(SearchRequest):
    """search: SearchRequest (/v1/collections/{collection}/search) plus its collection."""

    collection: str | None = COLLECTION


class AskTool(AskRequest):
    """ask: AskRequest plus its collection; a tool's reply is one message, so it never streams."""

    collection: str | None = COLLECTION
    stream: SkipJsonSchema[bool] = Field(False, exclude=True)


class DocumentTool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: str = Field(..., min_length=1, max_length=1000, description="the document's key (list_documents)")
    max_chars: int = Field(20_000, ge=0, le=1_000_000, description="characters of its text returned")
    collection: str | None = COLLECTION


class ListTool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key_prefix: str | None = Field(None, max_length=500, description="keys starting with this, e.g. 'policies/'")
    limit: int = Field(100, ge=1, le=1000, description="documents returned")
    offset: int = Field(0, ge=0, le=10**9, description="documents skipped first")
    collection: str | None = COLLECTION


class _Tool(BaseModel):
    """A tool's name, what it says to the model, its input model and its output schema (None: none declared)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    name: str
    description: str
    params: type[BaseModel]
    output: dict | None = None


TOOLS = {
    t.name: t
    for t in (
        _Tool(
            name="search",
            description="Passages of the knowledge base for a query, best first, each with its document, version, "
            "page or section and character span. history: the conversation so far, to read a follow-up.",
            params=SearchTool,
            output=SearchResponse.model_json_schema(),
        ),
        _Tool(
            name="ask",
            description="A cited answer from the knowledge base: quoted sentences with [n] markers and the numbered "
            "sources, or 'Not found in the knowledge base.' with the closest passages. history: the conversation "
            "so far (user and assistant messages, oldest first), to read a follow-up question.",
            params=AskTool,
            output=AnswerResponse.model_json_schema(),
        ),
        _Tool(
            name="get_document",
            description="One document: its key, name, title, version, tags and text (the first max_chars characters).",
            params=DocumentTool,
        ),
        _Tool(
            name="list_documents",
            description="The documents of the knowledge base (key, name, title, kind, version, tags), by key.",
            params=ListTool,
        ),
    )
}


class Refused(Exception):
    """A request refused with a message for the caller (a scope, a missing document, an invalid argument)."""


def request_caller(services: Services) -> CallerOf:
    """Over HTTP: the caller of each MCP request is the key the API's front gate proved for it."""

    def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
        key = getattr(getattr(ctx.request, "state", None), "api_key", None)
        if not isinstance(key, ApiKey):
            raise Refused("an API key is needed: send Authorization: Bearer <key> (kb keys create)")
        return Caller(key, services)

    return caller_of


def local_caller(services: Services, token: str | None = None) -> CallerOf:
    """Over stdio: the local owner (no token), or the key token proves, checked again at each request (a revoked or
    expired key stops working within KEY_CACHE_SECONDS, as over HTTP)."""
    if token is None:
        owner = Caller(LOCAL_OWNER, services)
        return lambda ctx: owner
    keys = KeyCache(services.keys)

    def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
        key = keys(token)
        if key is None:
            raise Refused("invalid, expired or revoked API key")
        return Caller(key, services)

    return caller_of


def acting(caller: Caller, collection: str | None) -> Caller:
    """caller reading collection (or the only collection its key may use): Caller.use's checks."""
    if collection is None:
        usable = [n for n in caller.services.config.collections if caller.key.can_use(n)]
        if len(usable) != 1:
            raise Refused(f"name the collection: this key may use {', '.join(usable) or 'none'}")
        collection = usable[0]
    return caller.use(collection, "read")


def refusal(exc: Exception, caller: Caller | None) -> str | None:
    """The message a refusal gives the caller (what the HTTP API's detail says); None for an unexpected error."""
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    if isinstance(exc, Conflict):
        return exc.detail_for(caller.key if caller else None)
    if isinstance(exc, KBError):
        return str(exc)
    if isinstance(exc, ValidationError):
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()][:10]
        return "; ".join(problems)
    return None


def _search(caller: Caller, args: SearchTool) -> tuple[str, dict]:
    out = queries.search(acting(caller, args.collection), args)
    return json.dumps(out, ensure_ascii=False), out


def _ask(caller: Caller, args: AskTool) -> tuple[str, dict]:
    caller = acting(caller, args.collection)
    ans = queries.ask(caller, args)
    # Logged beside the reply, as the HTTP route does after it: a sync's write lock must not delay an answer.
    threading.Thread(target=queries.log, args=(caller, ans), name="log-answer", daemon=True).start()
    return ans.text + sources_text(ans.citations), answer_dict(ans, caller.scoped)


def _get_document(caller: Caller, args: DocumentTool) -> tuple[str, dict]:
    out = queries.document(acting(caller, args.collection), args.document, text=True)
    out["truncated"] = len(out["text"]) > args.max_chars
    out["text"] = out["text"][: args.max_chars]
    return json.dumps(out, ensure_ascii=False), out


def _list_documents(caller: Caller, args: ListTool) -> tuple[str, dict]:
    docs = queries.documents(acting(caller, args.collection), args.key_prefix)
    out = {"total": len(docs), "offset": args.offset, "documents": docs[args.offset : args.offset + args.limit]}
    return json.dumps(out, ensure_ascii=False), out


RUN: dict[str, Callable[[Caller, Any], tuple[str, dict]]] = {
    "search": _search,
    "ask": _ask,
    "get_document": _get_document,
    "list_documents": _list_documents,
}


def document_uri(collection: str, doc_key: str) -> str:
    """The resource URI of a document: kb://{collection}/{key}, the key percent-encoded but for its slashes."""
    return f"{URI_SCHEME}{collection}/{quote(doc_key, safe='/')}"


def parse_uri(uri: str) -> tuple[str, str]:
    """(collection, document key) of a kb:// URI; Refused for anything else."""
    collection, _, doc_key = uri.removeprefix(URI_SCHEME).partition("/")
    if not uri.startswith(URI_SCHEME) or len(uri) > MAX_URI or not collection or not doc_key:
        raise Refused(f"not a document of this server: {uri[:200]!r}; give {URI_SCHEME}{{collection}}/{{document key}}")
    return collection, unquote(doc_key)


def build_server(services: Services, caller_of: CallerOf) -> Server[Any]:
    """The MCP server over services; caller_of(ctx) says who asks (request_caller for HTTP, local_caller for stdio)."""
    config = services.config

    async def call(ctx: ServerRequestContext[Any, Any], work: Callable[[Caller], Any]) -> Any:
        """work(caller) in a worker thread (searches block); a refusal becomes Refused with the API's message."""
        caller = None
        try:
            caller = caller_of(ctx)
            return await anyio.to_thread.run_sync(work, caller)
        except Exception as exc:
            message = refusal(exc, caller)
            if message is None:
                log.exception("unexpected error in an MCP %s request", ctx.method)
                message = f"internal error ({type(exc).__name__}); the server log has the details"
            raise Refused(scrub_paths(message, config)) from None

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None):
        tools = [
            types.Tool(
                name=t.name,
                description=t.description,
                input_schema=t.params.model_json_schema(),
                output_schema=t.output,
                annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
            )
            for t in TOOLS.values()
        ]
        return types.ListToolsResult(tools=tools, cache_scope="private")

    def input_schema(name: str) -> dict | None:
        tool = TOOLS.get(name)
        return tool.params.model_json_schema() if tool else None

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams):
        tool = TOOLS.get(params.name)
        try:
            if tool is None:
                raise Refused(f"no tool {params.name!r}: use one of {', '.join(TOOLS)}")
            args = tool.params.model_validate(params.arguments or {})
            text, structured = await call(ctx, lambda caller: RUN[tool.name](caller, args))
        except (Refused, ValidationError) as exc:
            message = str(exc) if isinstance(exc, Refused) else refusal(exc, None)
            return types.CallToolResult(content=[types.TextContent(type="text", text=message or "")], is_error=True)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)

    def resources(caller: Caller) -> list[types.Resource]:
        out = []
        for name in config.collections:
            if not (caller.key.can_use(name) and caller.key.has_role("read")):
                continue
            try:
                docs = queries.documents(caller.use(name, "read"))
            except EmptyCollection:
                continue
            out += [
                types.Resource(
                    uri=document_uri(name, d["key"]),
                    name=d["key"],
                    title=d["title"] or d["name"],
                    description=f"{d['kind']} document, version {d['version']}, in {name}",
                    mime_type="text/plain",
                )
                for d in docs
            ]
        return out

    async def list_resources(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None):
        start = int(params.cursor) if params and params.cursor and params.cursor.isdigit() else 0
        try:
            found = await call(ctx, resources)
        except Refused as exc:
            raise MCPError(code=types.INVALID_REQUEST, message=str(exc)) from None
        page = found[start : start + RESOURCES_PAGE]
        more = str(start + RESOURCES_PAGE) if start + RESOURCES_PAGE < len(found) else None
        # Private: what the list holds depends on the key that asked.
        return types.ListResourcesResult(resources=page, next_cursor=more, cache_scope="private")

    async def list_templates(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None):
        template = types.ResourceTemplate(
            uri_template=URI_SCHEME + "{collection}/{+document}",
            name="document",
            title="A document of the knowledge base",
            description="Its text; document is its key (see list_documents).",
            mime_type="text/plain",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template], cache_scope="private")

    async def read_resource(ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams):
        try:
            collection, doc_key = parse_uri(params.uri)
            doc = await call(ctx, lambda caller: queries.document(caller.use(collection, "read"), doc_key, text=True))
        except Refused as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=str(exc), data={"uri": params.uri[:MAX_URI]}) from None
        contents = [types.TextResourceContents(uri=params.uri, text=doc["text"], mime_type="text/plain")]
        return types.ReadResourceResult(contents=contents, cache_scope="private")

    return Server(
        "hopfield-kb",
        version="1",
        title="hopfield-kb",
        instructions="A support team's knowledge base. Use ask for a cited answer, search for passages, "
        "list_documents and get_document to read documents; cite the sources the replies name.",
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


class McpEndpoint:
    """The ASGI app `kb serve` mounts at /mcp: streamable HTTP, stateless (each request carries its key and is
    served alone, so no session outlives its request or crosses keys), JSON replies. run() must wrap serving (the
    API's lifespan enters it)."""

    def __init__(self, services: Services) -> None:
        self.manager = StreamableHTTPSessionManager(
            app=build_server(services, request_caller(services)),
            stateless=True,
            json_response=True,
            # A browser cannot attach the Bearer key, so DNS rebinding gains it nothing; the Host check would refuse a
            # server reached by its real name.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=services.config.max_request_kb * 1024,
        )

    def run(self):
        """The async context in which /mcp serves (its task group)."""
        return self.manager.run()

    async def __call__(self, scope, receive, send) -> None:
        await self.manager.handle_request(scope, receive, send)


def serve_stdio(services: Services, token: str | None = None) -> None:
    """Serve one client on stdin/stdout until it closes them (`kb mcp`): as the local owner, or with the scope of the
    API key token (see local_caller)."""
    server = build_server(services, local_caller(services, token))

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
