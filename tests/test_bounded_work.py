"""Bounded work per request (issue #12 §1): patch amplification, transaction size, deep
nesting, absurd If-Match headers — against real servers on loopback, the real CLI in
subprocesses, and the engine.

The limits are spelled out here rather than imported, so this file also runs (and fails,
as it must) against the code from before the change.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statebox import InvalidValueError, RawJSON, open_store
from statebox.core.values import normalize

from .server_util import ServerProcess, running_server

DEPTH_LIMIT = 256
TXN_LIMIT = 128
JSON = {"content-type": "application/json"}
STATEBOX = Path(sys.executable).parent / "statebox"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


#: Generous bounds for a loaded 2-core CI machine, still far from the code before issue
#: #12 (the copy bomb ran 30-60 s there; /healthz froze for 20-37 s while the largest
#: transaction committed). The real figures and the issue's targets (under 1 s, under
#: 100 MB, p99 under 100 ms) are measured by ``python -m bench.run hostile``
#: (bench/bench_hostile.py), not asserted here.
REFUSED_WITHIN_S = 10.0
RSS_GROWTH_KIB = 300 * 1024
HEALTHZ_MAX_S = 5.0


class HealthProbe(threading.Thread):
    """Asks /healthz every 10 ms on its own connection; keeps each latency."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.done.is_set():
                start = time.perf_counter()
                self.statuses.append(client.get("/healthz").status_code)
                self.latencies.append(time.perf_counter() - start)
                time.sleep(0.01)

    def stop(self) -> None:
        self.done.set()
        self.join()

    def slowest(self) -> float:
        return max(self.latencies)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("bounded") / "state.db"
    with running_server(f"sqlite:///{db}?synchronous=NORMAL") as srv:
        yield srv


# --- JSON patch amplification ---------------------------------------------------------


def test_the_copy_bomb_is_refused_at_once_and_small(server: ServerProcess) -> None:
    # 1.1 KB: add /a, then copy /a into itself 23 times (2**23 elements if it ran).
    ops = [{"op": "add", "path": "/a", "value": [1]}]
    ops += [{"op": "copy", "from": "/a", "path": "/a/-"}] * 23
    body = json.dumps({"patch": ops, "default": {}})
    assert len(body) < 1200
    pid = server.proc.pid
    peak_before = memory_kb(pid, "VmHWM")
    probe = HealthProbe(server.url)
    probe.start()
    start = time.perf_counter()
    try:
        response = server.client.post(
            "/v1/update/global/_/bomb", content=body, headers=JSON, timeout=30
        )
    finally:
        elapsed = time.perf_counter() - start
        time.sleep(0.05)
        probe.stop()
    assert response.status_code == 413, response.text
    assert "JSON patch operation 18" in response.text
    assert "exceeds 1048576" in response.text
    assert elapsed < REFUSED_WITHIN_S
    assert memory_kb(pid, "VmHWM") - peak_before < RSS_GROWTH_KIB
    assert probe.statuses and set(probe.statuses) == {200}
    assert probe.slowest() < HEALTHZ_MAX_S, f"/healthz took {probe.slowest():.1f} s"
    # nothing was written
    assert server.client.get("/v1/kv/global/_/bomb").json()["found"] is False


def test_copies_of_a_large_string_are_refused_before_they_pile_up(
    server: ServerProcess,
) -> None:
    ops = [{"op": "add", "path": "/s", "value": "x" * 500_000}]
    ops += [{"op": "copy", "from": "/s", "path": f"/c{i}"} for i in range(4000)]
    pid = server.proc.pid
    peak_before = memory_kb(pid, "VmHWM")
    start = time.perf_counter()
    response = server.client.post(
        "/v1/update/global/_/strings", json={"patch": ops, "default": {}}, timeout=30
    )
    assert response.status_code == 413, response.text
    assert time.perf_counter() - start < REFUSED_WITHIN_S
    assert memory_kb(pid, "VmHWM") - peak_before < RSS_GROWTH_KIB


