"""Real faults for the fault-injection tests: small file systems that fill up, mounts that
turn read-only and back, PostgreSQL backends terminated and servers stopped, and an
acknowledged-writes ledger to check nothing was lost.

Faults are made with the kernel, not mocks: a size-limited ``tmpfs`` is a disk that
fills up (and ``remount,size=`` frees space again), a read-only bind mount is a
read-only file system (chmod would not do: the tests run as root, and root ignores
permissions). Mounting needs root (or CAP_SYS_ADMIN): where it is impossible the tests
are skipped, except under ``CI=true``, where they fail. Every mount is undone by the
context manager that made it, whatever the test did.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from statebox import StateStore
from statebox.core.errors import BackendUnavailableError

__all__ = [
    "Ledger",
    "ReadOnlyView",
    "SmallDisk",
    "fill_until_503",
    "fill_until_unavailable",
    "pg_ctl",
    "read_only_view",
    "small_disk",
    "terminate_waiting",
]


def _cannot(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"fault injection cannot run under CI: {reason}")
    pytest.skip(f"fault injection needs mounts (run as root): {reason}")


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {result.stderr.strip()}")


def _umount(path: Path) -> None:
    # Lazy: a store still holding files open must not keep the mount (and the test) alive.
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@dataclass
class SmallDisk:
    """A tmpfs of a few hundred KiB: a disk that fills up."""

    path: Path

    def grow(self, size: str = "16m") -> None:
        """Free space: the fault ends."""
        _mount("-o", f"remount,size={size}", str(self.path))


@contextmanager
def small_disk(where: Path, size: str = "512k") -> Iterator[SmallDisk]:
    where.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where))
    except OSError as exc:
        _cannot(str(exc))
    try:
        yield SmallDisk(where)
    finally:
        _umount(where)


@dataclass
class ReadOnlyView:
    """``path`` shows the directory ``source`` through a bind mount that can be switched
    between read-only and read-write while stores keep using it."""

    source: Path
    path: Path

    def read_only(self) -> None:
        _mount("-o", "remount,bind,ro", str(self.path))

    def writable(self) -> None:
        _mount("-o", "remount,bind,rw", str(self.path))


@contextmanager
def read_only_view(source: Path, where: Path) -> Iterator[ReadOnlyView]:
    """A bind mount of ``source`` at ``where``, read-only from the start.

    (A mount with files open for writing cannot be remounted read-only: the kernel says
    busy. So a store is opened on the read-only view, which is what a real read-only
    mount looks like to a process started on it; the fault ends with ``writable()``.)
    """
    source.mkdir(parents=True, exist_ok=True)
    where.mkdir(parents=True, exist_ok=True)
    try:
        _mount("--bind", str(source), str(where))
    except OSError as exc:
        _cannot(str(exc))
    try:
        view = ReadOnlyView(source, where)
        view.read_only()
        yield view
    finally:
        _umount(where)


@dataclass
class Ledger:
    """Acknowledged writes: key -> (version, value) of the last acknowledged one."""

    acked: dict[str, tuple[int, Any]] = field(default_factory=dict)

    def record(self, key: str, version: int, value: Any) -> None:
        self.acked[key] = (version, value)

    def check_store(self, store: StateStore, **where: Any) -> None:
        """Every acknowledged write is what the store holds now."""
        assert self.acked, "the test acknowledged no write: it proves nothing"
        for key, (version, value) in self.acked.items():
            got = store.get(key, **where)
            assert (got.found, got.version, got.value) == (True, version, value), key

    def check_http(self, client: httpx.Client, prefix: str) -> None:
        assert self.acked, "the test acknowledged no write: it proves nothing"
        for key, (version, value) in self.acked.items():
            got = client.get(f"{prefix}/{key}")
            assert got.status_code == 200, got.text
            body = got.json()
            assert (body["found"], body["version"], body["value"]) == (True, version, value), key


def _filler(i: int) -> str:
    return f"{i:06d}" + "x" * 3000  # a few KiB a write: a 512 KiB disk fills in ~100


def fill_until_unavailable(store: StateStore, ledger: Ledger, keys: int = 40) -> Exception:
    """Write until the store reports the disk full; returns that error."""
    for i in range(5000):
        key, value = f"k{i % keys}", _filler(i)
        try:
            result = store.set(key, value)
        except BackendUnavailableError as exc:
            return exc
        ledger.record(key, result.version, value)
    raise AssertionError("the small disk never filled up")


def fill_until_503(client: httpx.Client, prefix: str, ledger: Ledger, keys: int = 40) -> Any:
    """Write through a server until it answers 503; returns that answer's error body."""
    for i in range(5000):
        key, value = f"k{i % keys}", _filler(i)
        answer = client.put(f"{prefix}/{key}", json=value)
        if answer.status_code != 200:
            assert answer.status_code == 503, answer.text
            return answer.json()["error"]
        ledger.record(key, answer.json()["version"], value)
    raise AssertionError("the small disk never filled up")


# -- PostgreSQL -------------------------------------------------------------------------


def terminate_waiting(
    admin: Any, application_name: str, exclude: frozenset[int] = frozenset(), timeout: float = 10.0
) -> frozenset[int]:
    """Terminate the backends of ``application_name`` that wait for a lock, but those in
    ``exclude`` (terminated already, maybe not gone yet); returns their pids (waiting up
    to ``timeout`` for one to be waiting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = admin.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND wait_event_type = 'Lock' AND NOT pid = ANY(%s)",
            (application_name, list(exclude)),
        ).fetchall()
        if rows:
            return frozenset(row[0] for row in rows)
        time.sleep(0.01)
    raise AssertionError(f"no backend of {application_name} waited for a lock")


def pg_ctl(cluster: Any, action: str) -> None:
    """Stop (``stop``) or start (``start``) a tests.pg.ThrowawayCluster, keeping its data."""
    if action == "stop":
        cluster._run(str(cluster.bindir / "pg_ctl"), "stop", "-D", str(cluster.data), "-m", "fast")
        return
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
        f"-c unix_socket_directories={cluster.root} -c fsync=off"
    )
    cluster._run(
        str(cluster.bindir / "pg_ctl"),
        "start",
        "-D",
        str(cluster.data),
        "-l",
        str(cluster.log),
        "-w",
        "-t",
        "60",
        "-o",
        options,
    )
