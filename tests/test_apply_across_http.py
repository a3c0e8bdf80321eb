"""A transaction across keyspaces over HTTP: the server's ``POST /v1/apply`` (several
keyspaces, one ``backend.apply_batch``) and the remote store's ``apply_batch`` over it.

Real servers in subprocesses on loopback ports, with a real tokens file: a token must be
allowed to write every keyspace of a batch, and nothing is written when it may not, when
a guard fails in any keyspace, or when the request is over a limit. The remote store
sends one request to one coordinator, and refuses keyspaces that live on several.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from statebox import (
    ConflictError,
    InvalidRequestError,
    Keyspace,
    RunContext,
    StateStore,
    open_store,
)
from statebox.backends._routing import choose
from statebox.backends.base import Put
from statebox.core.exactjson import MAX_DEPTH
from statebox.core.model import UpdatedBy
from statebox.core.records import WriteContext

from .server_util import ServerProcess, running_server

ADMIN = "admin-secret-0123456789abc"
WRITER_A = "writer-a-secret-0123456789"  # writes custom/a (and fences with job-a*) only
TOKENS_YAML = f"""
tokens:
  - name: admin
    secret: {ADMIN}
    grants:
      - {{access: write}}
  - name: writer-a
    sha256: {hashlib.sha256(WRITER_A.encode()).hexdigest()}
    grants:
      - {{access: write, scope: custom, namespace: "a"}}
      - {{access: read, scope: custom, namespace: "b"}}
      - {{access: write, scope: lease, namespace: "job-a*"}}