def test_patch_operation_count_is_bounded(server: ServerProcess) -> None:
    ops = [{"op": "test", "path": "", "value": {}}] * 10_001
    response = server.client.post(
        "/v1/update/global/_/many", json={"patch": ops, "default": {}}, timeout=30
    )
    assert response.status_code == 422, response.text
    assert "10001 exceeds the limit of 10000" in response.text
    members = {f"k{i}": i for i in range(10_001)}
    response = server.client.post("/v1/update/global/_/many", json={"merge": members}, timeout=30)
    assert response.status_code == 422, response.text
    assert "merge patch has too many members" in response.text


def test_a_patch_that_nests_past_the_limit_is_refused(server: ServerProcess) -> None:
    # each copy of /a into /a/k nests one level deeper, a few bytes larger
    ops = [{"op": "add", "path": "/a", "value": {}}]
    ops += [{"op": "copy", "from": "/a", "path": "/a/k"}] * 300
    response = server.client.post(
        "/v1/update/global/_/nest", json={"patch": ops, "default": {}}, timeout=30
    )
    assert response.status_code == 422, response.text
    assert f"the limit is {DEPTH_LIMIT} levels" in response.text


def test_patches_stop_at_the_deadline() -> None:
    from statebox.transforms import JsonPatch

    # legal but slow: a 1000-element document tested whole, 10,000 times
    document = json.dumps({"a": list(range(1000))})
    test = {"op": "test", "path": "/a", "value": list(range(1000))}
    with pytest.raises(InvalidValueError, match=r"ran longer than 0\.01s"):
        JsonPatch((test,) * 10_000, timeout=0.01).apply(document)


