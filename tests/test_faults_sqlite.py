"""SQLite under real faults (issue #12 §8): a full disk, a read-only file system, the write
lock held by another process. Each is reported as BackendUnavailableError (HTTP 503),
loses no acknowledged write, and the same store (or server) works again once the fault
ends; reads go on being answered meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from statebox.core.errors import BackendUnavailableError

from .conftest import make_store
from .faults import Ledger, fill_until_503, fill_until_unavailable, read_only_view, small_disk
from .server_util import running_server
from .sqlite_lock import hold_write_lock

PREFIX = "/v1/kv/dag/feed-sync"  # the keyspace conftest.CONTEXT's store writes to


def test_full_disk_is_unavailable_reads_go_on_and_writes_recover(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        store = make_store(f"sqlite:///{disk.path / 'state.db'}")
        try:
            ledger = Ledger()
            failure = fill_until_unavailable(store, ledger)
            assert "full" in str(failure) and "free disk space" in str(failure)
            with pytest.raises(BackendUnavailableError):  # still full: still refused
                store.set("one-more", "y" * 20000)
            ledger.check_store(store)  # reads are answered while the disk is full
            disk.grow()
            store.set("after", 1)
            ledger.check_store(store)
        finally:
            store.close()


def test_read_only_file_system_then_writable_again_same_store(tmp_path: Path) -> None:
    source = tmp_path / "data"
    ledger = Ledger()
    # The database stays open elsewhere (as when an application runs on it), so its WAL
    # files exist: SQLite can read a WAL database on a read-only file system only then.
    writer = make_store(f"sqlite:///{source / 'state.db'}")
    for i in range(5):
        ledger.record(f"k{i}", writer.set(f"k{i}", i).version, i)
    with writer, read_only_view(source, tmp_path / "view") as view:
        store = make_store(f"sqlite:///{view.path / 'state.db'}")
        try:
            with pytest.raises(BackendUnavailableError, match="read"):  # read-only, readonly
                store.set("k0", "refused")
            ledger.check_store(store)  # reads work on the read-only file
            view.writable()
            # The fault is over: the same store writes again (before: SQLite's connection
            # stayed read-only for good, "attempt to write a readonly database").
            ledger.record("k0", store.set("k0", "accepted").version, "accepted")
            ledger.check_store(store)
        finally:
            store.close()


def test_closed_database_on_a_read_only_file_system_is_unavailable(tmp_path: Path) -> None:
    source = tmp_path / "data"
    with make_store(f"sqlite:///{source / 'state.db'}") as writer:
        writer.set("k", 1)  # closed cleanly: no WAL files are left, none can be made
    with read_only_view(source, tmp_path / "view") as view:
        with pytest.raises(BackendUnavailableError, match="unable to open"):
            make_store(f"sqlite:///{view.path / 'state.db'}")
        view.writable()
        with make_store(f"sqlite:///{view.path / 'state.db'}") as store:
            assert store.get("k").value == 1


def test_write_lock_held_by_another_process_then_released(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = make_store(f"sqlite:///{db}?timeout=0.3")
    try:
        ledger = Ledger()
        ledger.record("k", store.set("k", 1).version, 1)
        holder = hold_write_lock(db, 1.5)
        try:
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError, match="stayed locked"):
                store.set("k", 2)
            assert time.monotonic() - started < 1.2  # the timeout, not the holder's hold
            ledger.check_store(store)  # WAL: reads are not blocked by the writer
        finally:
            holder.wait(timeout=10)
        ledger.record("k", store.set("k", 3).version, 3)
        ledger.check_store(store)
    finally:
        store.close()


# -- the same faults through a real server ---------------------------------------------


def test_server_full_disk_is_503_gets_stay_200_and_writes_recover(tmp_path: Path) -> None:
    with (
        small_disk(tmp_path / "disk") as disk,
        running_server(f"sqlite:///{disk.path / 'state.db'}") as server,
    ):
        http = server.client
        prefix = "/v1/kv/global/_"
        ledger = Ledger()
        error = fill_until_503(http, prefix, ledger)
        assert error["kind"] == "backend_unavailable"
        assert str(disk.path) not in error["message"]  # no paths to clients (SPEC §8)
        ledger.check_http(http, prefix)  # gets: 200 while writes are refused
        assert http.get("/healthz").status_code == 200
        disk.grow()
        answer = http.put(f"{prefix}/after", json=1)
        assert answer.status_code == 200, answer.text
        ledger.check_http(http, prefix)
        assert server.alive


def test_server_read_only_file_system_is_503_then_recovers(tmp_path: Path) -> None:
    source = tmp_path / "data"
    writer = make_store(f"sqlite:///{source / 'state.db'}")  # open: its WAL files exist
    writer.set("k", 1, scope="global")
    with (
        writer,
        read_only_view(source, tmp_path / "view") as view,
        running_server(f"sqlite:///{view.path / 'state.db'}") as server,
    ):
        http = server.client
        refused = http.put("/v1/kv/global/_/k", json=2)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["kind"] == "backend_unavailable"
        assert http.get("/v1/kv/global/_/k").json()["value"] == 1
        view.writable()
        accepted = http.put("/v1/kv/global/_/k", json=3)
        assert accepted.status_code == 200, accepted.text  # before: 503 until a restart
        assert http.get("/v1/kv/global/_/k").json()["version"] == 2


def test_server_write_lock_held_elsewhere_is_503_reads_stay_200(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with running_server(f"sqlite:///{db}?timeout=0.3") as server:
        http = server.client
        assert http.put("/v1/kv/global/_/k", json=1).status_code == 200
        holder = hold_write_lock(db, 1.5)
        try:
            refused = http.put("/v1/kv/global/_/k", json=2)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["kind"] == "backend_unavailable"
            assert http.get("/v1/kv/global/_/k").json()["value"] == 1
        finally:
            holder.wait(timeout=10)
        assert http.put("/v1/kv/global/_/k", json=3).json()["version"] == 2
