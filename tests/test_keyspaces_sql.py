"""Listing keyspaces on SQLite walks the primary key's ``(scope, namespace)`` prefix in
order: no temporary B-tree for the grouping or the order, and a page after a keyspace
seeks to it (issue #13, item 6: keep performance)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from statebox.backends.sqlite import SqliteBackend
from statebox.core.model import Keyspace


@pytest.mark.parametrize(
    ("scope", "after", "limit"),
    [
        (None, None, 0),
        ("custom", None, 10),
        (None, Keyspace("custom", "a"), 10),
        ("run", Keyspace("run", "r-1"), 0),
    ],
)
def test_the_keyspaces_query_uses_the_primary_key(
    tmp_path: Path, scope: str | None, after: Keyspace | None, limit: int
) -> None:
    backend = SqliteBackend(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        query, params = backend.keyspaces_query(scope, after=after, limit=limit, now=5)
        with sqlite3.connect(tmp_path / "state.db") as db:
            plan = " / ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + query, params))
    finally:
        backend.close()
    assert "TEMP B-TREE" not in plan, plan  # grouped and ordered by the key itself
    if scope is not None or after is not None:
        assert "SEARCH statebox_entries USING PRIMARY KEY" in plan, plan
    if after is not None and scope is None:
        assert "(scope,namespace)>(?,?)" in plan, plan  # seeks to the page's start
