"""kb: the knowledge base on disk (ground floor; imports nothing from the other packages).

Public surface:
    KnowledgeBase, Writer, CheckReport       the KB directory (kb/store.py), its writer (kb/writer.py) and integrity
                                             check (kb/integrity.py); tables in kb/schema.py, queries in kb/reads.py
    Database, DB_NAME                        the one way to open kb.sqlite (kb/database.py)
    Embedder, EmbedderConfig, load_embedder  the packaged embedding models (EmbedderConfig.device: cpu or a GPU)
    OnnxEmbedder, OnnxEmbeddingModel         load_embedder gives an Embedder (torch) or an OnnxEmbedder (an int8
                                             ONNX file: bge-small-en-v1.5)
    TextEmbedder, PACKAGED_MODELS            what both offer (kb/embedder_base.py); the one list of model names
    resolve_model_path                       the model's folder (its config.json gives the dimension unloaded)
    kb_model, embedder_for                   the model that built a KB, and its embedder: what anything embedding
                                             for an existing KB uses (never the default model)
    query_embedder_for, query_encoder        the embedder for questions: NumpyEncoder (kb/numpy_encoder.py, the
                                             default MiniLM's weights run in numpy, no torch import) where it can
    gpu_capable                              whether a model can run on a GPU (torch) or only on the CPU (ONNX)
    reembed, ReembedReport                   move a KB to another embedding model in one commit (kb/reembed.py)
    IndexConfig, Snapshot                    FAISS index choice and a committed vector snapshot
    Manifest, FORMAT_VERSION                 on-disk identity
    NewDocument, NewChunk, DocumentInfo, ChunkRecord, HistoryEntry, Feedback, retrieval_text   records
    OCR_LOW_CONFIDENCE, ocr_note             when a page read by OCR is flagged, and how citations say so
    location_label                           "p. 2" / "§ Section": the one format of a place in a document
    DocumentFilter, check_labels             which documents a search may use; visibility / tag rules
    web_url                                  an exported address kept only when it is http(s)
    Validators, stored_validators, record_validators   a crawled page's ETag / Last-Modified (kb/web_pages.py)
    KBError, ManifestError, KBLockedError, EmptyKBError, KBWriteError           errors
    FAULT_POINTS                             named crash points for fault tests (see kb/faults.py)
    ConversationStore, ConversationConfig, Conversation, ConversationTurn, new_id   saved chats (kb/conversations.py)
    bm25_terms, latin_words, char_grams, GRAM_BUCKETS, LATIN_WORD, VOCABULARY_MIN_LENGTH   how the lexical index
                                             cuts text (kb/lexicon.py): readers must cut questions the same way
    QuestionMemory, MemoryPatterns, question_key   confirmed (question, passage) pairs (kb/question_memory.py)
    QuestionLog, QuestionLogConfig, LogEntry, LoggedCitation, NewEntry   every question asked, redacted, with its
                                             outcome and citations, kept retention_days (kb/question_log.py); its
                                             questions' vectors for insights (QuestionLog.vectors / save_vectors)
    redact                                   e-mail, phone, card-like and ID-like numbers out of a text (kb/redact.py)
    PackagedModel, CROSS_ENCODER, BGE_SMALL, model_folder, onnx_session   ONNX models shipped in a pinned wheel,
                                             hash-checked at load (kb/onnx_models.py)
    one_blas_thread, blas_for                BLAS on one thread for a small block of numpy work, or for a few
                                             texts' (kb/blas.py)
    usable_cpus                              the CPUs this process may run on, for sizing pools (kb/cpus.py)
"""

