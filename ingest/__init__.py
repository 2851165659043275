"""ingest: files -> parsed text -> token-aware chunks -> embeddings -> the KB.

Public surface:
    ingest(paths, kb_dir, config, embedder, engine=None) -> IngestReport   add/update (and with mirror=True, remove)
    RayEngine(RayConfig(address)), RayIngestError   engine= for ingest: parse and embed on a Ray cluster, commit here
    connect_ray(address)         connect this process to a Ray cluster, with a clear error when it is unreachable
    ingest_texts(records, kb_dir, config, embedder)         the same for in-memory TextRecords (BEIR corpora)
    Budget                       the time and memory one file's parsing may use
    IngestConfig, IngestReport, FileFailure
    report_dict, report_line     a report as JSON values (the CLI, the app and the API's sync jobs) and as one line
    ChunkConfig, chunk           token-aware chunking (cl100k_base tokens)
    load, LoadError, ParsedText, Block, SUPPORTED   file loaders
    OcrConfig                    how PDF pages without a text layer are read (Tesseract; ingest/ocr.py)
    cl100k, count_tokens         the offline tiktoken encoding
    save_upload, safe_upload_name, upload_dir, ALLOWED_EXTENSIONS, MAX_UPLOAD_MB, MIME   checked uploads
"""

from ingest.chunker import ChunkConfig, chunk
from ingest.loaders import SUPPORTED, Block, LoadError, ParsedText, load
from ingest.ocr import OcrConfig
from ingest.parse import parse_file
from ingest.pipeline import (FileFailure, IngestConfig, IngestReport, TextRecord, discover, document_key, ingest,
                             ingest_texts)
from ingest.report_json import report_dict, report_line
from ingest.ray_engine import RayConfig, RayEngine, RayIngestError, connect_ray
from ingest.tokens import cl100k, count_tokens
from ingest.worker import Budget
from ingest.uploads import (ALLOWED_EXTENSIONS, MAX_UPLOAD_MB, MIME, check_upload, safe_upload_name, save_upload,
                            staged_upload, upload_dir)

__all__ = [
    "Budget",
    "ChunkConfig", "chunk", "SUPPORTED", "Block", "LoadError", "ParsedText", "load", "OcrConfig",
    "FileFailure", "IngestConfig", "IngestReport", "TextRecord", "discover", "document_key", "ingest", "ingest_texts",
    "report_dict", "report_line",
    "parse_file", "RayConfig", "RayEngine", "RayIngestError", "connect_ray",
    "cl100k", "count_tokens",
    "ALLOWED_EXTENSIONS", "MAX_UPLOAD_MB", "MIME", "safe_upload_name", "save_upload", "upload_dir", "check_upload",
    "staged_upload",
]
