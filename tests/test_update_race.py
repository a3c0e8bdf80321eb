"""SPEC §5 update under a real race: 8 processes x 100 ``update(jq='.n += 1')`` on one key
end at exactly 800, with no retry loop in the caller — the store retries internally.

Runs on every backend in tests/backends.py: with processes where the backend is shared
across processes (SQLite, file, PostgreSQL, …), with threads where it lives in one
process (memory). A new backend joins by being added there. SQLite and memory take the
full 8 x 100; the others race 4 processes x 50, which proves the same property at a
fraction of the cost (on this 2-core machine each of them needs 20 to 40 s for 8 x 100,
mostly starting 16 interpreters, against a suite budget that all engineers share).

The worker side is this module itself: ``python -m tests.test_update_race URL N``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from statebox import RunContext, StateStore, open_store

from .conftest import make_store

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 8
UPDATES = 100
PROCESSES_ELSEWHERE = 4
UPDATES_ELSEWHERE = 50
KEY = "race/counter"


def increments(store: StateStore, count: int) -> int:
    """``count`` increments, no retry loop here; the internal retries they needed."""
    retries = 0
    for _ in range(count):
        result = store.update(KEY, jq=".n += 1", default={"n": 0}, scope="global")
        retries += result.retries
    return retries


def race_processes(url: str, processes: int, updates: int) -> int:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_update_race", url, str(updates)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:  # every worker has started, connected and warmed up jq
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # then all start at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        retries = 0
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            retries += int(out)
        return retries
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def race_threads(store: StateStore) -> int:
    barrier = threading.Barrier(PROCESSES)
    retries: list[int] = []

    def work() -> None:
        barrier.wait()
        retries.append(increments(store, UPDATES))

    threads = [threading.Thread(target=work) for _ in range(PROCESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(retries) == PROCESSES
    return sum(retries)


@pytest.mark.slow
def test_racing_updates_lose_nothing(backend_url: str) -> None:
    processes, updates = PROCESSES, UPDATES
    with make_store(backend_url) as store:
        if store.backend.capabilities.cross_process:
            if not backend_url.startswith("sqlite:"):
                processes, updates = PROCESSES_ELSEWHERE, UPDATES_ELSEWHERE
            retries = race_processes(backend_url, processes, updates)
            assert retries > 0  # the processes really collided, or this proves nothing
        else:
            race_threads(store)
        got = store.get(KEY, scope="global")
        total = processes * updates
        assert (got.value, got.version) == ({"n": total}, total)


def main(argv: list[str]) -> int:
    url, count = argv[0], int(argv[1])
    with open_store(url, context=RunContext(dag="race")) as store:
        store.update("race/warm-up", jq=".", scope="run", namespace="warm")
        print("ready", flush=True)
        sys.stdin.readline()
        print(increments(store, count), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
