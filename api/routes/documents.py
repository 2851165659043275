"""Documents: the collections, their documents (list, read, history, upload, delete) and sync jobs of their
configured source folders."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile

from api import documents as uploads
from api import queries
from api.auth import READER, WRITER, Caller, authenticate
from api.errors import EmptyCollection
from api.jobs import may_see
from api.schemas import DocumentOut, SyncRequest
from ingest import upload_dir

router = APIRouter(tags=["documents"])
# Routes with a second path parameter name collection first too (the caller dependency is scoped to it already), so
# the OpenAPI parameters, and the clients generated from them, keep the order of the path.


@router.get("/v1/collections")
def list_collections(caller: Caller = Depends(authenticate)) -> list[dict]:
    out = []
    for name in caller.services.config.collections:
        if caller.key.can_use(name):
            try:
                docs = caller.services.collections.kb(name).documents(caller.where())
            except EmptyCollection:
                docs = []
            out.append({"name": name, "documents": len(docs), "chunks": sum(d.n_chunks for d in docs)})
    return out


@router.get("/v1/collections/{collection}/documents", response_model=list[DocumentOut])
def documents(caller: Caller = READER, key_prefix: str | None = None) -> list[dict]:
    return queries.documents(caller, key_prefix)


@router.get("/v1/collections/{collection}/documents/{doc_key:path}/history")
def history(collection: str, doc_key: str, caller: Caller = READER) -> list[dict]:
    caller.document(doc_key)
    return [asdict(e) for e in caller.kb.history(doc_key) if e.source == doc_key]


@router.get("/v1/collections/{collection}/documents/{doc_key:path}")
def document(collection: str, doc_key: str, caller: Caller = READER, text: bool = False) -> dict:
    return queries.document(caller, doc_key, text)


@router.post("/v1/collections/{collection}/documents", status_code=201)
def upload(
    caller: Caller = WRITER,
    file: UploadFile = File(...),
    doc_key: str | None = Form(None, alias="document_key"),
    visibility: str = Form("internal"),
    tags: str = Form(""),
) -> dict:
    """Add a document, or a new version of the one with the same key (by default the file's name):
    the same document uploaded or synced from a folder is one document with versions. Everything is
    checked before anything is written; a name held by a document this key may not see is refused."""
    max_mb = caller.services.config.max_upload_mb
    data = file.file.read(max_mb * 2**20 + 1)
    return uploads.upload(caller, data, doc_key or file.filename or "", visibility, tags)


@router.delete("/v1/collections/{collection}/documents/{doc_key:path}")
def delete(collection: str, doc_key: str, caller: Caller = WRITER) -> dict:
    doc = caller.document(doc_key)
    kb = caller.kb
    assert kb.manifest is not None  # a KB holding the document has recorded its model
    with kb.writer(model=kb.manifest.model, dim=kb.manifest.dim, wait=60.0) as w:
        w.remove_document(doc.source)
    uploaded = upload_dir(kb.dir) / doc.source
    if doc.path and Path(doc.path) == uploaded.resolve() and uploaded.is_file():
        uploaded.unlink()
    return {"status": "removed", "key": doc.source, "version": doc.version}


@router.post("/v1/collections/{collection}/sync", status_code=202)
def start_sync(caller: Caller = WRITER, body: SyncRequest = SyncRequest()) -> dict:
    """Sync the collection's configured source folders (all, or the ones named) in the background.
    Only folders in the server config can be synced; a request never names a path of its own.
    A sync already running is a 409 (api.jobs.JobRunning)."""
    conf = caller.services.collections.get(caller.collection_name)
    sources = conf.sources
    if body.sources is not None:
        by_path = {str(s.path): s for s in conf.sources}
        unknown = [
            p
            for p in body.sources
            if str(Path(p)) not in by_path and not any(str(s.path).endswith("/" + p.strip("/")) for s in conf.sources)
        ]
        if unknown:
            raise HTTPException(400, f"not a configured source folder of {caller.collection!r}: {unknown[0]!r}")
        sources = tuple(
            s
            for s in conf.sources
            if str(s.path) in body.sources or any(str(s.path).endswith("/" + p.strip("/")) for p in body.sources)
        )
    if not all(caller.sees(s.visibility) for s in sources):
        raise HTTPException(403, "this key cannot sync folders of a visibility it cannot see")
    return caller.services.jobs.start(conf, sources, body.dry_run, started_by=caller.key.id).as_dict()


@router.get("/v1/collections/{collection}/sync/{job_id}")
def sync_status(collection: str, job_id: str, caller: Caller = WRITER) -> dict:
    """A job's progress and result: only for the key that started it, and for admins."""
    job = caller.services.jobs.get(job_id)
    if job is None or job.collection != caller.collection or not may_see(job, caller.key):
        raise HTTPException(404, f"no sync job {job_id!r} in {caller.collection!r}")
    return job.as_dict()
