"""kb: the knowledge base on disk (ground floor; imports nothing from the other packages).

Public surface:
    KnowledgeBase, Writer, CheckReport       the KB directory, its writer and integrity check
    Embedder, EmbedderConfig, load_embedder  the packaged embedding model
    IndexConfig, Snapshot                    FAISS index choice and a committed vector snapshot
    Manifest, FORMAT_VERSION                 on-disk identity
    NewDocument, NewChunk, DocumentInfo, ChunkRecord, HistoryEntry, Feedback, retrieval_text   records
    DocumentFilter, check_labels             which documents a search may use; visibility / tag rules
    KBError, ManifestError, KBLockedError, EmptyKBError, KBWriteError           errors
    FAULT_POINTS                             named crash points for fault tests (see kb/faults.py)
    ConversationStore, ConversationConfig, Conversation, ConversationTurn   saved chats (kb/conversations.py)
"""

from kb.conversations import Conversation, ConversationConfig, ConversationStore, ConversationTurn
from kb.embedder import DEFAULT_MODEL, Embedder, EmbedderConfig, load_embedder
from kb.errors import EmptyKBError, KBError, KBLockedError, KBWriteError, ManifestError
from kb.faults import POINTS as FAULT_POINTS
from kb.manifest import FORMAT_VERSION, Manifest
from kb.records import (ChunkRecord, DocumentFilter, DocumentInfo, Feedback, HistoryEntry, NewChunk, NewDocument,
                        check_labels, retrieval_text)
from kb.store import CheckReport, KnowledgeBase, Writer, text_hash
from kb.vector_index import IndexConfig, Snapshot

__all__ = [
    "DEFAULT_MODEL", "Embedder", "EmbedderConfig", "load_embedder",
    "EmptyKBError", "KBError", "KBLockedError", "KBWriteError", "ManifestError", "FAULT_POINTS",
    "FORMAT_VERSION", "Manifest",
    "ChunkRecord", "DocumentFilter", "DocumentInfo", "Feedback", "HistoryEntry", "NewChunk", "NewDocument",
    "check_labels", "retrieval_text",
    "CheckReport", "KnowledgeBase", "Writer", "text_hash",
    "IndexConfig", "Snapshot",
    "Conversation", "ConversationConfig", "ConversationStore", "ConversationTurn",
]
