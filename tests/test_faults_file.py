"""The file store (Dagu layout) under real faults (issue #12 §8): a full disk and a
read-only directory. Each is reported as BackendUnavailableError (HTTP 503), loses no
acknowledged write, leaves no temp file behind, and the same store (or server) works
again once the fault ends; reads go on being answered meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from statebox import SetOp
from statebox.backends.file._fsio import TEMP_PREFIX
from statebox.core.errors import BackendUnavailableError

from .conftest import make_store
from .faults import Ledger, fill_until_503, fill_until_unavailable, read_only_view, small_disk
from .server_util import running_server


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*") if p.is_file()]


def test_full_disk_is_unavailable_reads_go_on_and_writes_recover(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        root = disk.path / "store"
        store = make_store(f"file://{root}")
        try:
            ledger = Ledger()
            failure = fill_until_unavailable(store, ledger)
            assert "No space left" in str(failure)
            for i in range(3):  # still full: still refused, never half-written
                with pytest.raises(BackendUnavailableError):
                    store.set(f"k{i}", "y" * 20000)
            ledger.check_store(store)
            assert _temp_files(root) == []
            # A transaction (journaled: several records) is refused whole, too.
            with pytest.raises(BackendUnavailableError):
                store.transaction([SetOp(f"k{i}", "z" * 20000) for i in range(4)])
            ledger.check_store(store)
            disk.grow()
            ledger.record("k0", store.set("k0", "after").version, "after")
            ledger.check_store(store)
            for i in range(40):  # the history of every key is still readable
                store.history(f"k{i}")
        finally:
            store.close()


def test_read_only_directory_then_writable_again_same_store(tmp_path: Path) -> None:
    source = tmp_path / "data"
    ledger = Ledger()
    with make_store(f"file://{source}/store") as writer:
        for i in range(5):
            ledger.record(f"k{i}", writer.set(f"k{i}", i).version, i)
    with read_only_view(source, tmp_path / "view") as view:
        store = make_store(f"file://{view.path}/store")
        try:
            with pytest.raises(BackendUnavailableError, match="Read-only file system"):
                store.set("k0", "refused")
            with pytest.raises(BackendUnavailableError):
                store.delete("k1")
            ledger.check_store(store)  # reads work on the read-only directory
            view.writable()
            ledger.record("k0", store.set("k0", "accepted").version, "accepted")
            store.delete("k1")
            del ledger.acked["k1"]
            ledger.check_store(store)
        finally:
            store.close()


def test_server_full_disk_is_503_gets_stay_200_and_writes_recover(tmp_path: Path) -> None:
    with (
        small_disk(tmp_path / "disk") as disk,
        running_server(f"file://{disk.path / 'store'}") as server,
    ):
        http = server.client
        prefix = "/v1/kv/global/_"
        ledger = Ledger()
        error = fill_until_503(http, prefix, ledger)
        assert error["kind"] == "backend_unavailable"
        ledger.check_http(http, prefix)
        disk.grow()
        answer = http.put(f"{prefix}/after", json=1)
        assert answer.status_code == 200, answer.text
        ledger.check_http(http, prefix)
        assert _temp_files(disk.path) == []
