"""Labelled question sets: BEIR folders, simple JSONL and CSV, read into one LabelledSet.

Formats:
- BEIR folder: corpus.jsonl ({"_id", "title", "text"}), queries.jsonl ({"_id", "text"}),
  qrels/<split>.tsv (query-id, corpus-id, score; a header line; CRLF or LF). Only the
  queries that qrels judge are kept, as in BEIR; grades <= 0 are not relevant.
- JSONL: one object a line, {"question": ..., "relevant": [...], "id": optional}. "relevant"
  holds document names or sources (document level), or JSON integers, which are chunk ids
  (chunk level); "relevant_chunks": [...] says chunk ids explicitly. A {target: grade} object
  gives graded relevance.
- CSV (TSV for .tsv): a header with question (or query), relevant (or relevant_chunks) and
  optionally id; several targets in one cell are separated by ';' or '|'.

Bad lines are skipped and counted in LabelledSet.warnings (with line numbers); problems
that would make every number wrong (duplicate query ids, mixed levels, nothing usable,
a missing file) raise EvalError.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from eval.errors import EvalError
from ingest import TextRecord

LEVELS = ("doc", "chunk")
WORD = re.compile(r"\w", re.UNICODE)
SEPARATORS = re.compile(r"[;|]")


@dataclass(frozen=True)
class LabelledSet:
    """Questions with their relevant targets.

    queries: {query id: text}, in file order. qrels: {query id: {target: grade >= 1}}.
    level: "doc" (targets are document sources or file names) or "chunk" (targets are chunk
    ids, as decimal strings). corpus: the documents to ingest (BEIR), else None (the set is
    judged against an existing KB). warnings: what was skipped while reading, with counts.
    """

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    level: str = "doc"
    corpus: tuple[TextRecord, ...] | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise EvalError(f"{self.name}: level must be one of {LEVELS}, not {self.level!r}")
        if not self.queries:
            detail = f" ({'; '.join(self.warnings)})" if self.warnings else ""
            raise EvalError(
                f"{self.name} holds no usable questions{detail}; "
                "each needs a question and at least one relevant document or chunk"
            )
        if set(self.queries) != set(self.qrels):
            raise EvalError(f"{self.name}: every question needs relevance judgements and vice versa")

    def __len__(self) -> int:
        return len(self.queries)

    def head(self, n: int | None) -> "LabelledSet":
        """The first n questions (all when n is None)."""
        if n is None or n >= len(self.queries):
            return self
        if n < 1:
            raise EvalError(f"--limit must be at least 1, not {n}")
        keep = list(self.queries)[:n]
        return replace(self, queries={q: self.queries[q] for q in keep}, qrels={q: self.qrels[q] for q in keep})


class Tally:
    """Counts skipped items by reason and keeps a few examples, for one warning line per reason."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: dict[str, list[str]] = {}

    def add(self, reason: str, example: str) -> None:
        self.items.setdefault(reason, []).append(example)

    def messages(self) -> list[str]:
        out = []
        for reason, examples in self.items.items():
            shown = ", ".join(examples[:5]) + (", ..." if len(examples) > 5 else "")
            out.append(f"{self.source}: {len(examples)} {reason} ({shown})")
        return out


def load_dataset(path: str | Path, split: str = "test") -> LabelledSet:
    """A labelled set from a BEIR folder, a .jsonl/.json file or a .csv/.tsv file."""
    path = Path(path)
    if not path.exists():
        raise EvalError(f"no labelled set at {path}: give a BEIR folder, a .jsonl or a .csv file")
    if path.is_dir():
        return load_beir(path, split)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return load_jsonl(path)
    if suffix in (".csv", ".tsv"):
        return load_csv(path)
    raise EvalError(f"{path}: unknown labelled-set format {suffix!r}; use a BEIR folder, .jsonl or .csv")


# ---- BEIR -----------------------------------------------------------------------------------


