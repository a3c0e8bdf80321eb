"""A watch on a prefix looks at every entry under it on each change (``Watcher.changes``
scans the prefix): on a large namespace that scan runs on a worker thread, never on the
event loop, where it would hold up every other request — even on SQLite, whose other
reads are answered on the loop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from statebox import open_store
from statebox.transactions import SetOp

from .server_util import running_server

KEYS = 60_000


def test_a_prefix_watch_on_a_large_namespace_does_not_hold_up_other_requests(
    tmp_path: Path,
) -> None:
    db = tmp_path / "big.db"
    with open_store(f"sqlite:///{db}") as store:
        for start in range(0, KEYS, 20_000):
            store.transaction(
                [SetOp(f"item/{i:06d}", i) for i in range(start, start + 20_000)],
                scope="custom",
                namespace="big",
            )
    with running_server(f"sqlite:///{db}") as server:
        base = server.url
        stop = threading.Event()

        def watch() -> None:  # an event stream on the whole namespace's prefix
            try:
                with httpx.stream(
                    "GET", f"{base}/v1/events/custom/big", params={"prefix": "item/"}, timeout=60
                ) as stream:
                    for _ in stream.iter_raw():
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                if not stop.is_set():  # else: the server stopped under the open stream
                    raise

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.5)
        worst = 0.0
        with httpx.Client(base_url=base, timeout=60) as client:
            for n in range(6):  # each change makes the watch scan the prefix again
                assert client.put("/v1/kv/custom/big/item/000001", json=n).status_code == 200
                deadline = time.monotonic() + 0.6
                while time.monotonic() < deadline:
                    began = time.monotonic()
                    assert client.get("/healthz").status_code == 200
                    worst = max(worst, time.monotonic() - began)
                    time.sleep(0.02)
        stop.set()
    watcher.join(10)
    # On the loop, each scan of 60,000 entries held every request for about a second.
    assert worst < 0.5, f"a request waited {worst:.2f} s behind a prefix watch's scan"
