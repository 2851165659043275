"""A crawled page's HTTP validators (ETag, Last-Modified), kept so the next sync asks "changed since?".

One row per web document (its key, the page URL); the table is declared in kb/schema.py (WEB_PAGE_TABLES)
and written only inside a sync's commit (record_validators: Writer.in_commit), so a crash before the
commit leaves the validators of the documents the KB still holds. A KB without the table has no row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable, Mapping

from kb.schema import WEB_PAGE_TABLES, has_table
from kb.store import KnowledgeBase
from kb.writer import Writer


@dataclass(frozen=True)
class Validators:
    """What a server said identifies a page's version: its ETag and Last-Modified headers ("" when not sent);
    content_hash: the stored document's, which a 304 reply leaves as it is."""

    etag: str = ""
    last_modified: str = ""
    content_hash: str = ""

    @property
    def empty(self) -> bool:
        return not (self.etag or self.last_modified)


def stored_validators(kb: KnowledgeBase | None) -> dict[str, Validators]:
    """page URL (document key) -> Validators of every web document (kind "web") kb holds; empty validators for a
    page whose server sent none ({} for None)."""
    if kb is None:
        return {}
    with kb.db.read() as con:
        if has_table(con, "web_pages"):
            rows = con.execute(
                "SELECT d.source, COALESCE(w.etag, ''), COALESCE(w.last_modified, ''), d.content_hash "
                "FROM documents d LEFT JOIN web_pages w USING (source) WHERE d.kind = 'web'"
            ).fetchall()
        else:
            rows = con.execute("SELECT source, '', '', content_hash FROM documents WHERE kind = 'web'").fetchall()
    return {source: Validators(etag, modified, digest) for source, etag, modified, digest in rows}


def record_validators(writer: Writer, pages: Mapping[str, Validators], forget: Iterable[str] = ()) -> None:
    """Stage, in writer's commit, the validators of pages (key -> Validators; empty ones delete the row) and
    the removal of the rows of forget (documents gone or failed)."""
    rows = [(key, v.etag, v.last_modified) for key, v in pages.items() if not v.empty]
    gone = [(key,) for key, v in pages.items() if v.empty] + [(key,) for key in forget]
    if not rows and not gone:
        return

    def step(con: sqlite3.Connection) -> None:
        con.execute(WEB_PAGE_TABLES)  # one statement: executescript would commit the open transaction
        con.executemany("DELETE FROM web_pages WHERE source = ?", gone)
        con.executemany("INSERT OR REPLACE INTO web_pages (source, etag, last_modified) VALUES (?, ?, ?)", rows)

    writer.in_commit(step)