def _json_lines(path: Path, tally: Tally) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each JSON-object line; other non-blank lines are tallied."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise EvalError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                tally.add("malformed lines skipped (not JSON)", f"line {number}")
                continue
            if not isinstance(obj, dict):
                tally.add("malformed lines skipped (not a JSON object)", f"line {number}")
                continue
            yield number, obj


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def read_beir_corpus(path: Path) -> tuple[tuple[TextRecord, ...], list[str]]:
    """corpus.jsonl as TextRecords (source = name = _id), and the warnings."""
    tally = Tally(path.name)
    records: dict[str, TextRecord] = {}
    for number, obj in _json_lines(path, tally):
        if "_id" not in obj or isinstance(obj["_id"], (dict, list)):
            tally.add("lines without an _id skipped", f"line {number}")
            continue
        doc_id = str(obj["_id"])
        if doc_id in records:
            tally.add("duplicate _id lines skipped (the first is kept)", f"line {number}: {doc_id}")
            continue
        # Exactly these fields, so a KB built from the same corpus elsewhere hashes the same
        # and is reused without re-embedding.
        records[doc_id] = TextRecord(
            source=doc_id, title=_text(obj.get("title", "")), text=_text(obj.get("text", "")), name=doc_id
        )
    return tuple(records.values()), tally.messages()


def _beir_queries(path: Path) -> tuple[dict[str, str], list[str]]:
    tally = Tally(path.name)
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, obj in _json_lines(path, tally):
        if "_id" not in obj or not isinstance(obj.get("text"), str):
            tally.add("lines without _id or text skipped", f"line {number}")
            continue
        qid = str(obj["_id"])
        if qid in queries:
            raise EvalError(f"{path}: lines {lines[qid]} and {number} both have query _id {qid!r}; query ids must be unique")
        if not WORD.search(obj["text"]):
            tally.add("empty queries skipped", f"line {number}: {qid}")
            continue
        queries[qid] = obj["text"].strip()
        lines[qid] = number
    return queries, tally.messages()


def _qrels_file(folder: Path, split: str) -> Path:
    qrels_dir = folder / "qrels"
    wanted = qrels_dir / f"{split}.tsv"
    if wanted.is_file():
        return wanted
    have = sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    hint = f"splits here: {', '.join(have)}" if have else f"no qrels/*.tsv under {folder}"
    raise EvalError(f"{folder}: no qrels/{split}.tsv ({hint}); pass --split to choose one")


def read_beir_qrels(path: Path) -> tuple[list[tuple[int, str, str, int]], list[str]]:
    """(line, query id, corpus id, grade) for each judgement line; malformed lines tallied."""
    tally = Tally(f"qrels/{path.name}")
    rows = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise EvalError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) == 4:  # TREC layout: query-id, iteration, doc-id, grade
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            tally.add("malformed lines skipped (not 3 tab-separated columns)", f"line {number}")
            continue
        qid, doc_id, grade = (p.strip() for p in parts)
        try:
            value = int(float(grade))
        except ValueError:
            if number == 1:  # the header line: query-id, corpus-id, score
                continue
            tally.add("malformed lines skipped (score is not a number)", f"line {number}")
            continue
        rows.append((number, qid, doc_id, value))
    return rows, tally.messages()


def load_beir(folder: str | Path, split: str = "test") -> LabelledSet:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv (see the module docstring)."""
    folder = Path(folder)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).is_file():
            raise EvalError(
                f"{folder} is not a BEIR folder: {name} is missing "
                "(a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv)"
            )
    corpus, warnings = read_beir_corpus(folder / "corpus.jsonl")
    queries, more = _beir_queries(folder / "queries.jsonl")
    warnings += more
    rows, more = read_beir_qrels(_qrels_file(folder, split))
    warnings += more
    doc_ids = {r.source for r in corpus}
    tally = Tally(f"qrels/{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    judged: list[str] = []
    for number, qid, doc_id, grade in rows:
        if qid not in queries:
            tally.add("judgements skipped: query id not in queries.jsonl", f"line {number}: {qid}")
            continue
        if qid not in judged:
            judged.append(qid)
        if doc_id not in doc_ids:
            tally.add("judgements skipped: document id not in corpus.jsonl", f"line {number}: {doc_id}")
            continue
        if doc_id in qrels.get(qid, {}):
            tally.add("duplicate judgements skipped (the first is kept)", f"line {number}: {qid} {doc_id}")
            continue
        if grade > 0:
            qrels.setdefault(qid, {})[doc_id] = grade
        else:
            qrels.setdefault(qid, {})
    for qid in judged:
        if not qrels.get(qid):
            tally.add("queries dropped: no relevant document left", qid)
            qrels.pop(qid, None)
    warnings += tally.messages()
    order = [q for q in judged if q in qrels]
    return LabelledSet(
        name=folder.name,
        queries={q: queries[q] for q in order},
        qrels={q: qrels[q] for q in order},
        level="doc",
        corpus=corpus,
        warnings=tuple(warnings),
    )


# ---- JSONL, CSV and in-memory records ---------------------------------------------------------


def _targets(value: Any, chunk_key: bool) -> tuple[str, dict[str, int]] | str:
    """(level, {target: grade}) from a "relevant" value, or a reason it is unusable."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = [(v, 1) for v in value]
    else:
        return "relevant is not a list"
    out: dict[str, int] = {}
    levels = set()
    for target, grade in items:
        if isinstance(target, bool) or not isinstance(target, (str, int)) or not isinstance(grade, int):
            return "relevant holds something other than names or chunk ids"
        if isinstance(target, int) or chunk_key:
            text = str(target).strip()
            if not text.isdigit():
                return f"chunk id {target!r} is not a whole number"
            levels.add("chunk")
            target = str(int(text))
        else:
            target = target.strip()
            if not target:
                continue
            levels.add("doc")
        if grade > 0:
            out[target] = max(grade, out.get(target, 0))
    if len(levels) > 1:
        return "relevant mixes document names and chunk ids"
    if not out:
        return "no relevant targets"
    return levels.pop(), out


