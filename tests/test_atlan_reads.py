"""A read that fails is an error, never "no state" — and a save after it writes nothing.

The SDK 2.x reads with ``suppress_error=True``: an unreachable object store, an
unreadable object, is ``{}``; its ``save_state`` then uploads ``{key: value}`` over the
whole stored object. Here each failure raises a statebox error, and the stored object
is left as it was: a corrupt record (file backend), the store unreachable (a server
that is down, then back), a credential read under the wrong secret key, a ciphertext
altered in the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statebox import BackendUnavailableError, CorruptEntryError, StateboxError
from statebox.compat.atlan import StateStore, StateType
from statebox.core.errors import SecretKeyError

from .server_util import free_port, running_server
from .test_atlan_api import new_secret_key

SAVED = {"status": "running", "progress": 50, "config": {"batch_size": 1000}}


@pytest.fixture(autouse=True)
def atlan_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STATEBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATLAN_APPLICATION_NAME", "appName")
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    yield
    StateStore.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_corrupt_record_raises_and_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "file-store"
    monkeypatch.setenv("STATEBOX_STORE", f"file://{root}")
    run(StateStore.save_state_object("wf-1", SAVED, StateType.WORKFLOWS))
    records = [p for p in root.rglob("*.json") if "custom" in p.parts]
    assert len(records) == 1
    records[0].write_bytes(b'{"version": 1, "hash"')  # cut short
    with pytest.raises(CorruptEntryError):
        run(StateStore.get_state("wf-1", StateType.WORKFLOWS))
    with pytest.raises(CorruptEntryError):
        run(StateStore.save_state("progress", 75, "wf-1", StateType.WORKFLOWS))
    with pytest.raises(CorruptEntryError):
        run(StateStore.save_state_object("wf-1", {"progress": 75}, StateType.WORKFLOWS))
    assert records[0].read_bytes() == b'{"version": 1, "hash"'


def test_an_unreachable_store_raises_instead_of_no_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEBOX_STORE", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendUnavailableError):
        run(StateStore.get_state("wf-1", StateType.WORKFLOWS))
    with pytest.raises(BackendUnavailableError):
        run(StateStore.save_state("progress", 75, "wf-1", StateType.WORKFLOWS))


def test_a_save_during_an_outage_fails_and_wipes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's failure: one transient read failure, then save_state wrote {key: value}
    over the object. Here the save raises, and once the server is back the object is
    whole."""
    served = f"sqlite:///{tmp_path / 'served.db'}"
    with running_server(served) as server:
        monkeypatch.setenv("STATEBOX_STORE", server.url)
        run(StateStore.save_state_object("wf-1", SAVED, StateType.WORKFLOWS))
    # The server is down.
    with pytest.raises(BackendUnavailableError):
        run(StateStore.save_state("progress", 75, "wf-1", StateType.WORKFLOWS))
    with pytest.raises(BackendUnavailableError):
        run(StateStore.get_state("wf-1", StateType.WORKFLOWS))
    StateStore.close()
    with running_server(served) as server:  # back, on another port
        monkeypatch.setenv("STATEBOX_STORE", server.url)
        assert run(StateStore.get_state("wf-1", StateType.WORKFLOWS)) == SAVED
        run(StateStore.save_state("progress", 75, "wf-1", StateType.WORKFLOWS))
        assert run(StateStore.get_state("wf-1", StateType.WORKFLOWS)) == {**SAVED, "progress": 75}


CREDS = {"host": "db.example.com", "user": "svc", "password": "s3cr3t-pw"}


def test_credentials_under_the_wrong_key_raise_and_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEBOX_STORE", f"sqlite:///{tmp_path / 'state.db'}")
    right = new_secret_key()
    monkeypatch.setenv("STATEBOX_SECRET_KEY", right)
    run(StateStore.save_state_object("db-cred-456", CREDS, StateType.CREDENTIALS))
    StateStore.close()

    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())  # the wrong key
    with pytest.raises(SecretKeyError, match="wrong key"):
        run(StateStore.get_state("db-cred-456", StateType.CREDENTIALS))
    with pytest.raises(SecretKeyError):
        run(StateStore.save_state("password", "other", "db-cred-456", StateType.CREDENTIALS))
    StateStore.close()

    monkeypatch.setenv("STATEBOX_SECRET_KEY", right)
    assert run(StateStore.get_state("db-cred-456", StateType.CREDENTIALS)) == CREDS


def test_an_altered_ciphertext_raises_and_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "state.db"
    monkeypatch.setenv("STATEBOX_STORE", f"sqlite:///{db}")
    run(StateStore.save_state_object("db-cred-456", CREDS, StateType.CREDENTIALS))
    StateStore.close()
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute(
            "SELECT data FROM statebox_entries WHERE scope = 'custom' AND key = ?",
            (b"db-cred-456",),
        ).fetchone()
        altered = data[:-1] + bytes([data[-1] ^ 1])
        conn.execute("UPDATE statebox_entries SET data = ? WHERE data = ?", (altered, data))
    conn.close()

    with pytest.raises(CorruptEntryError):
        run(StateStore.get_state("db-cred-456", StateType.CREDENTIALS))
    with pytest.raises(CorruptEntryError):
        run(StateStore.save_state("user", "x", "db-cred-456", StateType.CREDENTIALS))
    StateStore.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT version, data FROM statebox_entries WHERE scope = 'custom'"
        ).fetchall()
    conn.close()
    assert rows == [(1, altered)]


def test_every_failure_is_a_statebox_error_not_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # What an app catches: statebox's root error (never a bare None to test for).
    monkeypatch.setenv("STATEBOX_STORE", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StateboxError):
        run(StateStore.save_state_object("x", {"a": 1}, StateType.CREDENTIALS))
