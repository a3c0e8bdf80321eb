"""Real races (SPEC §3): concurrent read-CAS-retry increments never lose an update."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from statebox import StateStore

from .backends import BACKENDS
from .conftest import make_store

ROOT = Path(__file__).resolve().parent.parent
# memory:// lives inside one process; every other backend must be safe across processes.
SHARED_BACKENDS = [name for name in BACKENDS if name != "memory"]


@pytest.fixture(params=SHARED_BACKENDS)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with BACKENDS[request.param](tmp_path, request) as url:
        yield url


def run_workers(url: str, processes: int, increments: int, key: str = "counter") -> int:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.workers", "cas", url, key, str(increments)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    conflicts = 0
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        conflicts += int(out)
    return conflicts


@pytest.mark.slow
def test_processes_racing_cas_increments_lose_nothing(shared_url: str) -> None:
    conflicts = run_workers(shared_url, processes=4, increments=250)
    with make_store(shared_url) as store:
        got = store.get("counter", scope="global")
        assert got.value == {"n": 1000}
        assert got.version == 1000
    # the workers really overlapped (otherwise this test would prove nothing)
    assert conflicts > 0


def test_threads_sharing_one_store_lose_nothing(backend_url: str) -> None:
    from .workers import cas_increments

    with make_store(backend_url) as store:
        conflicts: list[int] = []
        barrier = threading.Barrier(4)

        def work(s: StateStore) -> None:
            barrier.wait()
            conflicts.append(cas_increments(s, "counter", 250))

        threads = [threading.Thread(target=work, args=(store,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = store.get("counter", scope="global")
        assert (got.value, got.version) == ({"n": 1000}, 1000)
        assert len(conflicts) == 4
