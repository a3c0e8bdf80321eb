"""Worker processes for the cross-process tests: ``python -m tests.workers MODE URL KEY N``.

``cas``: N read-compare-and-set-retry increments of ``{"n": ...}`` at KEY. Prints the
number of conflicts it retried, so tests can check the race was real.

``update``: N ``update(jq=".n += 1")`` increments of KEY, with no retry loop of its own
(the store retries internally). It connects and warms up jq, says ``ready``, waits for
a line on stdin (``go``), then prints the retries the store needed. :func:`race_processes`
starts a set of them and lets them all go at once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from statebox import ConflictError, RunContext, StateStore, open_store

ROOT = Path(__file__).resolve().parent.parent


def cas_increments(store: StateStore, key: str, count: int) -> int:
    conflicts = 0
    done = 0
    while done < count:
        current = store.get(key, scope="global")
        n = current.value["n"] if current.found else 0
        try:
            store.set(key, {"n": n + 1}, scope="global", expected_version=current.version)
        except ConflictError:
            conflicts += 1
            continue
        done += 1
    return conflicts


def update_increments(store: StateStore, key: str, count: int) -> int:
    """``count`` increments, no retry loop here; the internal retries they needed."""
    retries = 0
    for _ in range(count):
        result = store.update(key, jq=".n += 1", default={"n": 0}, scope="global")
        retries += result.retries
    return retries


def race_processes(urls: Sequence[str], key: str, updates: int, timeout: float) -> int:
    """One ``update`` worker per URL (``updates`` increments of ``key`` each), all let go
    at once; the sum of the retries they needed. Each worker must end within
    ``timeout`` seconds of the start."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.workers", "update", url, key, str(updates)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    try:
        for proc in procs:  # every worker has started, connected and warmed up jq
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":  # it ended before it was ready: show why
                proc.kill()
                _, err = proc.communicate(timeout=timeout)
                raise AssertionError(f"a worker was not ready ({line!r}): {err}")
        for proc in procs:  # then all start at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        retries = 0
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            retries += int(out)
        return retries
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main(argv: list[str]) -> int:
    mode, url, key, count = argv[0], argv[1], argv[2], int(argv[3])
    if mode == "cas":
        with open_store(url, context=RunContext(dag="race", run_id=str(count))) as store:
            print(cas_increments(store, key, count))
        return 0
    if mode == "update":
        with open_store(url, context=RunContext(dag="race")) as store:
            store.update("race/warm-up", jq=".", scope="run", namespace="warm")
            print("ready", flush=True)
            sys.stdin.readline()
            print(update_increments(store, key, count), flush=True)
        return 0
    print(f"unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
