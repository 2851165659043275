"""The HTTP service chatbots call: search, cited answers (JSON or streamed), documents, sync jobs, feedback.

Every route but /v1/health and the API docs needs a key (Authorization: Bearer hkb_..., or
X-API-Key), scoped to the collection the path names and to a role. A key scoped to some
visibility labels (say public) never sees, is never cited from and is never answered from a
document with another label: the filter is applied inside the search, not to its results.
The service calls what the `kb` command line calls (ingest, make_retriever, answer) and
imports nothing from the app or the CLI.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import AsyncIterator

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from api import documents as documents_api
from api import openai_compat, openapi_links
from api.config import CollectionConfig, ServerConfig, scrub_paths
from api.feedback import FeedbackLearner, Lesson
from api.jobs import JobRunning, SyncJobs
from api.keys import ApiKey, KeyStore
from api.limits import Gate, GateLimits
from api.metrics import Metrics
from api.payloads import (answer_payload, diagnostics_payload, document_payload, history_payload, history_turns,
                          hit_payload, request_filter, stream_answer)
from api.schemas import AnswerResponse, AskRequest, DocumentOut, FeedbackRequest, SearchRequest, SearchResponse, SyncRequest
from ingest import upload_dir
from kb import DocumentFilter, EmptyKBError, KBError, KBLockedError, KnowledgeBase, embedder_for
from retriever import DEFAULT_CANDIDATES, AnswerConfig, HopfieldConfig, Retriever, answer, make_retriever, parse_history

log = logging.getLogger("hopfield_kb.api")
KEY_CACHE_SECONDS = 5.0  # a revoked key stops working within this many seconds


class Collections:
    """The collections a server holds: KB objects and retrievers, created once and shared by requests."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._kbs: dict[str, KnowledgeBase] = {}
        self._retrievers: dict[tuple, Retriever] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CollectionConfig:
        found = self.config.collections.get(name)
        if found is None:
            raise HTTPException(404, f"no collection {name!r}")
        return found

    def kb(self, name: str, create: bool = False) -> KnowledgeBase:
        with self._lock:
            if name not in self._kbs:
                path = self.get(name).kb_dir
                if not (path / "kb.sqlite").exists() and not create:
                    raise HTTPException(409, f"collection {name!r} is empty: upload documents or start a sync first")
                # A sync by another process must not make questions wait for the new snapshot's load.
                self._kbs[name] = KnowledgeBase(path, create=create, background_refresh=True)
            return self._kbs[name]

    def refresh(self, name: str) -> None:
        """After this server committed to a collection (upload, sync job): serve the new version now."""
        with self._lock:
            kb = self._kbs.get(name)
        if kb is not None and (kb.dir / "kb.sqlite").exists():
            kb.refresh()

    def retriever(self, name: str, kind: str, top_k: int, candidates: int = DEFAULT_CANDIDATES,
                  beta: float = HopfieldConfig().beta) -> Retriever:
        key = (name, kind, top_k, candidates, beta)
        with self._lock:
            cached = self._retrievers.get(key)
        if cached is not None:
            return cached
        # No embedder given: the retriever embeds with the collection's own model and follows a `kb reembed`.
        retriever = make_retriever(kind, self.kb(name), top_k=top_k, candidates=max(candidates, top_k),
                                   hopfield=HopfieldConfig(beta=beta))
        with self._lock:
            return self._retrievers.setdefault(key, retriever)


