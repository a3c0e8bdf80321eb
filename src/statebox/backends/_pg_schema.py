"""Creating and migrating statebox's tables in a PostgreSQL schema.

The installed version lives in ``statebox_meta`` inside the schema. Opening a store reads
it (one cheap query, needing no privilege beyond reading); only when it is missing or
older does it take a transaction-scoped advisory lock keyed by the schema name, read the
version again and bring the schema up to date — so many processes starting at once
against an empty database create it exactly once, and the others wait for it.
"""

from __future__ import annotations

import hashlib

import psycopg
from psycopg import sql

from ..core.errors import ConfigurationError
from .sql import SCHEMA_VERSION, Dialect

__all__ = ["ensure_schema", "installed_version"]

#: Statements that take a schema from version N-1 to N (a fresh schema gets the whole
#: current DDL from ``Dialect.schema()`` instead).
UPGRADES: dict[int, list[str]] = {}


def _lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for the schema."""
    digest = hashlib.sha256(b"statebox-schema\0" + schema.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def installed_version(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> int:
    """The schema version recorded in ``schema``, 0 when statebox was never installed."""
    meta = sql.Identifier(schema, "statebox_meta")
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [meta.as_string(conn)]).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute(
        sql.SQL("SELECT value FROM {} WHERE name = 'schema_version'").format(meta)
    ).fetchone()
    return int(str(row[0])) if row else 0


def ensure_schema(
    conn: psycopg.Connection[tuple[object, ...]], schema: str, dialect: Dialect, where: str
) -> None:
    """Create or upgrade statebox's tables in ``schema`` (``conn`` is in autocommit)."""
    version = installed_version(conn, schema)
    if version == SCHEMA_VERSION:
        return
    _refuse_newer(version, where)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(schema)])
        # Only when missing: CREATE SCHEMA needs CREATE on the database even with IF NOT
        # EXISTS, and a role may well own its schema without that.
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone():
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        meta = sql.Identifier(schema, "statebox_meta")
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            ).format(meta)
        )
        version = installed_version(conn, schema)  # another process may have done it
        _refuse_newer(version, where)
        # The DDL is unqualified: point this transaction at the schema.
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        if version == 0:
            statements = dialect.schema()
        else:
            statements = [s for v in range(version + 1, SCHEMA_VERSION + 1) for s in UPGRADES[v]]
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (name, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            ).format(meta),
            [str(SCHEMA_VERSION)],
        )


def _refuse_newer(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"PostgreSQL store {where} has schema version {version}, newer than this statebox "
            f"understands ({SCHEMA_VERSION}): upgrade statebox"
        )
