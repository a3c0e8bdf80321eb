"""An online, consistent copy of a SQLite store: SQLite's backup API.

The copy is taken from a connection of its own that holds one read transaction for the
whole backup, so every step copies pages of the same snapshot (WAL mode: writers go on
meanwhile, and the backup never restarts because of them). It is written to
``PATH.tmp``, switched out of WAL into one self-contained file, synced, renamed onto
``PATH`` (a reader never sees half a backup) and checked with ``PRAGMA
integrity_check``. Any other store has its own way: PostgreSQL's ``pg_dump``, or for
every store ``statebox dump`` and ``statebox copy --to sqlite:///…``
(docs/move-and-backup.md).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.errors import BackendUnavailableError, ConfigurationError, CorruptEntryError

if TYPE_CHECKING:
    from ..store import StateStore

__all__ = ["BackupReport", "backup_sqlite"]

#: Pages copied per backup step (4 MiB of 4 KiB pages): the read lock is short, the
#: copy of a large file is not one long call.
STEP_PAGES = 1024


class BackupReport(NamedTuple):
    path: str
    bytes: int
    entries: int
    history: int
    keyspaces: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": "backup",
            "path": self.path,
            "bytes": self.bytes,
            "entries": self.entries,
            "history": self.history,
            "keyspaces": self.keyspaces,
            "integrity": "ok",
            "seconds": round(self.seconds, 3),
        }


def _database_path(store: StateStore) -> str:
    backend: Any = store.backend
    inner = getattr(backend, "inner", backend)  # below the sealing layer
    from ..backends.sqlite import SqliteBackend

    if isinstance(inner, SqliteBackend):
        return str(inner.path)
    from ..core.redaction import redact_url  # the URL may carry a password

    kind = type(inner).__name__
    if "Postgres" in kind:
        way = (
            "back up PostgreSQL with pg_dump (pg_dump --schema=statebox …; restore with "
            "pg_restore or psql)"
        )
    else:
        way = "use 'statebox dump --history --include-secrets --output FILE'"
    shown = redact_url(backend.url) if backend.url else "no URL"
    raise ConfigurationError(
        f"statebox backup copies SQLite stores only, and this store is a {kind} "
        f"({shown}): {way}, or copy it into a SQLite file with "
        "'statebox copy --from URL --to sqlite:///PATH' (see docs/move-and-backup.md)"
    )


def _fsync(path: str, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_sqlite(store: StateStore, path: str | os.PathLike[str]) -> BackupReport:
    """Copy ``store`` (SQLite) into the file ``path`` while others write to it; checked
    and complete when this returns (``ConfigurationError`` for any other store)."""
    import sqlite3

    source_path = _database_path(store)
    target = os.path.abspath(os.fspath(path))
    if os.path.exists(target) and os.path.samefile(source_path, target):
        raise ConfigurationError(f"cannot back up {source_path} onto itself")
    started = time.monotonic()
    tmp = target + ".tmp"
    for leftover in (tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)  # an interrupted backup's
    try:
        src = sqlite3.connect(source_path, timeout=30.0, isolation_level=None)
        try:
            # One read transaction around every step: one snapshot, no restarts.
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst, pages=STEP_PAGES)
                # One file, readable without the -wal beside it.
                dst.execute("PRAGMA journal_mode = DELETE").fetchone()
            finally:
                dst.close()
            src.execute("COMMIT")
        finally:
            src.close()
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(os.path.dirname(target) or ".")
    except sqlite3.Error as exc:
        raise BackendUnavailableError(f"cannot back up {source_path} to {target}: {exc}") from exc
    return _checked(target, time.monotonic() - started)


def _checked(target: str, seconds: float) -> BackupReport:
    import sqlite3
    from urllib.parse import quote

    conn = sqlite3.connect(f"file:{quote(target)}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise CorruptEntryError(
                f"the backup {target} failed SQLite's integrity check: {'; '.join(problems[:5])}"
            )
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        entries = history = keyspaces = 0
        if "statebox_entries" in tables:
            entries, keyspaces = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT scope || char(0) || namespace) "
                "FROM statebox_entries"
            ).fetchone()
        if "statebox_history" in tables:
            history = conn.execute("SELECT COUNT(*) FROM statebox_history").fetchone()[0]
    finally:
        conn.close()
    return BackupReport(target, os.path.getsize(target), entries, history, keyspaces, seconds)
