"""Where files are parsed and chunks embedded: the Engine protocol, and its local implementation.

An engine parses a run's changed files (each under the per-file budget of ingest.worker) and gives the
embedder for a model; everything else (the plan, the embedding cache, the writer and its one commit)
is the same on every engine. LocalEngine works in this process and its parse workers;
ingest.ray_engine.RayEngine spreads the same work over a Ray cluster.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import chain, islice
from pathlib import Path
from queue import Queue
from typing import Callable, Iterable, Iterator, Protocol, Sequence, Union, runtime_checkable

from ingest.config import FileFailure, IngestConfig
from ingest.embed import ChunkEmbedder
from ingest.loaders import LoadError
from ingest.parse import shown
from ingest.plan import Change
from ingest.sources import Scan
from ingest.worker import worker_for
from kb import EmbedderConfig, NewDocument, load_embedder

Parsed = tuple[NewDocument, tuple[str, ...]]
"""A parsed file: its document with its chunks, and the parser's warnings."""

Outcome = Union[Parsed, FileFailure]


@dataclass(frozen=True)
class ParseItem:
    """One file to parse: its path (for its name and type), its bytes, its key and root, and its kind when its
    name does not tell it (see ingest.sources.Source)."""

    path: Path
    data: bytes
    key: str
    root: str
    kind: str = ""


@runtime_checkable
class Engine(Protocol):
    """What ingest needs from where it runs."""

    def parse(self, items: Iterable[ParseItem], config: IngestConfig) -> Iterator[tuple[str, Outcome]]:
        """(key, Parsed or FileFailure) for each item, in any order, each parsed with parse_item."""
        ...

    def embedder(self, config: EmbedderConfig) -> ChunkEmbedder:
        """The embedder for config's model. One with encode_stream(texts, part) yielding (indices, vectors)
        parts is streamed (ingest.embed); a plain one is called part by part."""
        ...


def parse_item(item: ParseItem, config: IngestConfig, slot: int = 0) -> Outcome:
    """The one place a file is parsed: in this process's parse worker, under config.budget, with the
    run's chunking, labels and OCR settings. A file that cannot be parsed is a FileFailure.
    slot: which of the run's side-by-side workers parses it (0 .. config.parallel_parses - 1)."""
    budget = config.budget if slot == 0 else replace(config.budget, lane=f"{config.budget.lane}#{slot}")
    try:
        doc, warnings = worker_for(budget).parse(
            item.path,
            item.data,
            config.chunking,
            key=item.key,
            root=item.root,
            visibility=config.visibility,
            tags=config.tags,
            ocr=config.ocr,
            kind=item.kind,
        )
    except LoadError as exc:
        return FileFailure(shown(exc.path), exc.reason)
    return doc, tuple(warnings)


class LocalEngine:
    """Parses in this process's parse workers, config.parallel_parses files at a time; embeds with a model
    loaded here."""

    def parse(self, items: Iterable[ParseItem], config: IngestConfig) -> Iterator[tuple[str, Outcome]]:
        items = iter(items)
        first = list(islice(items, 2))
        if len(first) < 2 or config.parallel_parses == 1:  # one file: no second worker to start
            for item in chain(first, items):
                yield item.key, parse_item(item, config)
            return
        yield from _side_by_side(chain(first, items), config)

    def embedder(self, config: EmbedderConfig) -> ChunkEmbedder:
        return load_embedder(config)


def _side_by_side(items: Iterator[ParseItem], config: IngestConfig) -> Iterator[tuple[str, Outcome]]:
    """(key, outcome) of items in their order, parsed by config.parallel_parses workers at once. Files are
    read (items advanced) only as a worker frees up, so at most twice the workers' files are held in memory."""
    slots: Queue[int] = Queue()
    for slot in range(config.parallel_parses):
        slots.put(slot)

    def parse(item: ParseItem) -> tuple[str, Outcome]:
        slot = slots.get()
        try:
            return item.key, parse_item(item, config, slot)
        finally:
            slots.put(slot)

    pending: deque[Future[tuple[str, Outcome]]] = deque()
    with ThreadPoolExecutor(config.parallel_parses, thread_name_prefix="kb-parse") as pool:
        for item in items:
            pending.append(pool.submit(parse, item))
            while len(pending) >= 2 * config.parallel_parses:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def parse_changes(
    engine: Engine,
    changes: Sequence[Change],
    scan: Scan,
    config: IngestConfig,
    on_progress: Callable[[str, float], None] | None = None,
) -> tuple[dict[str, Parsed], list[FileFailure], float]:
    """Parse the files of changes on engine: (key -> Parsed, failures, seconds). Each file's bytes are
    read as the engine asks for them; one that cannot be read fails like one that cannot be parsed."""
    started = time.perf_counter()
    parsed: dict[str, Parsed] = {}
    failures: list[FileFailure] = []

    def items() -> Iterator[ParseItem]:
        for change in changes:
            try:
                data = scan.data(change.source, config.max_bytes)
            except LoadError as exc:
                failures.append(FileFailure(shown(exc.path), exc.reason))
                continue
            yield ParseItem(change.source.path, data, change.key, change.source.root, change.source.kind)

    if on_progress and not changes:
        on_progress("parse", 1.0)
    for done, (key, outcome) in enumerate(engine.parse(items(), config), start=1):
        if isinstance(outcome, FileFailure):
            failures.append(outcome)
        else:
            parsed[key] = outcome
        if on_progress:
            on_progress("parse", done / max(len(changes), 1))
    return parsed, failures, time.perf_counter() - started
