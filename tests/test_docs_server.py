"""What docs/http.md says of the server's Python API holds: ``serve(store)`` and
``create_app(store)`` take an open ``StateStore`` (the object ``open_store`` returns),
serving its backend."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import warnings
from pathlib import Path

import pytest

from statebox import ManualClock, RunContext, open_store

pytest.importorskip("starlette")


def test_create_app_serves_an_open_store_with_its_clock() -> None:
    from starlette.testclient import TestClient

    from statebox.server import create_app

    clock = ManualClock()
    store = open_store("memory://", context=RunContext(dag="feed"), clock=clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's note about its httpx client
        client = TestClient(create_app(store), base_url="http://localhost")
    with client:
        put = client.put("/v1/kv/dag/feed/cursor", json={"id": 1}, params={"ttl": 10})
        assert put.status_code == 200, put.text
        assert store.get("cursor").value == {"id": 1}  # the store's own backend
        clock.advance(10)  # the store's clock is the server's: the entry expired
        assert client.get("/v1/kv/dag/feed/cursor").json()["found"] is False


SERVE = """
import statebox, statebox.server
store = statebox.open_store({url!r}, context=statebox.RunContext(dag="feed"))
store.set("cursor", {{"id": 7}})
statebox.server.serve(store, port=0, access_log=False, log_level="warning")
"""


def test_serve_serves_an_open_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE.format(url=url)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("statebox server listening on http://127.0.0.1:"), first + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        base = first.split()[4]
        with urllib.request.urlopen(f"{base}/v1/kv/dag/feed/cursor", timeout=10) as answer:
            assert json.load(answer)["value"] == {"id": 7}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