def test_patches_within_the_bounds_still_work(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        ops = [{"op": "add", "path": "/a", "value": [1]}]
        ops += [{"op": "copy", "from": "/a", "path": "/a/-"}] * 10
        ops += [{"op": "move", "from": "/a", "path": "/b"}, {"op": "remove", "path": "/b/0"}]
        ops += [
            {"op": "copy", "from": "/b/1", "path": "/c"},
            {"op": "copy", "from": "/c", "path": ""},
        ]
        result = store.update("k", patch=ops, default={"n": 1.50}, scope="global")
        assert result.value == jsonpatch.apply_patch({"n": 1.5}, ops)  # the library's answer
        nested = store.update("m", merge=json.loads(deep(DEPTH_LIMIT - 1)), scope="global")
        assert nested.version == 1


# --- transactions ---------------------------------------------------------------------


def _ops(n: int, prefix: str) -> list[dict[str, object]]:
    return [{"op": "set", "key": f"{prefix}{i}", "value": i} for i in range(n)]


@pytest.mark.parametrize("route", ["/v1/txn/global/cap", "/v1/apply/global/cap"])
def test_transactions_are_capped_at_max_txn_ops(server: ServerProcess, route: str) -> None:
    refused = server.client.post(route, json={"ops": _ops(TXN_LIMIT + 1, "r")})
    assert refused.status_code == 400, refused.text
    message = refused.json()["error"]["message"]
    assert f"{TXN_LIMIT + 1} exceeds max_txn_ops {TXN_LIMIT}" in message
    assert server.client.get("/v1/kv/global/cap/r0").json()["found"] is False
    accepted = server.client.post(route, json={"ops": _ops(TXN_LIMIT, route[4:7])})
    assert accepted.status_code == 200, accepted.text


def test_max_txn_ops_is_configurable(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 's.db'}", args=["--max-txn-ops", "3"]) as srv:
        refused = srv.client.post("/v1/txn/global/_", json={"ops": _ops(4, "k")})
        assert refused.status_code == 400
        assert "4 exceeds max_txn_ops 3" in refused.text
        assert srv.client.post("/v1/txn/global/_", json={"ops": _ops(3, "k")}).status_code == 200


def _float_array(size: int, seed: int) -> str:
    rnd = random.Random(seed)
    return "[" + ",".join(f"{rnd.random():.6f}" for _ in range(size // 9)) + "]"


@pytest.mark.slow
def test_healthz_answers_while_the_largest_transaction_commits(tmp_path: Path) -> None:
    # 128 operations of float arrays (the slow, exact-literal path), 256 KiB each: 32 MiB.
    value = _float_array(256 * 1024, 1)
    ops = ",".join(f'{{"op":"set","key":"k{i}","value":{value}}}' for i in range(TXN_LIMIT))
    body = f'{{"ops":[{ops}]}}'
    url = f"sqlite:///{tmp_path / 's.db'}"
    with running_server(url, args=["--max-body-bytes", str(len(body) + 1024)]) as srv:
        probe = HealthProbe(srv.url)
        probe.start()
        time.sleep(0.2)
        try:
            response = srv.client.post("/v1/txn/global/_", content=body, headers=JSON, timeout=300)
        finally:
            probe.stop()
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == TXN_LIMIT
        assert set(probe.statuses) == {200}
        assert len(probe.latencies) > 20
        assert probe.slowest() < HEALTHZ_MAX_S, f"/healthz took {probe.slowest():.1f} s"


# --- deep nesting ---------------------------------------------------------------------

DEEP = deep(100_000)
NESTED_BODIES = [
    ("PUT", "/v1/kv/global/_/k", DEEP),
    ("POST", "/v1/diff/global/_/k", f'{{"value":{DEEP}}}'),
    ("POST", "/v1/update/global/_/k", f'{{"merge":{DEEP}}}'),
    ("POST", "/v1/update/global/_/k", f'{{"patch":[{{"op":"add","path":"/a","value":{DEEP}}}]}}'),
    ("POST", "/v1/rollback/global/_/k", f'{{"version":{DEEP}}}'),
    ("POST", "/v1/txn/global/_", f'{{"ops":[{{"op":"set","key":"a","value":{DEEP}}}]}}'),
    ("POST", "/v1/apply/global/_", f'{{"ops":[{{"op":"set","key":"a","value":{DEEP}}}]}}'),
    ("POST", "/v1/leases/acquire", DEEP),
]


@pytest.mark.parametrize(("method", "path", "body"), NESTED_BODIES, ids=lambda x: str(x)[:30])
def test_deep_bodies_get_422_naming_the_limit(
    server: ServerProcess, method: str, path: str, body: str
) -> None:
    response = server.client.request(method, path, content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert f"the limit is {DEPTH_LIMIT} levels" in response.json()["error"]["message"]


def test_a_deep_default_query_gets_422(server: ServerProcess) -> None:
    response = server.client.get("/v1/kv/global/_/none", params={"default": deep(2000)})
    assert response.status_code == 422, response.text
    assert "?default= is nested 2000 levels deep" in response.text


def test_nesting_at_the_limit_is_accepted_everywhere(server: ServerProcess) -> None:
    at_limit = deep(DEPTH_LIMIT)
    put = server.client.put("/v1/kv/global/_/deepest", content=at_limit, headers=JSON)
    assert put.status_code == 200, put.text
    got = server.client.get("/v1/kv/global/_/deepest").json()
    assert got["value"] == json.loads(at_limit)
    txn = server.client.post(
        "/v1/txn/global/_",
        content=f'{{"ops":[{{"op":"set","key":"d2","value":{at_limit}}}]}}',
        headers=JSON,
    )
    too_deep = f'{{"ops":[{{"op":"set","key":"d3","value":[{at_limit}]}}]}}'
    refused = server.client.post("/v1/txn/global/_", content=too_deep, headers=JSON)
    assert refused.status_code == 422, refused.text
    assert f"the limit is {DEPTH_LIMIT} levels" in refused.text
    assert txn.status_code == 200, txn.text
    # the remote store reads it back through its own (checked) parser
    with open_store(server.url) as remote:
        assert remote.get("deepest", scope="global").value == json.loads(at_limit)


@pytest.mark.parametrize(
    "argv",
    [
        ["set", "k", "@DEEP"],
        ["diff", "k", "@DEEP"],
        ["get", "k", "--default", "@DEEP"],
        ["update", "k", "--merge", "@DEEP"],
        ["update", "k", "--patch", "@DEEP"],
        ["update", "k", "--jq", ".", "--default", "@DEEP"],
        ["txn", "@DEEP"],
    ],
    ids=lambda argv: " ".join(argv[:3]),
)
def test_deep_cli_arguments_exit_2_naming_the_limit(tmp_path: Path, argv: list[str]) -> None:
    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    argv = [str(path).join(a.split("DEEP")) if "DEEP" in a else a for a in argv]
    proc = subprocess.run(
        [str(STATEBOX), "--store", f"sqlite:///{tmp_path / 's.db'}", "--scope", "global", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"the limit is {DEPTH_LIMIT} levels" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_deep_python_values_are_refused_by_the_library() -> None:
    value: list[object] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(InvalidValueError, match=f"the limit is {DEPTH_LIMIT} levels"):
        normalize(value)
    with pytest.raises(InvalidValueError, match="nested 257 levels deep"):
        normalize(json.loads(deep(257)))
    assert normalize(RawJSON(deep(DEPTH_LIMIT))).data == deep(DEPTH_LIMIT).encode()


# The depth checker against the real parser: nesting with brackets inside strings,
# escaped quotes and backslashes, which must not count.
_scalars = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet='[]{}"\\ab\n', max_size=6),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=4), inner, max_size=3),
    ),
    max_leaves=40,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_values, st.integers(min_value=0, max_value=300), st.booleans())
def test_the_depth_checker_agrees_with_the_parser(value: object, wrap: int, spaced: bool) -> None:
    from statebox.core.values import nesting_depth

    text = json.dumps(value, indent=1 if spaced else None)
    text = "[" * wrap + text + "]" * wrap
    real = _depth(json.loads(text))
    assert nesting_depth(text) == real
    assert nesting_depth(text.encode()) == real
    if real > DEPTH_LIMIT:
        with pytest.raises(InvalidValueError, match=f"nested {real} levels deep"):
            normalize(RawJSON(text))
    else:
        assert normalize(RawJSON(text)).data == normalize(json.loads(text)).data


# --- If-Match -------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [20, 5000])
def test_an_absurd_if_match_is_a_400(server: ServerProcess, digits: int) -> None:
    header = {"if-match": '"' + "9" * digits + '"'}
    for method, path, body in [
        ("PUT", "/v1/kv/global/_/m", "1"),
        ("DELETE", "/v1/kv/global/_/m", None),
        ("POST", "/v1/update/global/_/m", '{"jq":"."}'),
    ]:
        response = server.client.request(method, path, content=body, headers={**JSON, **header})
        assert response.status_code == 400, (method, response.text)
        assert "If-Match" in response.text


@pytest.mark.parametrize("field", ["merge", "patch", "default"])
def test_an_update_reads_its_big_values_off_the_event_loop(
    field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """merge / patch / default are parsed where the write runs (the writer thread), so a
    body of megabytes never holds up the server's other requests."""
    from starlette.testclient import TestClient

    from statebox.server.app import create_app
    from statebox.server.config import ServerConfig
    from statebox.web import exact as real

    threads: list[str] = []

    def recording(raw: object) -> object:
        threads.append(threading.current_thread().name)
        return real(raw)  # type: ignore[arg-type]

    monkeypatch.setattr("statebox.server.routes_update.exact", recording)
    value = [1.5] * 1000
    body = {
        "merge": {"a": value},
        "patch": [{"op": "add", "path": "/a", "value": value}],
        "default": value,
    }[field]
    extras: dict[str, dict[str, object]] = {"default": {"jq": "."}, "patch": {"default": {}}}
    extra = extras.get(field, {})
    payload = {field: body, **extra}
    app = create_app("memory://", ServerConfig(test_mode=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        loop = client.portal.call(lambda: threading.current_thread().name)  # type: ignore[union-attr]
        answer = client.post("/v1/update/custom/a/k", json=payload)
        assert answer.status_code == 200, answer.text
    assert threads and loop not in threads, (loop, threads)
