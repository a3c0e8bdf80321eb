"""A writer process for tests/test_sealed_rotation.py: ``python -m tests.sealed_writer URL I
ITEMS``.

Each round increments, in the secret keyspace custom/vault, its own counter ``own-I``, the
shared counter ``shared`` and the ``n`` of one item ``item/NNNN`` picked at random among
the first ITEMS (entries the rotation is re-sealing at the same moment), each with
``update(jq=...)``: the store retries conflicts inside. It says ``ready`` once it has
connected (and loaded jq and the key), waits for ``go``, goes on until it reads ``stop``,
then prints one JSON line: ``{"rounds": R, "retries": N, "items": {key: increments}}``.
The keys come from the environment (STATEBOX_SECRET_NAMESPACES, STATEBOX_SECRET_KEY or
STATEBOX_SECRET_KEY_FILE), as for any statebox process.
"""

from __future__ import annotations

import json
import random
import select
import sys
from collections import Counter
from typing import Any

from statebox import RunContext, open_store

VAULT: dict[str, Any] = {"scope": "custom", "namespace": "vault"}


def main(url: str, index: str, items: str) -> None:
    own = f"own-{index}"
    pick = random.Random(int(index))
    touched: Counter[str] = Counter()
    with open_store(url, context=RunContext(dag="sealed-writer", step=index)) as store:
        store.update(own, jq=".", default={"n": 0}, **VAULT)  # connect, jq, the key
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("expected go")
        rounds = retries = 0
        while not select.select([sys.stdin], [], [], 0)[0]:  # until "stop" arrives
            item = f"item/{pick.randrange(int(items)):04d}"
            retries += store.update(own, jq=".n += 1", **VAULT).retries
            retries += store.update("shared", jq=".n += 1", default={"n": 0}, **VAULT).retries
            retries += store.update(item, jq=".n += 1", **VAULT).retries
            touched[item] += 1
            rounds += 1
        if sys.stdin.readline().strip() != "stop":
            raise SystemExit("expected stop")
        print(json.dumps({"rounds": rounds, "retries": retries, "items": touched}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
