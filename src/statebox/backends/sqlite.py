"""``sqlite:///relative.db`` / ``sqlite:////absolute.db`` — the embedded default.

WAL mode, so readers never block the writer; every write is one ``BEGIN IMMEDIATE``
transaction, so check-and-write is atomic across threads and processes. A busy database
is waited for up to ``timeout`` seconds (URL query ``?timeout=30``), then reported as
:class:`BackendUnavailableError` — never dropped. ``?synchronous=NORMAL`` trades the
fsync of every commit for speed (FULL, the default, makes every write durable).
"""

from __future__ import annotations

import os
import sqlite3
from _thread import _local as _ThreadLocal  # what threading.local is
from _thread import allocate_lock as _new_lock  # what threading.Lock is
from _weakref import ref as _weak_ref  # what weakref.ref is
from collections.abc import Callable, Sequence

from ..core.errors import BackendUnavailableError, ConfigurationError, StateboxError, quoted
from ..core.model import Keyspace
from .base import Capabilities
from .sql import SCHEMA_VERSION, Dialect, SqlBackend, SqlConnection

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar, TypeVar

    T = TypeVar("T")

__all__ = ["SqliteBackend", "sqlite_path_from_url"]

SQLITE = Dialect(
    name="sqlite",
    param="?",
    blob="BLOB",
    bigint="INTEGER",
    history_id="INTEGER NOT NULL",  # per key: its newest id + 1
    lock_row="",  # BEGIN IMMEDIATE already holds the database's write lock
    clustered=True,
)
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


# A URL without these characters (no query, fragment or %-escape, nothing urlsplit would
# remove) means exactly its text: read without urllib.parse, which (with ipaddress) would
# cost every command-line start-up more than the read itself.
_URL_SYNTAX = frozenset("?#%\t\r\n")


def sqlite_path_from_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel/x.db`` → ``rel/x.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    path = url.removeprefix("sqlite:///")
    if path != url and path not in ("", "/") and _URL_SYNTAX.isdisjoint(path):
        return path, {}
    return _parse_sqlite_url(url)


def _parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    from urllib.parse import parse_qs, unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced "[" in the host part
        raise ConfigurationError(f"invalid SQLite store URL {quoted(url)}: {exc}") from exc
    if parts.scheme != "sqlite" or parts.netloc:
        raise ConfigurationError(
            f"invalid SQLite store URL {quoted(url)}: use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    raw = unquote(parts.path)
    if not raw.startswith("/") or raw in ("/", "//"):
        raise ConfigurationError(f"invalid SQLite store URL {quoted(url)}: no database path")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return raw[1:], options


class _suppress:
    """``contextlib.suppress``: the exceptions of ``kinds`` raised in the block are
    ignored. (contextlib is not imported: a cold CLI command would pay for it.)"""

    __slots__ = ("kinds",)

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


#: Every open backend, so a forked child can drop the connections it inherited: weak
#: references by id(), each removing itself when its backend goes.
# (threading and weakref are not imported, nor _weakrefset for a WeakSet: a cold CLI
# command would pay about 1.5 ms for their Python layers and use none of it.)
_BACKENDS: dict[int, _weak_ref[SqliteBackend]] = {}


def _register(backend: SqliteBackend) -> None:
    key = id(backend)  # not reused before its backend is gone, and with it this entry

    def forget(_: object) -> None:
        _BACKENDS.pop(key, None)

    _BACKENDS[key] = _weak_ref(backend, forget)


def _after_fork_in_child() -> None:
    # The parent's connections are not the child's to use (SQLite forbids carrying one
    # across fork). A hook instead of comparing os.getpid() on every call: getpid is a
    # real system call, and _connection runs on every read and write.
    for reference in list(_BACKENDS.values()):
        backend = reference()
        if backend is None:
            continue
        backend._forget_connections()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


#: Faults after which a connection stays useless even once the fault ends: SQLite opened
#: the file read-only (it was, then: a read-only mount or file) and stays read-only, or
#: lost its handle on the file. The thread's connection is dropped; the next call opens
#: a new one, which works again as soon as the fault is gone.
_REOPEN_AFTER = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN})


def _needs_reopen(exc: BaseException) -> bool:
    """``exc`` (or the driver error it was translated from) is one of ``_REOPEN_AFTER``."""
    cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _REOPEN_AFTER  # primary code


def _translate(exc: sqlite3.Error, path: str, timeout: float) -> StateboxError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return _locked(path, timeout)
    primary = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if primary == sqlite3.SQLITE_FULL:
        return BackendUnavailableError(
            f"SQLite database {path}: {text}; nothing was written: free disk space, then retry"
        )
    if primary == sqlite3.SQLITE_READONLY:
        return BackendUnavailableError(
            f"SQLite database {path} cannot be written ({text}): check that its file system "
            "is mounted read-write and the file and its directory are writable, then retry"
        )
    return BackendUnavailableError(f"SQLite database {path}: {text}")


