"""Messages in each face's own words (#13 item 8).

The engine raises with the thing named in words ("a namespace") and the parameter as
data (``StateboxError.params``); the library shows it as a keyword (``namespace=``), the
CLI as an option (``--namespace``), HTTP as a query parameter or body field. No face
shows Python's reprs (``'k'``, ``{'enabled': False}``, ``<class 'int'>``). A fencing
token above the lease's latest was never issued, and is not called stale.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from statebox import (
    ConfigurationError,
    FencingError,
    InvalidValueError,
    RunContext,
    StateboxError,
    StateStore,
    open_store,
)

from .server_util import ServerProcess, running_server

#: Every parameter the engine names; none may be followed by "=" outside the library
#: (HTTP's own "?limit=" is a query parameter, so a "?" or "&" before it is allowed).
PARAMS = (
    "namespace|dag|root_dag|run_id|jq|merge|patch|limit|ttl|timeout|after_version|"
    "to_version|expected_version|create_only|history_limit|token|holder|fencing"
)
PYTHON_KEYWORD = re.compile(rf"(?<![?&\w])(?:{PARAMS})=")
CONTEXT_PREFIXES = ("STATEBOX_", "DAG_", "AIRFLOW_CTX_", "GITHUB_")


def assert_no_python(message: str) -> None:
    """No Python repr, and no parameter spelt as a keyword argument."""
    assert "'" not in message, message
    assert "<class" not in message, message
    assert "{'" not in message, message
    assert not PYTHON_KEYWORD.search(message), message


# --- the library: the engine's neutral message, the keyword in str() -----------------


@pytest.fixture
def bare() -> Iterator[StateStore]:
    """A store with no run context: no default namespace for any scope."""
    with open_store("memory://", context=RunContext()) as store:
        yield store


def raised(kind: type[StateboxError], call: object, *args: object, **kw: object) -> StateboxError:
    assert callable(call)
    with pytest.raises(kind) as info:
        call(*args, **kw)
    error = info.value
    assert_no_python(error.message)  # the engine's words name no face's spelling
    return error


def test_a_missing_namespace_names_the_keyword_in_the_library(bare: StateStore) -> None:
    error = raised(ConfigurationError, bare.get, "k", scope="custom")
    assert error.message == 'scope "custom" requires a namespace'
    assert error.params == ("namespace",)
    assert str(error) == 'scope "custom" requires a namespace (namespace=)'
    default = raised(ConfigurationError, bare.get, "k")
    assert "STATEBOX_DAG" in default.message
    assert str(default).endswith("(namespace= or dag=)")


def test_engine_errors_carry_their_parameters(bare: StateStore) -> None:
    update = raised(InvalidValueError, bare.update, "k", jq=".", merge={}, namespace="n")
    assert update.message.endswith("got a jq expression and a merge patch")
    assert str(update).endswith("(jq=, merge= or patch=)")
    listed = raised(InvalidValueError, bare.list, limit=-1, namespace="n")
    assert str(listed) == "invalid limit -1: must be 0 (no limit) or more (limit=)"
    renew = raised(InvalidValueError, bare.renew_lease, "job", token=1, holder="me")
    assert str(renew) == "renewing a lease needs a ttl (seconds) (ttl=)"
    watch = raised(InvalidValueError, bare.watch, "k", after_version=-1, namespace="n")
    assert str(watch).endswith("(after_version=)")


def test_values_are_shown_as_json_not_as_python(bare: StateStore) -> None:
    ops = [{"op": "set", "key": "a", "value": 1, "fencing": {"enabled": False}}]
    txn = raised(InvalidValueError, bare.transaction, ops, namespace="n")
    assert '{"enabled": false}' in txn.message
    typed = raised(InvalidValueError, bare.transaction, [7], namespace="n")
    assert typed.message.endswith("not a number")
    fencing = raised(InvalidValueError, bare.set, "k", 1, fencing={"lease": 1}, namespace="n")
    assert 'invalid fencing {"lease": 1}' in fencing.message
    assert str(fencing).endswith("(fencing=)")
    key = raised(StateboxError, bare.get, "a/../b", namespace="n")
    assert key.message == 'invalid key "a/../b": must not contain a ".." segment'
    missing = raised(StateboxError, bare.get, "k", required=True, namespace="n")
    assert missing.message == 'key "k" not found in scope "dag", namespace "n"'


@pytest.mark.parametrize(
    ("patch", "problem"),
    [
        ([{"op": "test", "path": "/n", "value": 2}], 'the value at "/n" is not the tested value'),
        ([{"op": "remove", "path": "/x"}], 'no such location in the value: "/x"'),
        (
            [{"op": "add", "path": "/n/x", "value": 1}],
            'the path "/n/x" goes into a value that is neither an object nor an array',
        ),
        ([{"op": "bogus", "path": "/n"}], 'Unknown operation "bogus"'),
    ],
)
def test_a_failed_json_patch_is_told_without_reprs(
    bare: StateStore, patch: list[dict[str, object]], problem: str
) -> None:
    bare.set("k", {"n": 1}, namespace="n")
    error = raised(InvalidValueError, bare.update, "k", patch=patch, namespace="n")
    assert error.message.endswith(f"failed: {problem}")


# --- fencing: a token never issued is not stale, on every backend ----------------------


def test_a_token_never_issued_is_not_called_stale(store: StateStore) -> None:
    first = store.acquire_lease("import", 60, holder="a")
    with pytest.raises(FencingError) as ahead:
        store.set("k", 1, fencing=("import", first.token + 4))
    assert ahead.value.message == (
        f'fenced write refused: token {first.token + 4} of lease "import" was never issued '
        f"(its latest is {first.token})"
    )
    with pytest.raises(FencingError) as unknown:
        store.set("k", 1, fencing=("ghost", 1))
    assert unknown.value.message == (
        'fenced write refused: token 1 of lease "ghost" was never issued (it was never acquired)'
    )
    store.release_lease(first)
    second = store.acquire_lease("import", 60, holder="b")
    with pytest.raises(FencingError) as stale:
        store.set("k", 1, fencing=first)
    assert stale.value.message == (
        f'fenced write refused: token {first.token} of lease "import" is stale '
        f"(a newer holder has token {second.token})"
    )
    assert store.set("k", 1, fencing=second).version == 1


# --- the CLI: options -------------------------------------------------------------------


def cli_error(tmp_path: Path, code: int, *args: str, stdin: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONTEXT_PREFIXES)}
    env["STATEBOX_STORE"] = f"sqlite:///{tmp_path / 'state.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "statebox.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == code, (out.stdout, out.stderr)
    assert out.stderr.startswith("Error: ") and out.stderr.count("\n") == 1, out.stderr
    message = out.stderr.removeprefix("Error: ").rstrip("\n")
    assert_no_python(message)
    return message


def test_the_cli_names_its_options(tmp_path: Path) -> None:
    custom = cli_error(tmp_path, 2, "get", "k", "--scope", "custom")
    assert custom == 'scope "custom" requires a namespace (--namespace)'
    assert cli_error(tmp_path, 2, "get", "k").endswith("(--namespace or --dag)")
    listed = cli_error(tmp_path, 2, "list", "--namespace", "n", "--limit", "-1")
    assert listed == "invalid --limit -1: must be 0 (no limit) or more"  # core/params.py
    watch = cli_error(tmp_path, 2, "watch", "k", "--dag", "d", "--after-version", "-1")
    assert watch == "invalid --after-version -1: must be 0 or more"
    ops = json.dumps([{"op": "set", "key": "a", "value": 1, "fencing": {"enabled": False}}])
    txn = cli_error(tmp_path, 2, "txn", "--dag", "d", stdin=ops)
    assert '{"enabled": false}' in txn


def test_the_cli_quotes_what_argparse_refuses_as_json(tmp_path: Path) -> None:
    limit = cli_error(tmp_path, 2, "list", "--limit", "ten")  # refused by core/params.py
    assert limit.startswith('invalid --limit "ten": must be an integer')
    missing = cli_error(tmp_path, 2, "list", "--limit")
    assert missing.startswith("statebox list: argument --limit: expected one argument")
    choice = cli_error(tmp_path, 2, "--format", "xml", "get", "k")
    assert 'invalid choice: "xml" (choose from "json", "table")' in choice


def test_the_cli_says_a_token_was_never_issued(tmp_path: Path) -> None:
    message = cli_error(tmp_path, 4, "set", "k", "1", "--dag", "d", "--fencing", "nightly:3")
    assert message == (
        'fenced write refused: token 3 of lease "nightly" was never issued (it was never acquired)'
    )


# --- HTTP: query parameters and body fields --------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("memory://") as running:
        yield running


def http_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert isinstance(message, str)
    assert_no_python(message)
    return message


def test_http_names_its_fields_and_query_parameters(server: ServerProcess) -> None:
    client = server.client
    update = client.post("/v1/update/custom/ns/k", json={"jq": ".", "merge": {}})
    assert http_error(update, 422).endswith(
        '(the "jq" field, the "merge" field or the "patch" field)'
    )
    # query and body parameters follow core/params.py's rules: a request error (400)
    ttl = client.put("/v1/kv/custom/ns/k", params={"ttl": "0"}, content=b"1")
    assert http_error(ttl, 400).startswith('invalid ?ttl= "0": must be a positive number')
    body_ttl = client.post("/v1/update/custom/ns/k", json={"jq": ".", "ttl": -1})
    assert http_error(body_ttl, 400).startswith('invalid "ttl" -1: must be a positive number')
    listed = client.get("/v1/kv/custom/ns", params={"limit": "ten"})
    assert http_error(listed, 400).startswith('invalid ?limit= "ten": must be an integer')
    fenced = client.put("/v1/kv/custom/ns/k", params={"lease": "job"}, content=b"1")
    assert http_error(fenced, 400).endswith("a fenced write needs both ?lease= and ?token=")
    version = client.post("/v1/rollback/custom/ns/k", json={"version": "3"})
    assert http_error(version, 400) == 'invalid "version" "3": must be an integer'
    missing = client.post("/v1/rollback/custom/ns/k", json={})
    assert http_error(missing, 400) == 'rollback needs "version": the version to write back'
    ops = [{"op": {"enabled": False}, "key": "a"}]
    txn = client.post("/v1/txn/custom/ns", json={"ops": ops})
    assert http_error(txn, 422).endswith('"op" must be "set" or "delete", not {"enabled": false}')
    unknown = client.post("/v1/update/custom/ns/k", json={"jq": ".", "history_limit": 0})
    assert http_error(unknown, 400) == (
        'update: unknown field(s) "history_limit"; known: "default", "expected_version", '
        '"fencing", "jq", "merge", "patch", "ttl"'
    )


def test_http_says_a_token_was_never_issued(server: ServerProcess) -> None:
    response = server.client.put(
        "/v1/kv/custom/ns/k", params={"lease": "nightly", "token": "2"}, content=b"1"
    )
    assert response.json()["error"]["kind"] == "fencing"
    assert http_error(response, 409) == (
        'fenced write refused: token 2 of lease "nightly" was never issued (it was never acquired)'
    )


def test_exact_numbers_are_quoted_as_their_literals() -> None:
    """A value read exactly (a JsonNumber, a Decimal, a kept literal) is shown as the
    number that was sent, never as a Python repr (JsonNumber('1.0'))."""
    from decimal import Decimal

    from statebox.core.errors import quoted
    from statebox.core.exactjson import NumberLiteral, loads_exact

    assert quoted({"lease": "x", "token": loads_exact("1.0")}) == '{"lease":"x","token":1.0}'
    assert quoted(Decimal("1.5")) == "1.5"
    assert quoted(NumberLiteral("1E5")) == "1E5"
    assert quoted(("a", 1)) == '["a", 1]'
    assert quoted("\ud800") == '"\\ud800"'


def test_http_shows_an_exact_number_as_sent() -> None:
    from starlette.testclient import TestClient

    from statebox.server.app import create_app
    from statebox.server.config import ServerConfig

    app = create_app("memory://", ServerConfig(test_mode=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        body = '{"jq": ".", "default": 1, "fencing": {"lease": "x", "token": 1.0}}'
        answer = client.post(
            "/v1/update/custom/a/k", content=body, headers={"content-type": "application/json"}
        )
    message = answer.json()["error"]["message"]
    assert answer.status_code == 400 and "1.0" in message, message
    assert "JsonNumber" not in message and "Decimal" not in message, message
