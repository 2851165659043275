"""Long IN lists are batched under SQLite's parameter limit (kb/sql.py)."""

from __future__ import annotations

import sqlite3

import pytest

from kb.sql import IN_LIST, MAX_VARIABLES, in_batches, select_in


def test_a_list_longer_than_the_limit_is_read_whole_in_batches():
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(5000)])
    wanted = list(range(0, 5000, 2))  # 2,500 values: three statements
    rows = dict(select_in(con, f"SELECT id, v FROM t WHERE id IN {IN_LIST}", wanted))
    assert rows == {i: f"v{i}" for i in wanted}
    parts = list(in_batches(wanted))
    assert [len(p) for p, _ in parts] == [MAX_VARIABLES, MAX_VARIABLES, 2500 - 2 * MAX_VARIABLES]
    assert all(marks.count("?") == len(p) for p, marks in parts)
    assert list(select_in(con, f"SELECT id FROM t WHERE id IN {IN_LIST}", [])) == []


def test_sql_without_the_placeholder_is_refused():
    con = sqlite3.connect(":memory:")
    with pytest.raises(ValueError, match=r"must hold \(\?\*\)"):
        list(select_in(con, "SELECT 1 WHERE 1 IN (?)", [1]))
