"""OpenAPI links between the API's operations: what a client (or a stateful fuzzer) may call with a reply's values.

A search hit, an upload's reply, a document list and a sync job name documents and jobs that other
operations take: the links say so, so that schemathesis' stateful run chains create -> read ->
delete (tests/test_api_fuzz.py) and a client generator can follow them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

DOC = "/v1/collections/{collection}/documents/{doc_key}"
# (source path, method, status) -> [(link name, target path, target method, doc_key or job_id expression)]
LINKS = {
    ("/v1/collections/{collection}/search", "post", "200"): [
        ("HitDocument", DOC, "get", "$response.body#/hits/0/document"),
        ("HitHistory", DOC + "/history", "get", "$response.body#/hits/0/document"),
        ("DeleteHitDocument", DOC, "delete", "$response.body#/hits/0/document"),
    ],
    ("/v1/collections/{collection}/documents", "post", "201"): [
        ("UploadedDocument", DOC, "get", "$response.body#/document/key"),
        ("UploadedHistory", DOC + "/history", "get", "$response.body#/document/key"),
        ("DeleteUploaded", DOC, "delete", "$response.body#/document/key"),
    ],
    ("/v1/collections/{collection}/documents", "get", "200"): [
        ("ListedDocument", DOC, "get", "$response.body#/0/key"),
        ("DeleteListed", DOC, "delete", "$response.body#/0/key"),
    ],
    ("/v1/collections/{collection}/sync", "post", "202"): [
        ("SyncStatus", "/v1/collections/{collection}/sync/{job_id}", "get", "$response.body#/id")
    ],
}


class LinkedAPI(FastAPI):
    """A FastAPI application whose app.openapi() carries LINKS (computed once, on first use, like FastAPI's own
    schema)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        spec = super().openapi()
        paths = spec.get("paths", {})
        for (path, method, status), links in LINKS.items():
            response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
            if response is None:
                continue
            out = response.setdefault("links", {})
            for name, target, target_method, value in links:
                operation = paths.get(target, {}).get(target_method)
                if operation is None:
                    continue
                param = "job_id" if "{job_id}" in target else "doc_key"
                out[name] = {
                    "operationId": operation["operationId"],
                    "parameters": {"collection": "$request.path.collection", param: value},
                }
        return spec
