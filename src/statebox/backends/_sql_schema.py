"""The tables and indexes of the SQL backends (SQLite and PostgreSQL), as
``Dialect.schema`` gives them: read when a database is set up or upgraded, never by a
command that reads or writes one entry."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .sql import Dialect

__all__ = ["schema"]


def schema(dialect: Dialect) -> list[str]:
    """The DDL of the current ``SCHEMA_VERSION``, every statement idempotent."""
    b, i = dialect.blob, dialect.bigint
    end = ") WITHOUT ROWID" if dialect.clustered else ")"
    history_key = ", PRIMARY KEY (scope, namespace, key, id)" if dialect.clustered else ""
    tables = [
        f"""CREATE TABLE IF NOT EXISTS statebox_entries (
            scope TEXT NOT NULL, namespace {b} NOT NULL, key {b} NOT NULL,
            version {i} NOT NULL, hash TEXT NOT NULL, content_type TEXT NOT NULL,
            data {b} NOT NULL, created_at {i} NOT NULL, updated_at {i} NOT NULL,
            updated_by TEXT NOT NULL, expires_at {i},
            PRIMARY KEY (scope, namespace, key){end}""",
        f"""CREATE TABLE IF NOT EXISTS statebox_history (
            id {dialect.history_id},
            scope TEXT NOT NULL, namespace {b} NOT NULL, key {b} NOT NULL,
            version {i} NOT NULL, hash TEXT NOT NULL, content_type TEXT NOT NULL,
            data {b} NOT NULL, created_at {i} NOT NULL, updated_at {i} NOT NULL,
            updated_by TEXT NOT NULL, deleted INTEGER NOT NULL{history_key}{end}""",
    ]
    if not dialect.clustered:
        tables.append(
            """CREATE INDEX IF NOT EXISTS statebox_history_by_key
            ON statebox_history (scope, namespace, key, id)"""
        )
    tables += [
        """CREATE INDEX IF NOT EXISTS statebox_entries_expiry
            ON statebox_entries (expires_at) WHERE expires_at IS NOT NULL""",
        f"""CREATE TABLE IF NOT EXISTS statebox_leases (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, token {i} NOT NULL,
            expires_at {i} NOT NULL)""",
    ]
    return tables