def from_records(
    records: Iterable[tuple[int, dict]] | Iterable[dict], name: str, warnings: Iterable[str] = ()
) -> LabelledSet:
    """A LabelledSet from {"question", "relevant" | "relevant_chunks", "id"?} records.

    records: dicts, or (line number, dict) pairs so warnings can name the line.
    warnings: earlier warnings about the same set (e.g. lines that were not JSON).
    """
    tally = Tally(name)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    where: dict[str, str] = {}
    level: str | None = None
    first_level_at = ""
    for n, item in enumerate(records, start=1):
        number, rec = item if isinstance(item, tuple) else (n, item)
        at = f"line {number}" if isinstance(item, tuple) else f"record {number}"
        question = rec.get("question", rec.get("query"))
        if not isinstance(question, str) or not WORD.search(question):
            tally.add("records skipped: no question text", at)
            continue
        chunk_key = "relevant_chunks" in rec
        got = _targets(rec.get("relevant_chunks") if chunk_key else rec.get("relevant"), chunk_key)
        if isinstance(got, str):
            tally.add(f"records skipped: {got}", at)
            continue
        rec_level, targets = got
        if level is None:
            level, first_level_at = rec_level, at
        elif rec_level != level:
            raise EvalError(
                f"{name} {at} gives {'chunk ids' if rec_level == 'chunk' else 'document names'} but "
                f"{first_level_at} gave {'chunk ids' if level == 'chunk' else 'document names'}; "
                "one labelled set is judged at one level"
            )
        qid = str(rec["id"]) if rec.get("id") not in (None, "") else f"q{number}"
        if qid in queries:
            raise EvalError(f"{name}: {where[qid]} and {at} both have id {qid!r}; question ids must be unique")
        queries[qid] = question.strip()
        qrels[qid] = targets
        where[qid] = at
    return LabelledSet(
        name=name,
        queries=queries,
        qrels=qrels,
        level=level or "doc",
        corpus=None,
        warnings=tuple(warnings) + tuple(tally.messages()),
    )


def load_jsonl(path: str | Path) -> LabelledSet:
    """One JSON object a line: {"question", "relevant" | "relevant_chunks", "id"?}."""
    path = Path(path)
    tally = Tally(path.name)
    records = list(_json_lines(path, tally))
    return from_records(records, path.name, warnings=tally.messages())


def load_csv(path: str | Path) -> LabelledSet:
    """A header row naming question (or query), relevant (or relevant_chunks), optional id."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise EvalError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        question = next((h for h in ("question", "query") if h in header), None)
        relevant = next((h for h in ("relevant", "relevant_chunks") if h in header), None)
        if question is None or relevant is None:
            raise EvalError(
                f"{path}: the header row must name a question column and a relevant (or "
                f"relevant_chunks) column; found {', '.join(header) or 'no header'}"
            )
        records = []
        for row in reader:
            cell = row.get(relevant) or ""
            rec = {
                "question": row.get(question) or "",
                "id": (row.get("id") or "").strip() or None,
                relevant: [t.strip() for t in SEPARATORS.split(cell) if t.strip()],
            }
            records.append((reader.line_num, rec))
    return from_records(records, path.name)
