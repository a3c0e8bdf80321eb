"""A transaction's operations, read alike by every face (issue #13 item 3): one definition
of an operation's fields (``core/operations.py``), one reader of a JSON operation
(``wire.codec.transaction_operation``) for ``statebox txn`` and ``POST /v1/txn``, and
the library's Python forms kept as they were.

The CLI runs as a real process; HTTP runs in process (starlette's test client) on a
memory store.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import statebox
from statebox import ConflictError, InvalidValueError, RunContext, StateStore, open_store
from statebox.core.errors import InvalidRequestError
from statebox.core.exactjson import loads_exact
from statebox.core.records import Fence
from statebox.core.values import normalize
from statebox.transactions import SetOp, parse_operation
from statebox.wire.codec import batch_operation, transaction_operation
from statebox.wire.mutations import mutation_from_wire

PACKAGE = Path(statebox.__file__).parent
CONTEXT_PREFIXES = ("STATEBOX_", "DAG_", "AIRFLOW_CTX_", "GITHUB_")
JSON_TYPE = {"content-type": "application/json"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(CONTEXT_PREFIXES)}
    clean["STATEBOX_STORE"] = f"sqlite:///{tmp_path / 'state.db'}"
    clean["STATEBOX_DAG"] = "d"
    return clean


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[StateStore]:
    with open_store(env["STATEBOX_STORE"], context=RunContext(dag="d")) as s:
        yield s


def cli(env: dict[str, str], *args: str, before: str = "") -> subprocess.CompletedProcess[str]:
    """``statebox ARGS`` in a fresh interpreter, after running ``before`` there."""
    code = f"{before}\nimport sys\nfrom statebox.cli import main\nsys.exit(main({list(args)!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def cli_error(env: dict[str, str], code: int, *args: str) -> str:
    done = cli(env, *args)
    assert (done.returncode, done.stdout) == (code, ""), (done.stdout, done.stderr)
    assert done.stderr.startswith("Error: ")
    return done.stderr.removeprefix("Error: ").strip()


@pytest.fixture(scope="module")
def http() -> Iterator[Any]:
    from starlette.testclient import TestClient

    from statebox.server import create_app

    with TestClient(create_app("memory://"), base_url="http://127.0.0.1") as client:
        yield client


def http_error(http: Any, status: int, ops: list[Any]) -> str:
    answer = http.post("/v1/txn/custom/ops", json={"ops": ops})
    assert answer.status_code == status, answer.text
    message: str = answer.json()["error"]["message"]
    return message


# --- A: the CLI's txn needs no msgspec -----------------------------------------------

_NO_MSGSPEC = "import sys\nsys.modules['msgspec'] = None  # import msgspec: ImportError"


def test_txn_runs_without_msgspec(env: dict[str, str], store: StateStore) -> None:
    """``msgspec`` comes with the ``[server]`` extra only: ``statebox txn`` must work
    where it is not installed, keeping number literals as written."""
    ops = [
        {"op": "set", "key": "p", "value": "__VALUE__"},
        {"op": "set", "key": "b", "value": "aGk=", "encoding": "base64", "contentType": "x/y"},
        {"op": "set", "key": "t", "value": 1, "ttl": 2.5},
    ]
    text = json.dumps(ops).replace('"__VALUE__"', '{"price": 1.2300, "n": -0, "e": 1E5}')
    done = cli(env, "txn", text, before=_NO_MSGSPEC)
    assert done.returncode == 0, done.stderr
    assert [r["key"] for r in json.loads(done.stdout)["results"]] == ["p", "b", "t"]
    assert store.get("p").stored.text == '{"e":1E5,"n":-0,"price":1.2300}'  # type: ignore[union-attr]
    blob = store.get("b").stored
    assert blob is not None and (blob.data, blob.content_type) == (b"hi", "x/y")
    timed = store.get("t")
    assert timed.expires_at is not None and timed.expires_at - timed.updated_at == 2_500_000_000
    # and its refusals too
    assert "not JSON" in cli_error(env, 2, "txn", "[{")


def _loaded(env: dict[str, str], args: list[str]) -> set[str]:
    code = (
        "import sys\nfrom statebox.cli import main\n"
        f"assert main({args!r}) == 0\nprint(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split("\n")[-2].split())


def test_get_set_and_txn_never_import_msgspec(env: dict[str, str]) -> None:
    for args in (
        ["set", "k", '{"a": 1.50}'],
        ["get", "k"],
        ["txn", '[{"op": "set", "key": "k", "value": 2.50, "ttl": 60}]'],
    ):
        loaded = _loaded(env, args)
        assert "statebox.cli" in loaded
        assert not {name for name in loaded if name.split(".")[0] == "msgspec"}, args


# --- B: one definition of an operation, one reader of a JSON one ----------------------


def test_an_operations_fields_are_defined_and_checked_in_one_place() -> None:
    """The field table, the aliases and the refusals of a kind or a field are written
    in ``core/operations.py`` only: the engine's transactions and the wire's mutations
    both call it."""

    def defines(node: ast.AST) -> bool:
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            return False
        text = node.value
        return text in ("expectedVersion", "createOnly") or any(
            marker in text for marker in ('"op" must be', '"value" is required', "unknown field(s)")
        )

    writing = {
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if any(defines(node) for node in ast.walk(ast.parse(path.read_text())))
    }
    # Other things' unknown fields: a token file's (server/auth.py), a request body's.
    assert writing - {"server/auth.py", "web/decoding.py"} == {"core/operations.py"}


@pytest.mark.parametrize(
    ("raw", "refusal"),
    [
        ([1], 'must be an object like {"op": "set"'),
        ({"op": "put", "key": "k"}, '"op" must be "set" or "delete", not "put"'),
        ({"op": "set", "key": "k", "value": 1, "ttl_s": 1}, 'unknown field(s) "ttl_s"'),
        ({"op": "delete", "key": "k", "value": 1}, 'unknown field(s) "value"'),
        ({"op": "set", "value": 1}, '"key" is required'),
        ({"op": "set", "key": "k"}, '"value" is required (null is a value)'),
        ({"op": "set", "key": "k", "value": 1, "createOnly": 1}, '"create_only" 1: must be'),
    ],
)
def test_every_reader_refuses_an_operation_in_the_same_words(raw: Any, refusal: str) -> None:
    messages = []
    for read in (
        lambda: parse_operation(raw, 2),
        lambda: transaction_operation(raw, 2),
        lambda: mutation_from_wire(raw, 2, 0, normalize),
    ):
        with pytest.raises(InvalidValueError) as info:
            read()
        assert refusal in info.value.message
        messages.append(info.value.message.removeprefix("transaction "))
    assert len(set(messages)) == 1, messages


def test_a_json_operations_fencing_is_an_object_on_every_face(
    env: dict[str, str], store: StateStore, http: Any
) -> None:
    """``["job", 1]`` is the library's pair, not a JSON fencing: the CLI let it through
    to the engine (then refused it as stale, exit 4) while HTTP refused it (400)."""
    store.acquire_lease("job", 60)
    op = {"op": "set", "key": "t", "value": 1, "fencing": ["job", 1]}
    expected = (
        'transaction operation 0 (set "t"): invalid "fencing" ["job", 1]: must be '
        '{"lease": NAME, "token": N} (or null)'
    )
    assert cli_error(env, 2, "txn", json.dumps([op])) == expected
    assert http_error(http, 400, [op]) == expected
    assert not store.get("t").found
    # the object form works on both
    fenced = {**op, "fencing": {"lease": "job", "token": 1}}
    assert cli(env, "txn", json.dumps([fenced])).returncode == 0
    assert store.get("t").version == 1


def test_a_json_operations_expected_version_is_0_or_more_on_every_face(
    env: dict[str, str], http: Any
) -> None:
    """``?expected_version=-1`` and ``--expected-version -1`` are malformed (400, exit 2):
    so is an operation's ``"expected_version": -1`` (it was a conflict, 409 / exit 4)."""
    for name in ("expected_version", "expectedVersion"):
        op = {"op": "delete", "key": "t", name: -1}
        expected = 'transaction operation 0 (delete "t"): invalid "expected_version" -1: must be'
        assert cli_error(env, 2, "txn", json.dumps([op])).startswith(expected)
        assert http_error(http, 400, [op]).startswith(expected)
    assert cli_error(env, 2, "set", "k", "1", "--expected-version", "-1").startswith(
        "invalid --expected-version -1"
    )
    text = '[{"op": "set", "key": "t", "value": 1, "expected_version": 1.0}]'
    assert cli_error(env, 2, "txn", text).endswith(
        'invalid "expected_version" 1.0: must be an integer'
    )


