"""Small builders used by several test modules."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path


def make_pdf(path: Path, pages: list[str], password: str | None = None) -> Path:
    """A real PDF with one page per string (fpdf2, core font); encrypted when password is given."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    if password is not None:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(str(path)))
        writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-128")
        with open(path, "wb") as fh:
            writer.write(fh)
    return path


def read_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sentence_document(name: str, sentences: list[str], per_section: int):
    """A NewDocument whose text is the sentences joined by spaces, one chunk per sentence (its exact span),
    sections "Part 0", "Part 1", ... of per_section chunks each; source /virtual/NAME, title NAME.title()."""
    import hashlib

    from ingest import count_tokens
    from kb import NewChunk, NewDocument

    text = " ".join(sentences)
    chunks, pos = [], 0
    for s in sentences:
        start = text.index(s, pos)
        chunks.append(
            NewChunk(
                text=s,
                char_start=start,
                char_end=start + len(s),
                n_tokens=count_tokens(s),
                section=f"Part {len(chunks) // per_section}",
            )
        )
        pos = start + len(s)
    return NewDocument(
        source=f"/virtual/{name}",
        name=name,
        title=name.title(),
        kind="text",
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        size_bytes=len(text),
        text=text,
        chunks=tuple(chunks),
    )


def write_beir(folder, corpus, queries, qrels_lines, split="test"):
    """A BEIR folder as BEIR ships it: JSONL corpus/queries, qrels TSV with a header and CRLF."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels").mkdir(exist_ok=True)
    body = "query-id\tcorpus-id\tscore\r\n" + "".join(line + "\r\n" for line in qrels_lines)
    (folder / "qrels" / f"{split}.tsv").write_bytes(body.encode())
    return folder


def private_kb_copy(source: Path, dest: Path) -> Path:
    """A copy of the KB at source in dest, its question log emptied: what a test may change or count on.

    kb.sqlite is copied with SQLite's backup API: an app test's question-log thread may still be writing to
    the shared KB, and a file copy could catch it half-way. The question log those chats left is emptied."""
    from kb import KnowledgeBase, QuestionLog, QuestionLogConfig

    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("kb.sqlite*"))
    src, out = sqlite3.connect(source / "kb.sqlite"), sqlite3.connect(dest / "kb.sqlite")
    try:
        src.backup(out)
    finally:
        src.close()
        out.close()
    QuestionLog(KnowledgeBase(dest), QuestionLogConfig(retention_days=0)).prune()
    return dest
