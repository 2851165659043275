"""ingest: files -> a change plan -> parsed, token-aware chunks -> embeddings -> one commit to the KB.

Public surface (kb: an open kb.KnowledgeBase, whose snapshot serves the commit at once, or its directory):
    ingest(kb, paths, config, *, embedder, on_progress, engine) -> IngestReport   add/update (and with
                                 mirror=True, remove); config.dry_run: report the plan, change nothing
    plan_changes(kb, paths, config) -> ChangePlan   what ingest would do, and why (the dry run's plan)
    ingest_texts(kb, records, config, *, embedder, on_progress)   the same for in-memory TextRecords (BEIR)
    Engine, LocalEngine, ParseItem   where files are parsed and chunks embedded (ingest/engine.py)
    RayEngine(RayConfig(address)), RayIngestError   the Engine on a Ray cluster; this process still commits
    connect_ray(address)         connect this process to a Ray cluster, with a clear error when it is unreachable
    IngestConfig, IngestReport, FileFailure, TextRecord
    discover, document_key       the files under paths, and each one's key in the KB (ingest/sources.py)
    Budget                       the time and memory one file's parsing may use
    report_dict, report_line     a report as JSON values (the CLI, the app and the API's sync jobs) and as one line
    ChunkConfig, chunk           token-aware chunking (cl100k_base tokens)
    load, parse_file, LoadError, ParsedText, Block, SUPPORTED   file loaders; KINDS: every kind a sync stores
    crawl, CrawlConfig, Crawl    a help-centre site (sitemap.xml or start page) for `kb sync URL` (ingest/crawl.py)
    OcrConfig                    how PDF pages without a text layer are read (Tesseract; ingest/ocr.py)
    cl100k, count_tokens         the offline tiktoken encoding
    save_upload, safe_upload_name, upload_dir, check_upload, staged_upload, ALLOWED_EXTENSIONS, MAX_UPLOAD_MB,
    MIME                         checked uploads

Modules, in a run's order: sources (find, key, hash) -> plan (decide) -> engine (parse; ray_engine) ->
embed (only new texts) -> commit (the writer); pipeline ties them together, texts does it for TextRecords.
"""

from ingest.chunker import ChunkConfig, chunk
from ingest.config import FileFailure, IngestConfig, IngestReport
from ingest.crawl import Crawl, CrawlConfig, crawl
from ingest.engine import Engine, LocalEngine, ParseItem
from ingest.loaders import KINDS, SUPPORTED, Block, LoadError, ParsedText, load
from ingest.ocr import OcrConfig
from ingest.parse import parse_file
from ingest.pipeline import ingest, plan_changes
from ingest.plan import Change, ChangePlan
from ingest.ray_engine import RayConfig, RayEngine, RayIngestError, connect_ray
from ingest.report_json import report_dict, report_line
from ingest.sources import discover, document_key
from ingest.texts import TextRecord, ingest_texts
from ingest.tokens import cl100k, count_tokens
from ingest.uploads import (
    ALLOWED_EXTENSIONS,
    MAX_UPLOAD_MB,
    MIME,
    check_upload,
    safe_upload_name,
    save_upload,
    staged_upload,
    upload_dir,
)
from ingest.worker import Budget

__all__ = [
    "ingest",
    "plan_changes",
    "ingest_texts",
    "Change",
    "ChangePlan",
    "Engine",
    "LocalEngine",
    "ParseItem",
    "RayConfig",
    "RayEngine",
    "RayIngestError",
    "connect_ray",
    "FileFailure",
    "IngestConfig",
    "IngestReport",
    "TextRecord",
    "discover",
    "document_key",
    "Budget",
    "ChunkConfig",
    "chunk",
    "SUPPORTED",
    "KINDS",
    "Crawl",
    "CrawlConfig",
    "crawl",
    "Block",
    "LoadError",
    "ParsedText",
    "load",
    "parse_file",
    "OcrConfig",
    "report_dict",
    "report_line",
    "cl100k",
    "count_tokens",
    "ALLOWED_EXTENSIONS",
    "MAX_UPLOAD_MB",
    "MIME",
    "safe_upload_name",
    "save_upload",
    "upload_dir",
    "check_upload",
    "staged_upload",
]
