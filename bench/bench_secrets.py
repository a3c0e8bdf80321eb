"""Secret keyspaces and the Atlan StateStore (issue 16), each beside its baseline.

- Sealing: sets, gets and updates on a SQLite store in a secret keyspace (AES-GCM,
  keyed hash, the version read an unguarded set needs) beside the same operations in a
  plain keyspace of the same store, in alternating blocks.
- The Atlan StateStore: 20 tasks (each its own thread and event loop) setting different
  fields of one object at once, 10 rounds; statebox's ``save_state`` beside the SDK's
  ``save_state`` as the research describes it (get, set one field, write the object
  back, unguarded), on the same store. The figure is the fields that survive.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from statebox import RunContext, open_store
from statebox.backends import generate_key

from .common import Row, Section, interleaved

OPS = 2_000
BLOCK = 200
TASKS = 20
ROUNDS = 10
CTX = RunContext(dag="bench", run_id="1", step="s")
SECRET = {"user": "app", "password": "hunter2-s3cr3t", "host": "db.internal", "port": 5432}


def _sealing_rows(workdir: Path) -> list[Row]:
    store = open_store(f"sqlite:///{workdir / 'sealed.db'}", context=CTX)
    secret = {"scope": "global", "namespace": "creds"}
    plain = {"scope": "global", "namespace": "plain"}
    rows = []
    for name, op in (
        ("set", lambda i, ks: store.set(f"k{i % 100}", SECRET, **ks)),
        ("get", lambda i, ks: store.get(f"k{i % 100}", **ks)),
        ("update (jq)", lambda i, ks: store.update(f"n{i % 10}", jq="(. // 0) + 1", **ks)),
    ):

        def side(ks: dict[str, str], op: Any = op) -> Any:
            return lambda indexes: [op(i, ks) for i in indexes]

        sealed, baseline = interleaved(OPS, side(secret), side(plain), BLOCK)
        rows.append(Row(f"{name} in a secret keyspace", "ops/s", sealed, baseline))
    store.close()
    return rows


def _sdk_save_state(store: Any, field: str, value: Any, ks: dict[str, str]) -> None:
    """The SDK 2.8's save_state: read (a failure is "no state"), set, write back whole."""
    try:
        current = store.get("wf", **ks).value or {}
    except Exception:
        current = {}
    current[field] = value
    store.set("wf", current, **ks)


def _race(run_one: Any) -> None:
    """TASKS threads, released together, each setting its own field once."""
    go = threading.Barrier(TASKS)

    def task(n: int) -> None:
        go.wait()
        run_one(f"field{n}", n)

    threads = [threading.Thread(target=task, args=(n,)) for n in range(TASKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _atlan_rows(workdir: Path) -> list[Row]:
    from statebox.compat.atlan import StateStore, StateType

    url = f"sqlite:///{workdir / 'atlan.db'}"
    os.environ["STATEBOX_STORE"] = url
    os.environ["ATLAN_APPLICATION_NAME"] = "bench"
    sdk_store = open_store(url, context=CTX)
    ks = {"scope": "custom", "namespace": "atlan-bench-sdk"}
    kept = [0, 0]
    for round_ in range(ROUNDS):
        object_id = f"wf-{round_}"

        def statebox_one(field: str, value: int, object_id: str = object_id) -> None:
            asyncio.run(StateStore.save_state(field, value, object_id, StateType.WORKFLOWS))

        _race(statebox_one)
        state = asyncio.run(StateStore.get_state(object_id, StateType.WORKFLOWS)) or {}
        kept[0] += len(state)
        sdk_store.delete("wf", **ks)
        _race(lambda field, value: _sdk_save_state(sdk_store, field, value, ks))
        kept[1] += len(sdk_store.get("wf", **ks).value or {})
    StateStore.close()
    sdk_store.close()
    total = TASKS * ROUNDS
    return [
        Row(
            f"fields kept of {total} ({ROUNDS} rounds of {TASKS} concurrent save_state)",
            "fields",
            kept[0],
            kept[1],
            f"all {total}",
            kept[0] == total,
        )
    ]


def run(workdir: Path) -> list[Section]:
    os.environ["STATEBOX_SECRET_NAMESPACES"] = "global/creds"
    os.environ["STATEBOX_SECRET_KEY"] = generate_key()
    return [
        Section(
            "Secret keyspace on SQLite",
            "a plain keyspace of the same store",
            _sealing_rows(workdir),
        ),
        Section(
            "Atlan StateStore, concurrent save_state on SQLite",
            "the SDK 2.8's unguarded read-modify-write",
            _atlan_rows(workdir),
        ),
    ]
