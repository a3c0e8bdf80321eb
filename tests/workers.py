"""Worker processes for the cross-process tests: ``python -m tests.workers MODE URL KEY N``.

``cas``: N read-compare-and-set-retry increments of ``{"n": ...}`` at KEY. Prints the
number of conflicts it retried, so tests can check the race was real.
"""

from __future__ import annotations

import sys

from statebox import ConflictError, RunContext, StateStore, open_store


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


def main(argv: list[str]) -> int:
    mode, url, key, count = argv[0], argv[1], argv[2], int(argv[3])
    with open_store(url, context=RunContext(dag="race", run_id=str(count))) as store:
        if mode == "cas":
            print(cas_increments(store, key, count))
            return 0
    print(f"unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