def test_transaction_operation_gives_the_engine_what_it_takes() -> None:
    op = transaction_operation(
        loads_exact(
            '{"op": "set", "key": "k", "value": 1.50, "expectedVersion": 0, "createOnly": true,'
            ' "ttl": 0.000000001, "fencing": {"lease": "job", "token": 2}}'
        ),
        0,
    )
    assert op == {
        "op": "set",
        "key": "k",
        "value": op["value"],
        "expected_version": 0,
        "create_only": True,
        "ttl": op["ttl"],
        "fencing": Fence("job", 2),
    }
    assert str(op["value"]) == "1.50" and int(op["ttl"] * 1e9) == 1
    # the server's parse (the value kept as text) reads the same
    raw = b'{"op": "delete", "key": "k", "fencing": null, "expected_version": null}'
    assert transaction_operation(batch_operation(raw), 0) == {
        "op": "delete",
        "key": "k",
        "fencing": None,
        "expected_version": None,
    }


def test_the_library_keeps_its_python_forms() -> None:
    """Only the JSON readers tightened: the library still takes a (lease, token) pair (a
    list too) in a dict, SetOp with a fencing tuple, and an expected version below 0 as
    a version no key is at (a conflict)."""
    with open_store("memory://", context=RunContext()) as store:
        lease = store.acquire_lease("job", 60)
        pair = ("job", lease.token)
        done = store.transaction(
            [
                {"op": "set", "key": "a", "value": 1, "fencing": pair},
                {"op": "set", "key": "b", "value": 1, "fencing": list(pair)},
                SetOp("c", 1, fencing=pair),
                {"op": "set", "key": "d", "value": 1, "fencing": lease},
            ],
            fencing=pair,
            namespace="n",
        )
        assert [r.to_dict()["version"] for r in done.results] == [1, 1, 1, 1]
        for op in (
            {"op": "set", "key": "a", "value": 2, "expected_version": -1},
            SetOp("a", 2, expected_version=-1),
        ):
            with pytest.raises(ConflictError):
                store.transaction([op], namespace="n")


