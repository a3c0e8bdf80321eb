"""One writer of the chaos run (tests/test_chaos.py), in its own process.

``python -m tests.chaos_writer SERVER_URL WRITER_ID LEDGER SECONDS`` writes through the
statebox server until SECONDS have passed, and appends one line per outcome to LEDGER
(its own file), flushed at once:

- ``set KEY VERSION N``: an acknowledged (200) write of ``{"w": WRITER_ID, "n": N}`` to
  KEY, one of this writer's own keys (``w<ID>/k<j>``: nobody else writes them);
- ``inc ok`` / ``inc unknown``: a compare-and-set increment of the shared key ``counter``
  acknowledged, or answered 503 / not answered at all (applied or not: unknown);
  a conflict (412) is neither, and is retried.
"""

from __future__ import annotations

import random
import sys
import time

import httpx

PREFIX = "/v1/kv/global/_"
KEYS_PER_WRITER = 8


def main(url: str, writer: int, ledger_path: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    rng = random.Random(writer)
    n = 0
    with httpx.Client(base_url=url, timeout=10) as http, open(ledger_path, "a") as ledger:
        while time.monotonic() < deadline:
            try:
                if rng.random() < 0.8:
                    n += 1
                    key = f"w{writer}/k{rng.randrange(KEYS_PER_WRITER)}"
                    answer = http.put(f"{PREFIX}/{key}", json={"w": writer, "n": n})
                    if answer.status_code == 200:
                        ledger.write(f"set {key} {answer.json()['version']} {n}\n")
                    else:
                        assert answer.status_code == 503, answer.text
                else:
                    ledger.write(f"inc {_increment(http)}\n")
                ledger.flush()
            except httpx.TransportError:  # the server was killed: wait for it
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 0.01))


def _increment(http: httpx.Client) -> str:
    """``ok``, ``unknown`` (the write may or may not have happened), or ``none``."""
    got = http.get(f"{PREFIX}/counter")
    if got.status_code != 200:
        assert got.status_code == 503, got.text
        return "none"
    body = got.json()
    headers = {"if-match": f'"{body["version"]}"'} if body["found"] else {"if-none-match": "*"}
    value = (body["value"] if body["found"] else 0) + 1
    try:
        answer = http.put(f"{PREFIX}/counter", json=value, headers=headers)
    except httpx.TransportError:
        return "unknown"
    if answer.status_code == 200:
        return "ok"
    if answer.status_code == 503:
        return "unknown"
    assert answer.status_code in (409, 412), answer.text
    return "none"


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
