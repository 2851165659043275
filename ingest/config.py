"""What a run is asked to do (IngestConfig) and what it did (IngestReport, FileFailure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.chunker import ChunkConfig
from ingest.crawl import CrawlConfig
from ingest.loaders import DEFAULT_MAX_BYTES
from ingest.ocr import OcrConfig
from ingest.worker import Budget
from kb import EmbedderConfig, KBError, check_labels, usable_cpus


@dataclass(frozen=True)
class IngestConfig:
    """mirror: also remove stored documents synced from the given folders whose files are gone (sync).
    dry_run: plan only (ingest.plan): report what a run would do, change nothing, create nothing.
    wait: seconds to wait for another writer. max_bytes: larger files are refused.
    visibility, tags: labels given to every document of the run (see kb.DocumentFilter).
    key_prefix: put before every document key, to keep two folders' documents apart.
    budget: time and memory each file may take to parse and chunk (ingest.worker).
    follow_links: follow symbolic links that lead outside the folder being ingested (default: such
    links fail with a reason, so syncing a folder others can write never publishes /etc/passwd).
    ocr: how PDF pages without a text layer are read (ingest.ocr; each OCR page adds its own time limit
    to the budget). base_url: the wiki address that exported Confluence pages' links are relative to
    ("https://wiki.example.com"), so their citations link to the live page. crawl: how web addresses
    among the paths (a sitemap.xml or a start page) are fetched (ingest.crawl)."""

    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    max_bytes: int = DEFAULT_MAX_BYTES
    mirror: bool = False
    dry_run: bool = False
    wait: float = 0.0
    progress: bool = False
    visibility: str = "internal"
    tags: tuple[str, ...] = ()
    key_prefix: str = ""
    budget: Budget = field(default_factory=Budget)
    follow_links: bool = False
    ocr: OcrConfig = field(default_factory=OcrConfig)
    base_url: str = ""
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    parse_workers: int | None = None

    def __post_init__(self) -> None:
        check_labels(self.visibility, self.tags)
        if self.parse_workers is not None and self.parse_workers < 1:
            raise KBError(f"parse_workers must be at least 1, not {self.parse_workers}")

    @property
    def parallel_parses(self) -> int:
        """How many files are parsed at once: parse_workers, or the CPUs this process may run on (at most 4)."""
        return self.parse_workers or min(usable_cpus(), 4)


@dataclass(frozen=True)
class FileFailure:
    """A file (or exported article) a run could not take in, and the one-line reason."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class IngestReport:
    """What a run did. Lists hold document keys; stage_seconds maps stage -> seconds
    (read, parse, embed, stage)."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    failed: tuple[FileFailure, ...] = ()
    warnings: tuple[str, ...] = ()
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_written: int = 0
    seconds: float = 0.0
    stage_seconds: tuple[tuple[str, float], ...] = ()
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "removed": len(self.removed),
            "failed": len(self.failed),
        }