# --- C: a ttl's refusal names the operation, in no face's flag ------------------------


def test_a_txn_ttl_is_refused_as_written_naming_the_operation(
    env: dict[str, str], http: Any
) -> None:
    """``"ttl": 0`` was refused by the engine after it became the float 0.0, with the
    CLI's own ``(--ttl)``, a flag ``txn`` does not have."""
    for ttl, shown in (("0", "0"), ("-1.50", "-1.50"), ("0.0000000001", "0.0000000001")):
        text = f'[{{"op": "set", "key": "t", "value": 1.10, "ttl": {ttl}}}]'
        expected = (
            f'transaction operation 0 (set "t"): invalid "ttl" {shown}: must be a positive '
            "number of seconds (at least 0.000000001)"
        )
        assert cli_error(env, 2, "txn", text) == expected
        answer = http.post("/v1/txn/custom/ops", content=f'{{"ops": {text}}}', headers=JSON_TYPE)
        assert answer.status_code == 400 and answer.json()["error"]["message"] == expected


def test_an_operations_refusal_in_the_engine_carries_no_parameter() -> None:
    with (
        open_store("memory://", context=RunContext()) as store,
        pytest.raises(InvalidValueError) as info,
    ):
        store.transaction([{"op": "set", "key": "t", "value": 1, "ttl": 0}], namespace="n")
    assert info.value.params == ()
    assert info.value.message.startswith('transaction operation 0 (set "t"): invalid ttl 0')


def test_the_faces_refusals_are_request_errors() -> None:
    with pytest.raises(InvalidRequestError) as info:
        transaction_operation({"op": "set", "key": "t", "value": 1, "ttl": "soon"}, 4)
    assert info.value.params == ()
    assert info.value.message.startswith('transaction operation 4 (set "t"): invalid "ttl"')
