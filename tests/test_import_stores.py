"""``import_keys`` beyond the conformance suite: values sealed at rest in a secret keyspace,
two processes importing the same keys at once, and the server's ``POST /v1/import``
route (its grants, its schema)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from statebox import open_store
from statebox.core.model import Keyspace
from statebox.core.records import IMPORT_CONFLICT, IMPORT_CREATED, IMPORT_SAME, KeyImport

from .backends import new_secret_key
from .server_util import ROOT, ServerProcess, running_server
from .test_conformance_import import KS, deletion, entry, live_item, record

SECRET = b'"hunter2-the-plaintext-secret"'


def test_a_secret_keyspace_is_sealed_at_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", "custom/imported")
    monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
    monkeypatch.delenv("STATEBOX_SECRET_KEY_FILE", raising=False)
    db = tmp_path / "state.db"
    v1, v2 = record("pw", 1, SECRET), record("pw", 2, SECRET[:-1] + b'-2"')
    items = [
        KeyImport("pw", entry(v2), (v2, v1)),
        KeyImport("old", None, (deletion(record("old", 1, SECRET), 3), record("old", 1, SECRET))),
    ]
    with open_store(f"sqlite:///{db}") as store:
        assert store.import_keys(KS, items) == [IMPORT_CREATED, IMPORT_CREATED]
        now = store.clock.now_ns()
        got = store.backend.get(KS, "pw", now)
        assert got is not None and (got.data, got.version) == (v2.data, 2)
        history = store.backend.history(KS, "pw", 0)
        assert [(r.version, r.data) for r in history] == [(2, v2.data), (1, SECRET)]
        deleted = store.backend.history(KS, "old", 0)
        assert [(r.version, r.deleted) for r in deleted] == [(1, True), (1, False)]
        assert deleted[0].hash == deleted[1].hash  # the marker names what it deleted
        # A resumed load finds them the same, although every seal is new.
        assert store.import_keys(KS, items) == [IMPORT_SAME, IMPORT_SAME]
    raw = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("state.db-*"))
    assert b"hunter2" not in raw
    assert b"application/vnd.statebox.sealed" in raw


# --- two processes, the same keys -------------------------------------------------------

_RACER = textwrap.dedent(
    """
    import json, sys, time
    from statebox import open_store
    from statebox.core.records import KeyImport
    from tests.test_conformance_import import KS, deletion, live_item
    url, me, start, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    outcomes = {}
    with open_store(url) as store:
        while time.time() < start:
            time.sleep(0.0005)
        for n in range(count):
            # Keys 3n: both import the same item; 3n+1: each its own; 3n+2: each its own
            # deleted key (history only: no entry row a row lock could hold).
            key = f"k{n}"
            mine = [b'"' + me.encode() + b'"'] * 3
            item = live_item(key, *([b'"shared"', b'"two"'] if n % 3 == 0 else mine))
            if n % 3 == 2:
                item = KeyImport(key, None, (deletion(item.history[0], 1), *item.history))
            [outcomes[key]] = store.import_keys(KS, [item])
    print(json.dumps(outcomes))
    """
)


@pytest.fixture(params=["sqlite", "file", "postgres", "sqlite-sealed"])
def race_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    from .backends import BACKENDS

    name = request.param
    if name.endswith("-sealed"):
        monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", "*/*")
        monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
        name = name.removesuffix("-sealed")
    with BACKENDS[name](tmp_path, request) as url:
        yield url


def test_two_processes_importing_the_same_keys(race_url: str) -> None:
    count = 45
    with open_store(race_url):
        pass  # the schema exists before the racers start
    start = time.time() + 1.5
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, race_url, me, str(start), str(count)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for me in ("a", "b")
    ]
    answers = []
    for racer in racers:
        out, _ = racer.communicate(timeout=120)
        assert racer.returncode == 0
        answers.append(json.loads(out))
    with open_store(race_url) as store:
        for n in range(count):
            key = f"k{n}"
            outcomes = sorted(answer[key] for answer in answers)
            stored = store.backend.get(KS, key, store.clock.now_ns())
            history = store.backend.history(KS, key, 0)
            if n % 3 == 0:
                assert outcomes == [IMPORT_CREATED, IMPORT_SAME] or outcomes == [
                    IMPORT_CONFLICT,
                    IMPORT_CREATED,  # sealed: the loser may see the winner's new seal
                ], outcomes
                assert stored is not None and (stored.version, stored.data) == (2, b'"two"')
                assert [(r.version, r.data) for r in history] == [(2, b'"two"'), (1, b'"shared"')]
                continue
            assert outcomes == [IMPORT_CONFLICT, IMPORT_CREATED], outcomes
            winner = "a" if answers[0][key] == IMPORT_CREATED else "b"
            value = f'"{winner}"'.encode()
            # Whole: the winner's entry and exactly the winner's history, nothing mixed.
            kept = [(3, value), (2, value), (1, value)]
            if n % 3 == 2:
                assert stored is None
                assert [(r.version, r.data) for r in history] == [(3, b""), *kept]
            else:
                assert stored is not None and (stored.version, stored.data) == (3, value)
                assert [(r.version, r.data) for r in history] == kept


# --- the server's route -----------------------------------------------------------------

ADMIN = "admin-secret-0123456789abc"
READER = "reader-secret-0123456789ab"
TOKENS_YAML = f"""
tokens:
  - name: admin
    secret: {ADMIN}
    grants:
      - {{access: write}}
  - name: reader
    sha256: {hashlib.sha256(READER.encode()).hexdigest()}
    grants:
      - {{access: read}}
      - {{access: write, scope: custom, namespace: "writable"}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("import")
    tokens = directory / "tokens.yaml"
    tokens.write_text(TOKENS_YAML)
    with running_server(f"sqlite:///{directory / 'state.db'}", tokens=tokens) as srv:
        yield srv


def _body(*items: KeyImport, replace: bool = False) -> str:
    from statebox.wire.imports import import_body

    return import_body(items, replace=replace)


def _post(server: ServerProcess, token: str, path: str, body: str) -> httpx.Response:
    return httpx.post(
        server.url + path,
        content=body,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        timeout=30,
    )


def test_the_route_needs_a_write_grant(server: ServerProcess) -> None:
    body = _body(live_item("k", b"1"))
    refused = _post(server, READER, "/v1/import/custom/imported", body)
    assert refused.status_code == 403, refused.text
    assert _read(server, KS, "k") is None
    allowed = _post(server, READER, "/v1/import/custom/writable", body)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json() == {"outcomes": ["created"]}
    again = _post(server, ADMIN, "/v1/import/custom/writable", body)
    assert again.json() == {"outcomes": ["same"]}


def _read(server: ServerProcess, keyspace: Keyspace, key: str) -> object:
    from statebox.backends.http import HttpBackend

    backend = HttpBackend(server.url, token=ADMIN)
    try:
        return backend.get(keyspace, key, time.time_ns())
    finally:
        backend.close()


def test_the_route_refuses_malformed_items_and_writes_nothing(server: ServerProcess) -> None:
    good = json.loads(_body(live_item("ok", b"1")))["items"][0]
    for bad in (
        {"key": "x", "current": {"key": "x"}},  # an entry without its fields
        {"key": "x", "current": None, "history": [{**good["history"][0], "hash": "0" * 64}]},
        {"key": "x", "current": None, "extra": 1},
        [1, 2],
    ):
        answer = _post(
            server, ADMIN, "/v1/import/custom/malformed", json.dumps({"items": [good, bad]})
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["message"].startswith("items[1]")
    assert _read(server, Keyspace("custom", "malformed"), "ok") is None


def test_the_route_is_documented(server: ServerProcess) -> None:
    document = httpx.get(server.url + "/openapi.json", timeout=30).json()
    operation = document["paths"]["/v1/import/{scope}/{namespace}"]["post"]
    assert {"200", "400", "403"} <= set(operation["responses"])
    assert "ImportItem" in document["components"]["schemas"]
