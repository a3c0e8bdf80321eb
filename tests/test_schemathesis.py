"""The served OpenAPI document against a real server: schemathesis, and the hostile answers.

1. Schemathesis (``schemathesis run``, the installed 4.x) fuzzes every operation of
   ``/openapi.json`` with positive *and* negative data (``--mode all``: boundary values
   of the coverage phase, then random valid and invalid requests) against a real server
   over a real SQLite file. It passes only if no answer is a 5xx and every answer's
   status is documented for its operation, and its content type, headers and body match
   the document. Bounded: ``STATEBOX_FUZZ_EXAMPLES`` examples per operation (default 6,
   a fixed seed), about 20 s; CI's ``scripts/fuzz`` step runs more.
2. The answers schemathesis cannot provoke on its own, because they come from the
   defences against web pages and greedy clients (a foreign ``Host`` or ``Origin``, a
   ``text/plain`` body, one watch too many), are sent to every operation by hand and
   must be refusals that the document lists for that operation, with the error body.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server_util import ROOT, ServerProcess, running_server

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
EXAMPLES = int(os.environ.get("STATEBOX_FUZZ_EXAMPLES", "6"))
# The event stream never ends by design: schemathesis would wait on it until its timeout.
EVENTS = "/v1/events/{scope}/{namespace}"
# What each path parameter is filled with when an operation is called by hand.
PATH_VALUES = {"scope": "dag", "namespace": "hostile", "key": "k", "name": "lease-1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("fuzz") / "state.db"
    # --max-wait keeps long polls short; synchronous=OFF: durability is not under test.
    with running_server(
        f"sqlite:///{db}?synchronous=OFF", test_mode=True, args=["--max-wait", "0.2"]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict[str, Any]:
    response = server.client.get("/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def test_positive_and_negative_data_meet_the_document(server: ServerProcess) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{server.url}/openapi.json",
            "--mode",
            "all",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "20261202",
            "--no-shrink",
            "--workers",
            "1",  # two cores, shared with the server
            "--request-timeout",
            "20",
            "--exclude-path",
            EVENTS,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
    )
    report = done.stdout[-8000:] + done.stderr[-2000:] + server.log_text()[-3000:]
    assert done.returncode == 0, report
    # Not vacuous: every operation but the event stream was reached, many times over.
    tested = re.search(r"Tested: (\d+)", done.stdout)
    generated = re.search(r"(\d+) generated", done.stdout)
    assert tested is not None and generated is not None, report
    # 23, plus the keyspaces list and delete, the apply across keyspaces, test mode's
    # reset, whoami, the leases list, the import of dumped keys, and the web page's four
    # (/, /ui, /ui/, its assets): the document is generated from the routes the server
    # mounts, so it lists exactly what it serves
    assert int(tested.group(1)) == 34, report
    assert int(generated.group(1)) >= 25 * EXAMPLES, report
    assert "Traceback" not in server.log_text()
    assert server.alive


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for template, methods in document["paths"].items():
        for method, operation in methods.items():
            if template != "/docs":  # a page, not an API call
                yield method.upper(), template, operation


def _url(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)


def _assert_documented_refusal(
    response: httpx.Response, operation: dict[str, Any], status: int, what: str
) -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
    assert str(status) in operation["responses"], f"{what}: {status} is not in the document"
    documented = operation["responses"][str(status)]["content"]
    assert response.headers["content-type"].split(";")[0] in documented, what
    error = response.json()["error"]
    assert error["kind"] and error["message"], what


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("Host", "rebind.evil.example", 421),  # DNS rebinding
        ("Origin", "https://evil.example", 403),  # a page on another site
    ],
)
def test_foreign_hosts_and_origins_get_a_documented_refusal(
    server: ServerProcess, document: dict[str, Any], header: str, value: str, status: int
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for method, template, operation in _operations(document):
            body = {} if "requestBody" in operation else None
            response = client.request(method, _url(template), json=body, headers={header: value})
            _assert_documented_refusal(response, operation, status, f"{method} {template}")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_bodies_a_web_form_can_send_get_a_documented_415(
    server: ServerProcess, document: dict[str, Any], content_type: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for method, template, operation in _operations(document):
            if "requestBody" not in operation:
                continue
            response = client.request(
                method,
                _url(template),
                content=b'{"ops": [], "value": 1}',
                headers={"Content-Type": content_type},
            )
            _assert_documented_refusal(response, operation, 415, f"{method} {template}")


def test_one_watch_too_many_gets_a_documented_429(tmp_path: Path) -> None:
    args = ["--max-wait", "3", "--max-watches-per-token", "1"]
    with running_server(f"sqlite:///{tmp_path / 'w.db'}", args=args) as server:
        document = server.client.get("/openapi.json").json()
        waiting = threading.Thread(
            target=server.client.get,
            args=("/v1/watch/dag/w",),
            kwargs={"params": {"key": "k", "after_version": 0, "timeout": 3}},
        )
        waiting.start()
        try:
            with httpx.Client(base_url=server.url, timeout=10) as other:
                for _ in range(50):  # until the first watch is surely open
                    answer = other.get("/v1/watch/dag/w", params={"key": "k", "timeout": 0})
                    if answer.status_code == 429:
                        break
                    threading.Event().wait(0.05)
                for template in ("/v1/watch/{scope}/{namespace}", EVENTS):
                    operation = document["paths"][template]["get"]
                    response = other.get(
                        _url(template).replace("hostile", "w"),
                        params={"key": "k", "after_version": 0, "timeout": 1},
                    )
                    _assert_documented_refusal(response, operation, 429, template)
        finally:
            waiting.join()


@pytest.mark.parametrize("value", [b"\xb2", b'"\xb2"', b'W/"\xb9"'])
def test_an_if_match_digit_int_refuses_is_a_400(server: ServerProcess, value: bytes) -> None:
    # Found while fuzzing by hand: "²".isdigit() is true, int("²") raises: it was a 500.
    for method, path in (("PUT", "/v1/kv/dag/ifm/k"), ("POST", "/v1/diff/dag/ifm/k")):
        body = 1 if method == "PUT" else {"value": 1}
        response = server.client.request(method, path, json=body, headers={"If-Match": value})
        assert response.status_code == 400, response.text
        assert "If-Match" in response.json()["error"]["message"]