def create_app(config: ServerConfig) -> FastAPI:
    """The FastAPI application for config (run it with uvicorn; `kb serve` does)."""
    keys = KeyStore(config.keys_path)
    collections = Collections(config)
    metrics = Metrics(collections)
    jobs = SyncJobs(embedder_for, on_done=metrics.sync_done, on_committed=collections.refresh)
    key_cache: dict[str, tuple[float, ApiKey | None]] = {}
    learner = FeedbackLearner(collections.kb)
    uploads = documents_api.UploadGate(documents_api.UploadLimits(config.upload_slots, config.upload_slots_per_key))
    ready = threading.Event()
    def warm_up() -> None:
        try:
            for name in config.collections:
                embedder_for(collections.get(name).kb_dir)  # each collection's model (the default for an empty one)
            for name in config.collections:
                try:
                    collections.retriever(name, "hopfield", 5).search("warm up")
                except (HTTPException, KBError):
                    pass  # an empty collection is ready as soon as it gets documents
        finally:
            ready.set()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Warm in the background: the server answers /v1/health (not ready) while the models load.
        threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
        yield

    app = FastAPI(title="hopfield-kb", version="1", description=__doc__, lifespan=lifespan,
                  openapi_tags=[{"name": "answers"}, {"name": "documents"}, {"name": "admin"}])

    def key_for(token: str | None) -> ApiKey | None:
        """The active key a token proves, or None; answers are cached for KEY_CACHE_SECONDS."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = time.monotonic()
        hit = key_cache.get(digest)
        if hit is None or hit[0] < now:
            hit = (now + KEY_CACHE_SECONDS, keys.verify(token))
            key_cache[digest] = hit
            if len(key_cache) > 10_000:
                key_cache.clear()
        return hit[1]

    def authenticate(request: Request) -> ApiKey:
        """The key the front gate (api.limits.Gate) checked before the body was read."""
        key = getattr(request.state, "api_key", None)
        if key is None:
            raise HTTPException(401, "an API key is needed: send Authorization: Bearer <key> (kb keys create)",
                                headers={"WWW-Authenticate": "Bearer"})
        return key

    openai_compat.register(app, collections, authenticate)
    # Key, rate, concurrency and body size are checked first; metrics (added after, so outside it) counts its refusals.
    app.add_middleware(Gate, authenticate=key_for, limits=GateLimits(
        json_bytes=config.max_request_kb * 1024, upload_bytes=config.max_upload_mb * 2**20 + 64 * 1024,
        rate=config.rate_limit, feedback=config.feedback_limit, concurrency=config.concurrency_per_key))
    app.middleware("http")(metrics.middleware)

    def scoped(role: str):
        def check(collection: str, key: ApiKey = Depends(authenticate)) -> ApiKey:
            if not key.can_use(collection):
                raise HTTPException(403, f"this key is not allowed to use collection {collection!r}")
            if not key.has_role(role):
                raise HTTPException(403, f"this key's role ({key.role}) cannot do this; it needs {role}")
            collections.get(collection)
            return key
        return check

    reader, writer = Depends(scoped("read")), Depends(scoped("write"))

    def _oversees(key: ApiKey) -> bool:
        """An admin that sees every label sees every sync job of its collections."""
        return key.has_role("admin") and key.sees_everything

    @app.exception_handler(KBError)
    def _kb_error(request: Request, exc: KBError) -> JSONResponse:
        status = 409 if isinstance(exc, (EmptyKBError, KBLockedError)) else 400
        return JSONResponse({"detail": scrub_paths(str(exc), config)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()][:10]
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server log has the details"},
                            status_code=500)

    @app.get("/v1/health", tags=["admin"])
    def health() -> dict:
        """Liveness, without a key: says only that the process answers."""
        return {"status": "ok"}

    @app.get("/v1/ready", tags=["admin"])
    def readiness(key: ApiKey = Depends(authenticate)) -> JSONResponse:
        """503 until the model is loaded and each collection's indexes are built."""
        state = "ready" if ready.is_set() else "loading"
        return JSONResponse({"status": state}, status_code=200 if ready.is_set() else 503)

    @app.get("/v1/metrics", tags=["admin"], response_class=PlainTextResponse)
    def prometheus(key: ApiKey = Depends(authenticate)) -> PlainTextResponse:
        """Prometheus text format: requests, latencies, KB size, last sync. Needs an admin key; one scoped to some
        collections or labels sees only their figures."""
        if not key.has_role("admin"):
            raise HTTPException(403, "metrics need an admin key")
        body, content_type = metrics.render(key)
        return PlainTextResponse(body, media_type=content_type)

    @app.get("/v1/collections", tags=["documents"])
    def list_collections(key: ApiKey = Depends(authenticate)) -> list[dict]:
        out = []
        for name in config.collections:
            if key.can_use(name):
                try:
                    docs = collections.kb(name).documents(DocumentFilter(visibility=key.visible()))
                except HTTPException:
                    docs = []
                out.append({"name": name, "documents": len(docs), "chunks": sum(d.n_chunks for d in docs)})
        return out

    @app.post("/v1/collections/{collection}/search", tags=["answers"], response_model=SearchResponse)
    def search(collection: str, body: SearchRequest, key: ApiKey = reader) -> dict:
        """Passages for a query, best first, each with what a citation needs."""
        retriever = collections.retriever(collection, body.retriever, body.k, body.candidates, body.beta)
        result = retriever.search(body.query, body.k, where=request_filter(key, body.filters),
                                  history=parse_history(history_turns(body.history)))
        return {"query": result.query, "retriever": result.retriever, "snapshot": result.snapshot,
                "hits": [hit_payload(h, not key.sees_everything) for h in result.hits],
                "diagnostics": diagnostics_payload(result, key),
                "history_used": history_payload(result)}

    @app.post("/v1/collections/{collection}/ask", tags=["answers"], response_model=AnswerResponse,
              responses={200: {"content": {"text/event-stream": {}}}})
    def ask(collection: str, body: AskRequest, key: ApiKey = reader, accept: str | None = Header(None)):
        """A cited answer, or an abstention with the closest passages. Streams as server-sent events when
        stream is true or the client accepts text/event-stream."""
        retriever = collections.retriever(collection, body.retriever, body.k)
        ans = answer(body.question, retriever, AnswerConfig(), where=request_filter(key, body.filters),
                     history=history_turns(body.history))
        if body.stream or "text/event-stream" in (accept or ""):
            return StreamingResponse(stream_answer(ans, not key.sees_everything), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return answer_payload(ans, not key.sees_everything)

    def _visible_document(collection: str, doc_key: str, key: ApiKey):
        doc = collections.kb(collection).document(doc_key)
        if doc is None or doc.source != doc_key or (key.visible() is not None and doc.visibility not in key.visible()):
            raise HTTPException(404, f"no document {doc_key!r} in {collection!r}")
        return doc

    @app.get("/v1/collections/{collection}/documents", tags=["documents"], response_model=list[DocumentOut])
    def documents(collection: str, key: ApiKey = reader, key_prefix: str | None = None) -> list[dict]:
        where = DocumentFilter(visibility=key.visible(), key_prefix=key_prefix or None)
        return [document_payload(d) for d in collections.kb(collection).documents(where)]

    @app.get("/v1/collections/{collection}/documents/{doc_key:path}/history", tags=["documents"])
    def history(collection: str, doc_key: str, key: ApiKey = reader) -> list[dict]:
        _visible_document(collection, doc_key, key)
        return [asdict(e) for e in collections.kb(collection).history(doc_key) if e.source == doc_key]

    @app.get("/v1/collections/{collection}/documents/{doc_key:path}", tags=["documents"])
    def document(collection: str, doc_key: str, key: ApiKey = reader, text: bool = False) -> dict:
        doc = _visible_document(collection, doc_key, key)
        out = document_payload(doc)
        if text:
            out["text"] = collections.kb(collection).document_text(doc.id)
        return out

    @app.post("/v1/collections/{collection}/documents", tags=["documents"], status_code=201)
    def upload(collection: str, key: ApiKey = writer, file: UploadFile = File(...),
               doc_key: str | None = Form(None, alias="document_key"),
               visibility: str = Form("internal"), tags: str = Form("")) -> dict:
        """Add a document, or a new version of the one with the same key (by default the file's name):
        the same document uploaded or synced from a folder is one document with versions. Everything is
        checked before anything is written; a name held by a document this key may not see is refused."""
        data = file.file.read(config.max_upload_mb * 2**20 + 1)
        return documents_api.upload(collections, collection, key, uploads, config.max_upload_mb, data,
                                    doc_key or file.filename or "", visibility, tags)

    @app.delete("/v1/collections/{collection}/documents/{doc_key:path}", tags=["documents"])
    def delete(collection: str, doc_key: str, key: ApiKey = writer) -> dict:
        doc = _visible_document(collection, doc_key, key)
        kb = collections.kb(collection)
        with kb.writer(model=kb.manifest.model, dim=kb.manifest.dim, wait=60.0) as w:
            w.remove_document(doc.source)
        uploaded = upload_dir(kb.dir) / doc.source
        if doc.path and Path(doc.path) == uploaded.resolve() and uploaded.is_file():
            uploaded.unlink()
        return {"status": "removed", "key": doc.source, "version": doc.version}

    @app.post("/v1/collections/{collection}/sync", tags=["documents"], status_code=202)
    def start_sync(collection: str, key: ApiKey = writer, body: SyncRequest = SyncRequest()) -> dict:
        """Sync the collection's configured source folders (all, or the ones named) in the background.
        Only folders in the server config can be synced; a request never names a path of its own."""
        conf = collections.get(collection)
        sources = conf.sources
        if body.sources is not None:
            by_path = {str(s.path): s for s in conf.sources}
            unknown = [p for p in body.sources if str(Path(p)) not in by_path and not any(
                str(s.path).endswith("/" + p.strip("/")) for s in conf.sources)]
            if unknown:
                raise HTTPException(400, f"not a configured source folder of {collection!r}: {unknown[0]!r}")
            sources = tuple(s for s in conf.sources if str(s.path) in body.sources
                            or any(str(s.path).endswith("/" + p.strip("/")) for p in body.sources))
        if any(s.visibility not in (key.visible() or (s.visibility,)) for s in sources):
            raise HTTPException(403, "this key cannot sync folders of a visibility it cannot see")
        try:
            job = jobs.start(conf, sources, body.dry_run, started_by=key.id)
        except JobRunning as exc:
            # The running job's id goes only to the key that started it (or an admin): it names folders and files.
            mine = exc.job.started_by == key.id or _oversees(key)
            raise HTTPException(409, f"a sync of {collection!r} is already running"
                                     + (f" (job {exc.job.id})" if mine else "") + "; wait for it") from None
        except KBError as exc:
            raise HTTPException(400, str(exc)) from None
        return job.as_dict()

    @app.get("/v1/collections/{collection}/sync/{job_id}", tags=["documents"])
    def sync_status(collection: str, job_id: str, key: ApiKey = writer) -> dict:
        """A job's progress and result: only for the key that started it, and for admins."""
        job = jobs.get(job_id)
        if job is None or job.collection != collection or not (job.started_by == key.id or _oversees(key)):
            raise HTTPException(404, f"no sync job {job_id!r} in {collection!r}")
        return job.as_dict()

    @app.post("/v1/collections/{collection}/feedback", tags=["answers"], status_code=201)
    def feedback(collection: str, body: FeedbackRequest, key: ApiKey = reader) -> dict:
        """A thumbs up or down on an answer's cited passage (chunk_id), recorded with the key that gave it."""
        kb = collections.kb(collection)
        source = None
        if body.chunk_id is not None:
            record = kb.chunks([body.chunk_id])[0]
            if record is None or (key.visible() is not None and record.doc_visibility not in key.visible()):
                raise HTTPException(404, f"no passage {body.chunk_id} in {collection!r}")
            source = record.doc_source
        row = kb.add_feedback(body.question, body.chunk_id, source, body.helpful, by=f"key:{key.id}")
        if body.chunk_id is not None:  # the question memory learns it within FLUSH_SECONDS, batched (api/feedback.py)
            learner.add(Lesson(collection, body.question, body.chunk_id, body.helpful, f"key:{key.id}"))
        return {"id": row}

    openapi_links.add_links(app)
    app.state.collections = collections
    app.state.jobs = jobs
    return app