def _locked(path: str, timeout: float) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"SQLite database {path} stayed locked for {timeout:g}s by another writer; "
        "retry, or raise the timeout with ?timeout=SECONDS in the store URL"
    )


class SqliteBackend(SqlBackend):
    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=True,
        cross_machine=False,
        inline_reads=True,  # WAL readers never wait on the writer
        group_commit=True,  # write_together / try_write_together
        test_reset=True,
        store_wide_changes=True,  # one change counter (PRAGMA data_version) for the store
    )
    dialect = SQLITE

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, options = sqlite_path_from_url(url)
        try:
            self.timeout = float(options.get("timeout", "30"))
        except ValueError:
            raise ConfigurationError(f"invalid timeout in {quoted(url)}: not a number") from None
        self.synchronous = options.get("synchronous", "FULL").upper()
        if self.synchronous not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"invalid ?synchronous={self.synchronous} in {quoted(url)}: "
                f"use one of {', '.join(_SYNCHRONOUS)}"
            )
        self._local = _ThreadLocal()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = _new_lock()
        _register(self)
        self._watch: sqlite3.Connection | None = None
        self._watch_read_only = False
        self._watch_lock = _new_lock()
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot create the directory for SQLite database {self.path}: {exc}"
            ) from exc
        # Most opens find the schema current: check with a read, take the write lock
        # (and re-check under it) only when there is something to create.
        if self._read(self._schema_version) != SCHEMA_VERSION:
            self._write(self._ensure_schema)

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, self.timeout) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # Up to 32 MiB of pages per connection (SQLite's default is 2 MiB): a store
            # of 100,000 keys stays in memory, so a get costs about the same at 100,000
            # keys as at 1,000. Pages are cached as they are read: a short-lived command
            # uses a few.
            conn.execute("PRAGMA cache_size = -32768")
        except sqlite3.Error as exc:
            conn.close()  # opened, but a pragma failed (a read-only file…): not kept
            raise _translate(exc, self.path, self.timeout) from exc
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _forget_connections(self) -> None:
        """In a forked child: leave the parent's connections alone and open new ones."""
        self._local = _ThreadLocal()
        self._all = []
        # Another thread may have held either lock at the fork.
        self._all_lock = _new_lock()
        self._watch = None
        self._watch_lock = _new_lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            # SQLite opens a file it cannot write (a read-only mount) read-only, and the
            # connection stays so after the mount is writable again; so does every
            # connection this process opens on the file while one such is open (they
            # share its read-only shared-memory index). So a connection opened now is
            # used for one call only (_read, _write_connection).
            self._local.read_only = self._read_only()
        return conn

    def _read_only(self) -> bool:
        return os.path.exists(self.path) and not os.access(self.path, os.W_OK)

    def _write_connection(self) -> sqlite3.Connection:
        state = self._local.__dict__
        # (Inside write_together the group's own connection is in use: it stays.)
        if state.get("read_only") and not state.get("together"):
            self._drop_connection()
        return self._connection()

    def _failed(self, exc: sqlite3.Error) -> StateboxError:
        """``exc`` translated; after a fault this thread's connection would keep (see
        ``_REOPEN_AFTER``), the connection is dropped so the next call opens a new one."""
        if _needs_reopen(exc):
            self._drop_connection()
        return _translate(exc, self.path, self.timeout)

    def _drop_connection(self) -> None:
        conn: sqlite3.Connection | None = self._local.__dict__.pop("conn", None)
        cursor: sqlite3.Cursor | None = self._local.__dict__.pop("cursor", None)
        self._local.__dict__.pop("read_only", None)
        if cursor is not None:
            # Its last statement, still referenced (by a traceback, say), would keep the
            # closed connection alive, and with it the read-only state this drop ends.
            with _suppress(sqlite3.Error):
                cursor.close()
        if conn is None:
            return
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        with _suppress(sqlite3.Error):  # it failed already: closing is all that is left
            conn.close()

    def _read(self, work: Callable[[SqlConnection], T]) -> T:
        # The hot path of every get: no context-manager machinery.
        try:
            return work(self._connection())
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        finally:
            state = self._local.__dict__
            if state.get("read_only") and not state.get("together"):  # see _connection
                self._drop_connection()

    def _write_cursor(self) -> sqlite3.Cursor:
        # One cursor per thread for writes: Connection.execute makes a new cursor for
        # every statement, and a set runs five or six. Each statement runs to its end or
        # is reset by the next one, so none holds a read open past its transaction.
        cursor: sqlite3.Cursor | None = self._local.__dict__.get("cursor")
        if cursor is None or self._local.__dict__.get("read_only"):  # see _write_connection
            cursor = self._local.cursor = self._write_connection().cursor()
        return cursor

    def _write(self, work: Callable[[SqlConnection], T]) -> T:
        # The hot path of every set: no context-manager machinery.
        db = self._write_cursor()
        if self._local.__dict__.get("together"):
            # Inside write_together: the group's transaction is open and this call has
            # its own savepoint, which undoes this work if it fails.
            try:
                return work(db)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, self.timeout) from exc
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                if db.connection.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return result

    def write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Run ``calls`` (engine writes on this thread) in one transaction: one commit,
        so one fsync, for all of them — group commit, for a server's many writers.

        Each call gets its own savepoint: one that raises is undone alone and its
        exception is its outcome; the others still commit. If SQLite abandons the whole
        transaction (a full disk, an I/O error) or the commit fails, nothing was
        saved, and every call's outcome is that error. The calls see each other's
        writes in order, as if they had run one after another.
        """
        conn = self._write_connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [self._failed(exc)] * len(calls)
        return self._run_together(conn, calls)

    def try_write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception] | None:
        """:meth:`write_together`, or None at once (nothing ran) if another connection
        holds the write lock: for a caller that must not wait, such as an event loop."""
        conn = self._write_connection()
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with _suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return None
            return [self._failed(exc)] * len(calls)
        return self._run_together(conn, calls)

    def locked_error(self) -> BackendUnavailableError:
        """What a write that waited the whole timeout for the write lock reports."""
        return _locked(self.path, self.timeout)

    def _run_together(
        self, conn: sqlite3.Connection, calls: Sequence[Callable[[], T]]
    ) -> list[T | Exception]:
        outcomes: list[T | Exception] = []
        try:
            self._local.together = True
            try:
                for call in calls:
                    conn.execute("SAVEPOINT call")
                    try:
                        outcomes.append(call())
                    except Exception as exc:
                        if not conn.in_transaction:  # SQLite rolled everything back
                            raise
                        conn.execute("ROLLBACK TO call")
                        outcomes.append(exc)
                    conn.execute("RELEASE call")
                conn.execute("COMMIT")
            finally:
                self._local.together = False
        except BaseException as exc:
            if conn.in_transaction:
                with _suppress(sqlite3.Error):  # the first error is the one worth reporting
                    conn.execute("ROLLBACK")
            if not isinstance(exc, Exception):
                raise
            failure: Exception = exc
            if isinstance(exc, sqlite3.Error):
                failure = self._failed(exc)
            elif _needs_reopen(exc):
                self._drop_connection()
            return [failure] * len(calls)
        if any(isinstance(outcome, Exception) and _needs_reopen(outcome) for outcome in outcomes):
            self._drop_connection()  # e.g. a read-only file: the next group reopens it
        return outcomes

    @staticmethod
    def _schema_version(db: SqlConnection) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def _ensure_schema(self, db: SqlConnection) -> None:
        version = self._schema_version(db)
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"SQLite database {self.path} has schema version {version}, newer than this "
                f"statebox understands ({SCHEMA_VERSION}): upgrade statebox"
            )
        if version < SCHEMA_VERSION:
            for statement in self.dialect.schema():
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def change_token(self, keyspace: Keyspace) -> int:
        # PRAGMA data_version changes whenever another connection — any thread's write
        # connection here, any other process — commits. The watch connection never
        # writes, so its data_version is a change token that costs writers nothing.
        with self._watch_lock:
            if self._watch is None:  # first use, or in a forked child (_forget_connections)
                self._watch = self._connect()
                self._watch_read_only = self._read_only()
            watch = self._watch
            try:
                return int(watch.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, self.timeout) from exc
            finally:
                if self._watch_read_only:  # see _connection: not kept while read-only
                    self._watch = None
                    watch.close()

    def wait_for_change(self, keyspace: Keyspace, token: int, timeout: float) -> int:
        # Sleeps until the database or its WAL is written (inotify on its directory; a
        # polling fallback elsewhere), then re-reads the pragma: never a read of the
        # entries, and no CPU while idle (backends/_fswait.py).
        from ._fswait import wait_for_token  # only watchers need it

        directory, name = os.path.split(os.path.abspath(self.path))
        names = (name, name + "-wal", name + "-journal")
        return wait_for_token(lambda: self.change_token(keyspace), token, timeout, directory, names)

    def reset(self) -> SqliteBackend:
        """Test mode: close, remove the database file (and its WAL files), open anew."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with _suppress(FileNotFoundError):
                os.remove(self.path + suffix)
        return SqliteBackend(self.url)

    def close(self) -> None:
        with self._watch_lock:
            self._watch = None
        with self._all_lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()
        self._local = _ThreadLocal()