"""
CONTEXT = RunContext(dag="across", run_id="r1", step="s1")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("across")
    tokens = directory / "tokens.yaml"
    tokens.write_text(TOKENS_YAML)
    with running_server(
        f"sqlite:///{directory / 'state.db'}?synchronous=NORMAL", tokens=tokens
    ) as srv:
        yield srv


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with as_token(server, ADMIN) as client:
        yield client


def as_token(server: ServerProcess, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"authorization": f"Bearer {secret}"}, timeout=30
    )


def batch(scope: str, namespace: str, *ops: dict[str, Any]) -> dict[str, Any]:
    return {"scope": scope, "namespace": namespace, "ops": list(ops)}


def put(key: str, value: Any, **more: Any) -> dict[str, Any]:
    return {"op": "set", "key": key, "value": value, **more}


def value_of(client: httpx.Client, scope: str, namespace: str, key: str) -> Any:
    answer = client.get(f"/v1/kv/{scope}/{namespace}/{key}")
    assert answer.status_code == 200, answer.text
    return answer.json().get("value")  # {"found": false} when missing


def error(response: httpx.Response) -> dict[str, Any]:
    found: dict[str, Any] = response.json()["error"]
    return found


# --- the route ------------------------------------------------------------------------


def test_one_request_writes_several_keyspaces(admin: httpx.Client) -> None:
    admin.put("/v1/kv/custom/t1-b/old", content=b"1")
    answer = admin.post(
        "/v1/apply",
        json={
            "batches": [
                batch("custom", "t1-a", put("x", {"n": 1.50}), put("y", [1])),
                batch("custom", "t1-b", {"op": "delete", "key": "old"}),
                batch("global", "t1", put("z", "zz", ttl=60)),
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    batches = answer.json()["batches"]
    assert [len(b["results"]) for b in batches] == [2, 1, 1]
    first = batches[0]["results"][0]
    assert first["previous"] is None and first["current"]["version"] == 1
    assert batches[1]["results"][0]["previous"]["key"] == "old"
    assert batches[1]["results"][0]["current"] is None
    assert "expiresAt" in batches[2]["results"][0]["current"]
    assert value_of(admin, "custom", "t1-a", "y") == [1]
    assert value_of(admin, "custom", "t1-b", "old") is None
    assert value_of(admin, "global", "t1", "z") == "zz"


def test_a_failed_guard_in_a_later_keyspace_writes_nothing(admin: httpx.Client) -> None:
    admin.put("/v1/kv/custom/t2-b/k", content=b"1")  # version 1
    answer = admin.post(
        "/v1/apply",
        json={
            "batches": [
                batch("custom", "t2-a", put("x", 1), put("y", 2)),
                batch("custom", "t2-b", put("j", 3), put("k", 4, expected_version=7)),
            ]
        },
    )
    assert answer.status_code == 409, answer.text
    assert error(answer)["index"] == 3  # flat: counted across the batches in order
    assert error(answer)["currentVersion"] == 1
    # the message names the batch and its keyspace, not only the flat index
    assert error(answer)["message"].startswith('batches[1] (scope "custom", namespace "t2-b"): ')
    for namespace, key in [("t2-a", "x"), ("t2-a", "y"), ("t2-b", "j")]:
        assert value_of(admin, "custom", namespace, key) is None
    assert value_of(admin, "custom", "t2-b", "k") == 1


def test_the_token_must_be_allowed_to_write_every_keyspace(server: ServerProcess) -> None:
    with as_token(server, WRITER_A) as a, as_token(server, ADMIN) as admin:
        mine = batch("custom", "a", put("t3", 1))
        for other in (batch("custom", "b", put("t3", 2)), batch("global", "_", put("t3", 3))):
            for batches in ([mine, other], [other, mine]):
                refused = a.post("/v1/apply", json={"batches": batches})
                assert refused.status_code == 403, refused.text
                message = error(refused)["message"]  # names the keyspace it may not write
                assert f'scope "{other["scope"]}", namespace "{other["namespace"]}"' in message
                assert "write grant" in message
        assert value_of(admin, "custom", "a", "t3") is None  # nothing written
        assert value_of(admin, "custom", "b", "t3") is None
        # the first keyspace it may not write is the one named
        refused = a.post(
            "/v1/apply",
            json={
                "batches": [mine, batch("custom", "c", put("k", 1)), batch("dag", "d", put("k", 1))]
            },
        )
        assert 'namespace "c"' in error(refused)["message"]
        # before any operation is read: a malformed one behind a forbidden keyspace is a 403
        odd = a.post("/v1/apply", json={"batches": [batch("custom", "b", {"op": "nope"}), mine]})
        assert odd.status_code == 403
        # keyspaces it may write: accepted
        assert a.post("/v1/apply", json={"batches": [mine]}).status_code == 200
        assert value_of(admin, "custom", "a", "t3") == 1


def test_a_fence_needs_a_grant_on_its_lease_and_refuses_everything(server: ServerProcess) -> None:
    with as_token(server, WRITER_A) as a, as_token(server, ADMIN) as admin:
        admin.put("/v1/kv/custom/t4/k", content=b"1")
        fenced = put("t4", 1, fencing={"lease": "someone-else", "token": 1})
        refused = a.post("/v1/apply", json={"batches": [batch("custom", "a", fenced)]})
        assert refused.status_code == 403 and "someone-else" in error(refused)["message"]
        lease = admin.post(
            "/v1/leases/acquire", json={"name": "job-a1", "ttl": 60, "holder": "h"}
        ).json()
        stale = {"lease": "job-a1", "token": lease["token"] + 5}
        answer = admin.post(
            "/v1/apply",
            json={
                "batches": [
                    batch("custom", "t4-other", put("x", 1)),
                    batch("custom", "t4", put("k", 2, fencing=stale)),
                ]
            },
        )
        assert answer.status_code == 409 and error(answer)["kind"] == "fencing", answer.text
        assert value_of(admin, "custom", "t4-other", "x") is None
        assert value_of(admin, "custom", "t4", "k") == 1


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"batches": []}, '"batches"'),
        (
            {"batches": [batch("custom", "t5", put("k", 1)), batch("custom", "t5", put("j", 1))]},
            "appears twice",
        ),
        ({"batches": [batch("custom", "t5-x", put("k", 1)), batch("custom", "t5")]}, '"ops"'),
        ({"batches": [batch("custom", "a/b", put("k", 1))]}, "namespace"),
        ({"batches": [batch("custom", "t5", put("k", 1))], "extra": 1}, "extra"),
        ({"batches": [{**batch("custom", "t5", put("k", 1)), "more": 1}]}, "more"),
        (  # counted across the batches, as a conflict's index is
            {
                "batches": [
                    batch("custom", "t5-x", put("k", 1), put("j", 1)),
                    batch("custom", "t5", put("k", 1), {"op": "set"}),
                ]
            },
            'batches[1] (scope "custom", namespace "t5"): operation 3',
        ),
        (  # a bad key: named with its batch and keyspace too
            {
                "batches": [
                    batch("custom", "t5-x", put("k", 1)),
                    batch("custom", "t5", put("../k", 1)),
                ]
            },
            'batches[1] (scope "custom", namespace "t5"): ',
        ),
    ],
)
def test_malformed_batches_are_refused_and_write_nothing(
    admin: httpx.Client, body: dict[str, Any], said: str
) -> None:
    refused = admin.post("/v1/apply", json=body)
    assert refused.status_code in (400, 422), refused.text
    assert said in error(refused)["message"]
    assert value_of(admin, "custom", "t5", "k") is None
    assert value_of(admin, "custom", "t5-x", "k") is None


def test_a_big_batch_and_deep_values_are_accepted(admin: httpx.Client) -> None:
    # more than 16 operations: parsed and committed on the writer thread
    ops = [put(f"k{i}", i) for i in range(20)]
    answer = admin.post(
        "/v1/apply",
        json={"batches": [batch("custom", "t6-a", *ops), batch("custom", "t6-b", *ops)]},
    )
    assert answer.status_code == 200, answer.text
    assert value_of(admin, "custom", "t6-b", "k19") == 19
    # a value as deep as any value may be: the body wraps it two levels more than
    # /v1/apply/{scope}/{namespace} does, and is held to the same limit for its values
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    body = (
        '{"batches":[{"scope":"custom","namespace":"t6-c","ops":[{"op":"set","key":"d",'
        f'"value":{deep}}}]}},{{"scope":"custom","namespace":"t6-d","ops":[{{"op":"delete",'
        '"key":"d"}]}]}'
    )
    headers = {"content-type": "application/json"}
    answer = admin.post("/v1/apply", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    deeper = body.replace(deep, "[" + deep + "]")
    refused = admin.post("/v1/apply", content=deeper, headers=headers)
    assert refused.status_code == 422 and error(refused)["kind"] == "nesting_too_deep"


def test_the_operations_of_all_keyspaces_count_against_the_limits(tmp_path: Path) -> None:
    args = ["--max-txn-ops", "3", "--max-body-bytes", "4096"]
    with running_server(f"sqlite:///{tmp_path / 's.db'}", args=args) as srv:
        http = srv.client
        two = batch("custom", "t7-a", put("x", 1), put("y", 2))
        refused = http.post(
            "/v1/apply", json={"batches": [two, batch("custom", "t7-b", *two["ops"])]}
        )
        assert refused.status_code == 400
        assert "4 exceeds max_txn_ops 3" in error(refused)["message"]
        # counted before any batch is looked at (a loop over the batches on the event
        # loop is bounded by it): a bad namespace and a repeated keyspace are not reached
        four = [
            batch("custom", "a/b", put("x", 1)),
            batch("custom", "t7-a", put("x", 1)),
            batch("custom", "t7-a", put("y", 1)),
            batch("custom", "t7-c", put("x", 1)),
        ]
        refused = http.post("/v1/apply", json={"batches": four})
        assert refused.status_code == 400
        assert "4 exceeds max_txn_ops 3" in error(refused)["message"]
        big = batch("custom", "t7-b", put("z", "x" * 5000))
        assert http.post("/v1/apply", json={"batches": [two, big]}).status_code == 413
        assert value_of(http, "custom", "t7-a", "x") is None
        ok = http.post("/v1/apply", json={"batches": [two, batch("custom", "t7-b", put("z", 3))]})
        assert ok.status_code == 200 and value_of(http, "custom", "t7-b", "z") == 3


def test_the_route_is_documented(admin: httpx.Client) -> None:
    schema = admin.get("/openapi.json").json()
    operation = schema["paths"]["/v1/apply"]["post"]
    assert set(operation["responses"]) >= {"200", "403", "409"}
    assert "KeyspaceOps" in schema["components"]["schemas"]


# --- the remote store -----------------------------------------------------------------


@pytest.fixture
def remote(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[StateStore]:
    monkeypatch.setenv("STATEBOX_TOKEN", ADMIN)
    with open_store(server.url, context=CONTEXT) as store:
        yield store


def test_the_remote_store_writes_several_keyspaces_all_or_nothing(
    remote: StateStore, admin: httpx.Client
) -> None:
    results = remote.transaction_across(
        [
            ("custom", "t8-a", [{"op": "set", "key": "x", "value": {"n": 1.50}}]),
            ("global", "t8", [{"op": "set", "key": "y", "value": 2, "ttl": 60}]),
        ]
    )
    assert [r.results[0].version for r in results] == [1, 1]
    got = remote.get("x", scope="custom", namespace="t8-a")
    assert got.value == {"n": 1.50} and got.updated_by.principal == "admin"
    assert got.updated_by.dag_name == "across"  # the run context travelled
    assert remote.get("y", scope="global", namespace="t8").expires_at is not None
    with pytest.raises(ConflictError) as refused:
        remote.transaction_across(
            [
                ("custom", "t8-a", [{"op": "set", "key": "x", "value": 9}]),
                ("global", "t8", [{"op": "set", "key": "y", "value": 9, "expected_version": 5}]),
            ]
        )
    assert refused.value.index == 1
    assert remote.get("x", scope="custom", namespace="t8-a").value == {"n": 1.50}
    assert remote.get("y", scope="global", namespace="t8").value == 2


def test_the_remote_store_sends_one_request(
    remote: StateStore, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = remote.backend
    sent: list[str] = []
    transport = backend._transport  # type: ignore[attr-defined]
    send = transport.send

    def spy(coordinator: str, method: str, path: str, **options: Any) -> Any:
        sent.append(f"{method} {path}")
        return send(coordinator, method, path, **options)

    monkeypatch.setattr(transport, "send", spy)
    remote.transaction_across(
        [
            ("custom", "t9-a", [{"op": "set", "key": "x", "value": 1}]),
            ("custom", "t9-b", [{"op": "delete", "key": "x"}]),
            ("custom", "t9-c", [{"op": "set", "key": "x", "value": 3}]),
        ]
    )
    assert sent == ["POST /v1/apply"]
    sent.clear()
    # one keyspace with operations: the single-keyspace route, as apply takes it
    remote.transaction_across(
        [("custom", "t9-a", [{"op": "set", "key": "x", "value": 2}]), ("custom", "t9-b", [])]
    )
    assert sent == ["POST /v1/apply/custom/t9-a"]
    assert value_of(admin, "custom", "t9-a", "x") == 2
    assert value_of(admin, "custom", "t9-c", "x") == 3


def test_the_remote_store_refuses_a_repeated_keyspace(remote: StateStore) -> None:
    ctx = WriteContext(now=1, updated_by=UpdatedBy())
    space = Keyspace("custom", "t10")
    with pytest.raises(InvalidRequestError, match="twice"):
        remote.backend.apply_batch([(space, []), (space, [])], ctx)


def _two_namespaces(coordinators: list[str], *, same: bool) -> tuple[str, str]:
    first = "ns-0"
    owner = choose(Keyspace("custom", first).routing_key, coordinators)
    for i in range(1, 200):
        other = f"ns-{i}"
        if (choose(Keyspace("custom", other).routing_key, coordinators) == owner) == same:
            return first, other
    raise AssertionError("no such namespace")


def test_keyspaces_on_different_coordinators_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATEBOX_TOKEN", raising=False)
    with (
        running_server(f"sqlite:///{tmp_path / 'one.db'}") as one,
        running_server(f"sqlite:///{tmp_path / 'two.db'}") as two,
        open_store(f"{one.url},{two.url}", context=CONTEXT) as store,
    ):
        coordinators = [one.url, two.url]
        apart = _two_namespaces(coordinators, same=False)
        with pytest.raises(InvalidRequestError) as refused:
            store.transaction_across(
                [("custom", ns, [{"op": "set", "key": "k", "value": 1}]) for ns in apart]
            )
        message = str(refused.value)
        assert "different coordinators cannot be all-or-nothing" in message
        assert one.url in message and two.url in message
        for ns in apart:
            assert f'namespace "{ns}"' in message
        for server in (one, two):  # nothing was sent anywhere
            for ns in apart:
                assert value_of(server.client, "custom", ns, "k") is None
        together = _two_namespaces(coordinators, same=True)
        store.transaction_across(
            [("custom", ns, [{"op": "set", "key": "k", "value": 2}]) for ns in together]
        )
        for ns in together:
            assert store.get("k", scope="custom", namespace=ns).value == 2
        # an empty batch writes nothing: only the keyspaces sent must share a coordinator
        empty, sent = (Keyspace("custom", ns) for ns in apart)
        put_k = Put("k", store.normalize(3), None)
        applied = store.backend.apply_batch([(empty, []), (sent, [put_k])], store._write_context())
        assert [len(a) for a in applied] == [0, 1]
        assert store.get("k", scope="custom", namespace=sent.namespace).value == 3
