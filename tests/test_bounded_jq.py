"""A jq result is bounded by the value size limit in both processes (issue #12 §1).

The jq worker refuses a result over the limit instead of sending it, and the server
reads at most the limit (plus one short line) from the worker's pipe: a jq program that
builds hundreds of megabytes is refused with 413 at once, and the server's memory does
not grow with it. An error message is cut short too (``error("x" * 1e7)``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from statebox import InvalidValueError, ValueTooLargeError
from statebox import _jq as jq_runner
from statebox._jq import run_jq

from .server_util import ServerProcess, running_server
from .test_bounded_work import HealthProbe, memory_kb

LIMIT = 1_048_576  # the server's default value size limit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("bounded-jq") / "state.db"
    with running_server(f"sqlite:///{db}") as srv:
        yield srv


@pytest.mark.parametrize(
    "program",
    [
        '"x" * 200000000',  # one 200 MB string
        '[range(0; 100000) | {a: ("x" * 1000)}]',  # 100 MB of objects: measured as JSON
    ],
)
def test_a_huge_jq_result_is_refused_with_413_in_bounded_memory(
    server: ServerProcess, program: str
) -> None:
    pid = server.proc.pid
    peak_before = memory_kb(pid, "VmHWM")
    probe = HealthProbe(server.url)
    probe.start()
    time.sleep(0.05)
    start = time.perf_counter()
    try:
        response = server.client.post("/v1/update/global/_/huge", json={"jq": program}, timeout=60)
    finally:
        elapsed = time.perf_counter() - start
        time.sleep(0.05)
        probe.stop()
    assert response.status_code == 413, response.text[:500]
    error = response.json()["error"]
    assert error["kind"] == "value_too_large"
    assert f"over the limit of {LIMIT}" in error["message"]
    assert elapsed < 3.0
    # The server (the worker is another process) never held the result.
    grown_mb = (memory_kb(pid, "VmHWM") - peak_before) / 1024
    assert grown_mb < 100, f"server peak memory grew by {grown_mb:.0f} MB"
    assert probe.statuses and set(probe.statuses) == {200}
    assert server.client.get("/v1/kv/global/_/huge").json()["found"] is False
    # the worker that refused is still good for the next call
    response = server.client.post("/v1/update/global/_/after", json={"jq": '"ok"'})
    assert response.status_code == 200, response.text


def test_a_huge_jq_error_message_is_cut_short(server: ServerProcess) -> None:
    response = server.client.post(
        "/v1/update/global/_/loud", json={"jq": 'error("x" * 10000000)'}, timeout=60
    )
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) < 10_000


def test_the_limit_is_exact_in_bytes_of_compact_json() -> None:
    # "x" * 8 is 10 bytes as JSON, quotes included
    assert run_jq('"x" * 8', "null", 5, limit=10) == '"xxxxxxxx"'
    with pytest.raises(ValueTooLargeError, match="at least 11 bytes, over the limit of 10"):
        run_jq('"x" * 9', "null", 5, limit=10)
    # measured compact and unescaped, as the value is stored: {"a":[1,"é"]} is 14 bytes
    # (jq's own text, {"a": [1, "\u00e9"]}, would be 22)
    assert run_jq('{"a": [1, "é"]}', "null", 5, limit=14) == '{"a":[1,"é"]}'
    with pytest.raises(ValueTooLargeError):
        run_jq('{"a": [1, "é"]}', "null", 5, limit=13)
    # two values are "more than one" whatever their size
    with pytest.raises(InvalidValueError, match="more than one value"):
        run_jq('("x" * 100), 1', "null", 5, limit=10)


def test_a_worker_is_reused_after_it_refused_a_result() -> None:
    run_jq(".", "1", 5)
    jq_runner._POOL.shutdown()
    run_jq(".", "1", 5)
    (worker,) = jq_runner._POOL._idle
    with pytest.raises(ValueTooLargeError):
        run_jq('"x" * 1000', "null", 5, limit=100)
    assert jq_runner._POOL._idle == [worker]
    assert worker.proc.poll() is None
    assert run_jq(". + 1", "41", 5) == "42"
