"""The writer that tests/test_file_crash.py kills: ``python -m tests.file_crash_writer URL SEED``.

Forever, at random: a CAS increment of ``cas/<j>`` (value ``{"n": version}``), the same
with a TTL on ``ttl/<j>``, or one transaction that moves all of ``txn/0..5`` from ``n`` to
``n + 1`` (padded, so its journal stays on disk for a while). After each write returns it
prints what it was told was written (``cas cas/1 17``, ``txn 9``), flushed at once.
"""

from __future__ import annotations

import random
import sys

from statebox import ConflictError, RunContext, open_store

TXN_KEYS = [f"txn/{i}" for i in range(6)]
PAD = "x" * 4000


def main(url: str, seed: int) -> None:
    rng = random.Random(seed)
    with open_store(url, context=RunContext(dag="crash", run_id=str(seed), step="w")) as store:
        print("ready", flush=True)
        while True:
            choice = rng.random()
            if choice < 0.5:
                current = [store.get(key) for key in TXN_KEYS]
                n = current[0].value["n"] if current[0].found else 0
                ops = [
                    {
                        "op": "set",
                        "key": key,
                        "value": {"n": n + 1, "pad": PAD},
                        "expected_version": got.version,
                    }
                    for key, got in zip(TXN_KEYS, current, strict=True)
                ]
                store.transaction(ops)
                print(f"txn {n + 1}", flush=True)
            else:
                key = f"{'ttl' if choice < 0.6 else 'cas'}/{rng.randrange(3)}"
                got = store.get(key)
                ttl = 3600 if key.startswith("ttl") else None
                try:
                    written = store.set(
                        key, {"n": got.version + 1}, expected_version=got.version, ttl=ttl
                    )
                except ConflictError:  # never expected: this is the only writer
                    print("conflict", flush=True)
                    raise
                print(f"cas {key} {written.version}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
