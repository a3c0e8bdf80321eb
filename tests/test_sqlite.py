"""SQLite-specific behaviour: URLs, default location, WAL, busy waits, schema version."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from statebox import BackendUnavailableError, ConfigurationError, RunContext, open_store
from statebox.backends.sqlite import SqliteBackend, sqlite_path_from_url
from statebox.config import default_store_url, resolve_store_url, statebox_home

from .sqlite_lock import hold_write_lock

CTX = RunContext(dag="d")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///state.db", "state.db"),
        ("sqlite:///rel/dir/state.db", "rel/dir/state.db"),
        ("sqlite:////abs/state.db", "/abs/state.db"),
        ("sqlite:////abs/with%20space.db?timeout=2", "/abs/with space.db"),
    ],
)
def test_sqlalchemy_style_urls(url: str, path: str) -> None:
    assert str(sqlite_path_from_url(url)[0]) == path


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite://", "sqlite:///", "sqlite:x.db"])
def test_bad_sqlite_urls(url: str) -> None:
    with pytest.raises(ConfigurationError, match="SQLite store URL"):
        sqlite_path_from_url(url)


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        SqliteBackend(f"sqlite:///{tmp_path}/a.db?timeout=soon")
    with pytest.raises(ConfigurationError, match="synchronous"):
        SqliteBackend(f"sqlite:///{tmp_path}/a.db?synchronous=maybe")


def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///sub/state.db", context=CTX) as store:
        store.set("k", 1)
    assert (tmp_path / "sub" / "state.db").exists()


def test_default_location_and_overrides(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert statebox_home({"HOME": home}) == Path.home() / ".local/share/statebox"
    assert statebox_home({"XDG_DATA_HOME": "/xdg"}) == Path("/xdg/statebox")
    assert statebox_home({"XDG_DATA_HOME": "/xdg", "STATEBOX_HOME": "/sb"}) == Path("/sb")
    assert default_store_url({"STATEBOX_HOME": "/sb"}) == "sqlite:////sb/state.db"
    env = {"STATEBOX_HOME": "/sb", "STATEBOX_STORE": "memory://"}
    assert resolve_store_url(None, env) == "memory://"
    assert resolve_store_url("sqlite:///x.db", env) == "sqlite:///x.db"


def test_default_store_is_created_under_statebox_home(tmp_path: Path) -> None:
    env = {"STATEBOX_HOME": str(tmp_path / "sbhome")}
    with open_store(environ=env, context=CTX) as store:
        store.set("k", 1)
    assert (tmp_path / "sbhome" / "state.db").is_file()
    with open_store(environ=env, context=CTX) as store:
        assert store.get("k").value == 1


def test_wal_mode_and_durable_commits(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_store(f"sqlite:///{db}", context=CTX) as store:
        store.set("k", 1)
        conn = store.backend._connection()  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported store URL"):
        open_store("nosuch://x", context=CTX)


def test_a_busy_database_is_waited_for(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_store(f"sqlite:///{db}?timeout=10", context=CTX) as store:
        store.set("k", 1)
        holder = hold_write_lock(db, 0.5)
        start = time.monotonic()
        assert store.set("k", 2).version == 2  # waited, not dropped
        assert time.monotonic() - start >= 0.3
        holder.wait()


def test_a_database_busy_past_the_timeout_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_store(f"sqlite:///{db}?timeout=0.2", context=CTX) as store:
        store.set("k", 1)
        holder = hold_write_lock(db, 2)
        try:
            with pytest.raises(BackendUnavailableError, match=r"stayed locked for 0\.2s"):
                store.set("k", 2)
        finally:
            holder.kill()
            holder.wait()
        assert store.get("k").version == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    open_store(f"sqlite:///{db}", context=CTX).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigurationError, match="schema version 99"):
        open_store(f"sqlite:///{db}", context=CTX)


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendUnavailableError, match=r"state\.db"):
        open_store(f"sqlite:///{db}", context=CTX)
    assert db.read_bytes().startswith(b"this is not a database")


def test_an_unwritable_location_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BackendUnavailableError, match="cannot create the directory"):
        open_store(f"sqlite:///{blocker}/sub/state.db", context=CTX)


def test_a_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    import os

    db = tmp_path / "state.db"
    with open_store(f"sqlite:///{db}", context=CTX) as store:
        store.set("k", 1)
        pid = os.fork()
        if pid == 0:  # child
            try:
                store.set("k", store.get("k").value + 1)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert store.get("k").value == 2


def test_a_forked_child_watches_with_its_own_connection(tmp_path: Path) -> None:
    import os

    with open_store(f"sqlite:///{tmp_path / 'state.db'}", context=CTX) as store:
        backend = store.backend.inner  # under the sealing layer open_store puts over it
        assert isinstance(backend, SqliteBackend)
        keyspace = store.keyspace()
        before = backend.change_token(keyspace)  # opens the parent's watch connection
        parents = backend._watch
        pid = os.fork()
        if pid == 0:  # child: the at-fork hook dropped the parent's watch connection
            try:
                forgotten = backend._watch is None
                token = backend.change_token(keyspace)
                store.set("k", 1)
                seen = backend.change_token(keyspace) != token
                os._exit(0 if forgotten and seen and backend._watch is not parents else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert backend._watch is parents
        assert backend.change_token(keyspace) != before  # the child's write
