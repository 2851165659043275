"""Long IN (...) lists in SQLite, batched under its limit on bound parameters.

SQLite builds before 3.32 allow 999 `?` per statement; lists of chunk ids or hashes can be any length.

    >>> rows = list(select_in(con, "SELECT id FROM chunks WHERE id IN (?*)", ids))   # doctest: +SKIP
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterator, Sequence

MAX_VARIABLES = 900  # per statement, with room for a few other parameters
IN_LIST = "(?*)"  # where select_in puts "(?,?,...)"


def in_batches(values: Sequence[Any]) -> Iterator[tuple[list[Any], str]]:
    """(part, "?,?,...") for consecutive parts of values, each at most MAX_VARIABLES long."""
    for start in range(0, len(values), MAX_VARIABLES):
        part = list(values[start : start + MAX_VARIABLES])
        yield part, ",".join("?" * len(part))


def select_in(con: sqlite3.Connection, sql: str, values: Sequence[Any]) -> Iterator[tuple]:
    """The rows of sql, whose IN_LIST stands for values, over as many statements as the limit needs
    (an ORDER BY holds within each batch only)."""
    if IN_LIST not in sql:
        raise ValueError(f"sql must hold {IN_LIST} where the values go")
    for part, marks in in_batches(values):
        yield from con.execute(sql.replace(IN_LIST, f"({marks})"), part)
