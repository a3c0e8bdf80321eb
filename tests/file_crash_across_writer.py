"""The writer tests/test_file_across.py kills: ``python -m tests.file_crash_across_writer URL``.

Forever: one ``apply_batch`` that moves ``x`` and ``y`` of four keyspaces (run, dag, global
and the reserved scope) from ``n`` to ``n + 1``, guarded by their versions (padded, so its
journal stays on disk for a while); after each returns it prints ``txn <n + 1>``, flushed.
"""

from __future__ import annotations

import sys
import time

from statebox.backends.base import Put, WriteContext
from statebox.backends.file import FileBackend
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.values import normalize

SPACES = (
    Keyspace("run", "crash/run-1"),
    Keyspace("dag", "crash"),
    Keyspace("global", "_"),
    Keyspace("statebox", "crash"),
)
KEYS = ("x", "y")
PAD = "x" * 4000


def main(url: str) -> None:
    backend = FileBackend(url)
    print("ready", flush=True)
    while True:
        now = time.time_ns()
        current = backend.get(SPACES[0], "x", now)
        version = current.version if current is not None else 0
        n = version  # every key holds version n, value n
        value = normalize({"n": n + 1, "pad": PAD})
        batches = [
            (ks, [Put(key, value, expected_version=version) for key in KEYS]) for ks in SPACES
        ]
        backend.apply_batch(batches, WriteContext(now, UpdatedBy(dag_name="crash")))
        print(f"txn {n + 1}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