from kb.blas import blas_for, one_blas_thread
from kb.conversations import Conversation, ConversationConfig, ConversationStore, ConversationTurn, new_id
from kb.cpus import usable_cpus
from kb.database import DB_NAME, Database
from kb.embedder import (
    PACKAGED_MODELS,
    QUERY_ENCODER_ENV,
    Embedder,
    embedder_for,
    gpu_capable,
    kb_model,
    load_embedder,
    query_embedder_for,
    query_encoder,
    resolve_model_path,
)
from kb.embedder_base import DEFAULT_MODEL, EmbedderConfig, TextEmbedder
from kb.errors import EmptyKBError, KBError, KBLockedError, KBWriteError, ManifestError, without_paths
from kb.faults import POINTS as FAULT_POINTS
from kb.integrity import CheckReport
from kb.lexical_index import TermPostings
from kb.lexicon import GRAM_BUCKETS, LATIN_WORD, VOCABULARY_MIN_LENGTH, bm25_terms, char_grams, latin_words
from kb.manifest import FORMAT_VERSION, Manifest
from kb.numpy_encoder import NumpyEncoder
from kb.onnx_embedder import OnnxEmbedder, OnnxEmbeddingModel
from kb.onnx_models import BGE_SMALL, CROSS_ENCODER, PackagedModel, model_folder, onnx_session
from kb.question_log import LogEntry, LoggedCitation, NewEntry, QuestionLog, QuestionLogConfig
from kb.question_memory import MemoryPatterns, QuestionMemory, question_key
from kb.records import (
    OCR_LOW_CONFIDENCE,
    ChunkRecord,
    DocumentFilter,
    DocumentInfo,
    Feedback,
    HistoryEntry,
    NewChunk,
    NewDocument,
    check_labels,
    location_label,
    ocr_note,
    retrieval_text,
    text_hash,
    web_url,
)
from kb.redact import redact
from kb.reembed import ReembedReport, reembed
from kb.store import KnowledgeBase
from kb.vector_index import IndexConfig, Snapshot
from kb.web_pages import Validators, record_validators, stored_validators
from kb.writer import Writer

__all__ = [
    "one_blas_thread",
    "blas_for",
    "usable_cpus",
    "TermPostings",
    "DEFAULT_MODEL",
    "Embedder",
    "EmbedderConfig",
    "load_embedder",
    "resolve_model_path",
    "OnnxEmbedder",
    "OnnxEmbeddingModel",
    "TextEmbedder",
    "PACKAGED_MODELS",
    "embedder_for",
    "query_embedder_for",
    "QUERY_ENCODER_ENV",
    "query_encoder",
    "NumpyEncoder",
    "kb_model",
    "gpu_capable",
    "ReembedReport",
    "reembed",
    "EmptyKBError",
    "KBError",
    "KBLockedError",
    "KBWriteError",
    "ManifestError",
    "FAULT_POINTS",
    "FORMAT_VERSION",
    "Manifest",
    "ChunkRecord",
    "DocumentFilter",
    "DocumentInfo",
    "Feedback",
    "HistoryEntry",
    "NewChunk",
    "NewDocument",
    "check_labels",
    "web_url",
    "Validators",
    "stored_validators",
    "record_validators",
    "without_paths",
    "retrieval_text",
    "OCR_LOW_CONFIDENCE",
    "ocr_note",
    "location_label",
    "CheckReport",
    "KnowledgeBase",
    "Writer",
    "text_hash",
    "DB_NAME",
    "Database",
    "IndexConfig",
    "Snapshot",
    "Conversation",
    "ConversationConfig",
    "ConversationStore",
    "ConversationTurn",
    "new_id",
    "GRAM_BUCKETS",
    "LATIN_WORD",
    "VOCABULARY_MIN_LENGTH",
    "bm25_terms",
    "char_grams",
    "latin_words",
    "MemoryPatterns",
    "QuestionMemory",
    "question_key",
    "LogEntry",
    "LoggedCitation",
    "NewEntry",
    "QuestionLog",
    "QuestionLogConfig",
    "redact",
    "BGE_SMALL",
    "CROSS_ENCODER",
    "PackagedModel",
    "model_folder",
    "onnx_session",
]
