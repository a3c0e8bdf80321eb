"""Dapr requests within the server's limits, and never holding its event loop.

A write of several items (a save, a bulk delete, a transaction) has at most the
server's ``--max-txn-ops`` operations: more is Dapr's 400
``ERR_STATE_STORE_TOO_MANY_TRANSACTIONS`` / ``INVALID_ARGUMENT``, and nothing is written.
A big request (a save or transaction of many items, a bulk get of many keys, a big
object) runs off the event loop: ``/v1.0/healthz`` keeps answering while it runs. Both
against a real ``statebox serve`` on SQLite (tests/test_dapr_grpc.py's server), over
HTTP and gRPC. Listings (a binding's ``list``, bulk secrets) are read a page at a time
and bounded: against the transport-free operations on a real SQLite store.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import binding_pb2, dapr_pb2_grpc, state_pb2

from statebox import StateStore
from statebox.core.values import Blob, RawJSON
from statebox.dapr import bindings_api, secrets_api
from statebox.dapr.bindings_api import invoke_binding
from statebox.dapr.components import load_components
from statebox.dapr.errors import DaprError
from statebox.dapr.secrets_api import get_bulk_secret
from statebox.dapr.state_api import (
    BIG_READ_KEYS,
    TOO_MANY_TRANSACTIONS,
    DaprContext,
    DeleteItem,
    SaveItem,
    delete_bulk_state,
    execute_transaction,
    get_bulk_state,
    save_state,
)
from statebox.transactions import SetOp

from .conftest import make_store
from .dapr_http_support import STATESTORE_YAML as SEED_STATESTORE
from .dapr_support import StoreCaller
from .test_dapr_grpc import APP, DaprServer, dapr_server

T = TypeVar("T")

#: The limit of the server that refuses big transactions.
LIMIT = 4
#: Items of the big writes (the server allowing them): committed on the event loop, as
#: they were before, each one held every other request for seconds (a 60,000-item save
#: about 4 s on a 2-core machine; 300,000 items 17 s).
BIG = 60_000
#: Keys of the big bulk get (150,000 held the loop about 4 s; 300,000 keys 8.5 s).
BIG_GET = 150_000
#: The worst /v1.0/healthz answer allowed while a big request runs: generous, for a
#: loaded machine (off the loop it is tens of milliseconds).
HEALTHZ_BOUND = 2.0
STATESTORE = "/v1.0/state/statestore"
TOKEN = {"dapr-api-token": APP}


def run(work: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await work

    return asyncio.run(wrapped())


# --- servers, clients ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaprServer]:
    """A server whose transactions have at most LIMIT operations."""
    where = tmp_path_factory.mktemp("dapr-limited")
    with dapr_server(where, args=["--max-txn-ops", str(LIMIT)]) as srv:
        yield srv


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaprServer]:
    """A server that allows the big requests."""
    where = tmp_path_factory.mktemp("dapr-roomy")
    with dapr_server(where, max_body=64 << 20, args=["--max-txn-ops", str(BIG_GET)]) as srv:
        yield srv


@contextmanager
def http(server: DaprServer) -> Iterator[httpx.Client]:
    base = f"http://127.0.0.1:{server.http_port}"
    with httpx.Client(base_url=base, headers=TOKEN, timeout=300) as client:
        yield client


@contextmanager
def stub(server: DaprServer) -> Iterator[Any]:
    options = [
        ("grpc.max_send_message_length", 64 << 20),
        ("grpc.max_receive_message_length", 64 << 20),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options) as channel:
        yield dapr_pb2_grpc.DaprStub(channel)


def metadata() -> list[tuple[str, str]]:
    return [("dapr-api-token", APP)]


def grpc_failure(call: Callable[[], object]) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def existing(server: DaprServer, keys: list[str]) -> list[str]:
    """Which of the Dapr ``keys`` exist (read through statebox's own API)."""
    with server.store() as store:
        entries = store.list(scope="custom", namespace="dapr-statestore").entries
    stored = {entry.key for entry in entries}
    return [key for key in keys if f"statebox||{key}" in stored]


@contextmanager
def worst_healthz(server: DaprServer) -> Iterator[list[float]]:
    """Inside: ``/v1.0/healthz`` asked again and again from another thread; gives each
    answer's latency (the worst is what the loop was held for)."""
    latencies: list[float] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        url = f"http://127.0.0.1:{server.http_port}/v1.0/healthz"
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    answer = client.get(url)
                    assert answer.status_code == 204, answer.text
                except BaseException as exc:  # reported by the test's thread
                    failures.append(exc)
                    return
                latencies.append(time.monotonic() - started)
                stop.wait(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield latencies
    finally:
        stop.set()
        poller.join(timeout=180)
    if failures:
        raise failures[0]


def assert_loop_free(latencies: list[float]) -> None:
    worst = max(latencies, default=0.0)
    assert worst < HEALTHZ_BOUND and len(latencies) >= 3, (
        f"/v1.0/healthz waited up to {worst:.2f} s while the big request ran "
        f"({len(latencies)} answers)"
    )


# --- over --max-txn-ops: Dapr's answer, nothing written -----------------------------------


def too_many_message(count: int) -> str:
    return (
        f"the transaction contains {count} operations, which is more than what the state "
        f"store supports: {LIMIT}"
    )


def test_an_http_save_over_the_limit_is_refused_and_writes_nothing(limited: DaprServer) -> None:
    keys = [f"http-over-{i}" for i in range(LIMIT + 1)]
    with http(limited) as client:
        refused = client.post(STATESTORE, json=[{"key": k, "value": 1} for k in keys])
        assert refused.status_code == 400
        assert refused.json() == {
            "errorCode": TOO_MANY_TRANSACTIONS,
            "message": too_many_message(LIMIT + 1),
        }
        assert existing(limited, keys) == []
        allowed = client.post(STATESTORE, json=[{"key": k, "value": 1} for k in keys[:LIMIT]])
        assert allowed.status_code == 204
    assert existing(limited, keys) == keys[:LIMIT]


def test_an_http_transaction_over_the_limit_is_refused_and_writes_nothing(
    limited: DaprServer,
) -> None:
    keys = [f"http-txn-over-{i}" for i in range(LIMIT + 1)]
    operations = [{"operation": "upsert", "request": {"key": k, "value": 1}} for k in keys]
    with http(limited) as client:
        refused = client.post(STATESTORE + "/transaction", json={"operations": operations})
    assert refused.status_code == 400
    assert refused.json()["errorCode"] == TOO_MANY_TRANSACTIONS
    assert refused.json()["message"] == too_many_message(LIMIT + 1)
    assert existing(limited, keys) == []


def test_grpc_writes_over_the_limit_are_invalid_arguments_and_write_nothing(
    limited: DaprServer,
) -> None:
    keys = [f"grpc-over-{i}" for i in range(LIMIT + 1)]
    items = [common_pb2.StateItem(key=k, value=b"1") for k in keys]
    with stub(limited) as dapr:
        save = state_pb2.SaveStateRequest(store_name="statestore", states=items)
        error = grpc_failure(lambda: dapr.SaveState(save, metadata=metadata()))
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            too_many_message(LIMIT + 1),
        )
        operations = [
            state_pb2.TransactionalStateOperation(operationType="upsert", request=item)
            for item in items
        ]
        txn = state_pb2.ExecuteStateTransactionRequest(
            storeName="statestore", operations=operations
        )
        error = grpc_failure(lambda: dapr.ExecuteStateTransaction(txn, metadata=metadata()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == too_many_message(LIMIT + 1)
        assert existing(limited, keys) == []
        # A bulk delete over the limit deletes none of the keys.
        for start in range(0, len(items), LIMIT):
            chunk = state_pb2.SaveStateRequest(
                store_name="statestore", states=items[start : start + LIMIT]
            )
            dapr.SaveState(chunk, metadata=metadata())
        assert existing(limited, keys) == keys
        delete = state_pb2.DeleteBulkStateRequest(store_name="statestore", states=items)
        error = grpc_failure(lambda: dapr.DeleteBulkState(delete, metadata=metadata()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert existing(limited, keys) == keys


# --- big requests off the event loop ------------------------------------------------------


def test_a_big_http_save_leaves_the_server_answering(roomy: DaprServer) -> None:
    keys = [f"http-big-{i}" for i in range(BIG)]
    body = json.dumps([{"key": k, "value": {"n": i}} for i, k in enumerate(keys)])
    with http(roomy) as client, worst_healthz(roomy) as latencies:
        answer = client.post(STATESTORE, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 204, answer.text
    assert_loop_free(latencies)
    with http(roomy) as client:
        sample = client.post(STATESTORE + "/bulk", json={"keys": [keys[0], keys[-1]]}).json()
    assert [item["data"] for item in sample] == [{"n": 0}, {"n": BIG - 1}]


def test_a_big_grpc_save_and_transaction_leave_the_server_answering(roomy: DaprServer) -> None:
    items = [common_pb2.StateItem(key=f"grpc-big-{i}", value=b'{"n": 1}') for i in range(BIG)]
    save = state_pb2.SaveStateRequest(store_name="statestore", states=items)
    operations = [
        state_pb2.TransactionalStateOperation(
            operationType="upsert", request=common_pb2.StateItem(key=f"txn-big-{i}", value=b"2")
        )
        for i in range(BIG)
    ]
    txn = state_pb2.ExecuteStateTransactionRequest(storeName="statestore", operations=operations)
    with stub(roomy) as dapr:
        with worst_healthz(roomy) as latencies:
            dapr.SaveState(save, metadata=metadata())
        assert_loop_free(latencies)
        with worst_healthz(roomy) as latencies:
            dapr.ExecuteStateTransaction(txn, metadata=metadata())
        assert_loop_free(latencies)
        last = f"txn-big-{BIG - 1}"
        got = dapr.GetState(
            state_pb2.GetStateRequest(store_name="statestore", key=last), metadata=metadata()
        )
    assert (got.data, got.etag) == (b"2", "1")


def test_a_big_bulk_get_leaves_the_server_answering(roomy: DaprServer) -> None:
    # BIG keys saved (their values' bytes in the answer), the rest never written.
    with stub(roomy) as dapr:
        items = [common_pb2.StateItem(key=f"get-big-{i}", value=b"3") for i in range(BIG)]
        dapr.SaveState(
            state_pb2.SaveStateRequest(store_name="statestore", states=items),
            metadata=metadata(),
        )
    keys = [f"get-big-{i}" for i in range(BIG_GET)]
    with http(roomy) as client, worst_healthz(roomy) as latencies:
        answer = client.post(STATESTORE + "/bulk", json={"keys": keys})
    assert answer.status_code == 200
    assert_loop_free(latencies)
    found = answer.json()
    assert [item["key"] for item in found] == keys
    assert found[0] == {"key": "get-big-0", "data": 3, "etag": "1"}
    assert found[-1] == {"key": f"get-big-{BIG_GET - 1}"}


def test_a_big_object_is_created_off_the_loop(roomy: DaprServer) -> None:
    # 16 MB of JSON: whether it is JSON, and its normalized text, are worked out on the
    # writer thread.
    data = json.dumps([{"n": i, "s": "abcdefgh"} for i in range(600_000)]).encode()
    request = binding_pb2.InvokeBindingRequest(
        name="objectstore", operation="create", data=data, metadata={"key": "big.json"}
    )
    with stub(roomy) as dapr:
        with worst_healthz(roomy) as latencies:
            created = dapr.InvokeBinding(request, metadata=metadata())
        assert created.metadata["key"] == "big.json"
        got = dapr.InvokeBinding(
            binding_pb2.InvokeBindingRequest(
                name="objectstore", operation="get", metadata={"key": "big.json"}
            ),
            metadata=metadata(),
        )
    assert_loop_free(latencies)
    assert json.loads(got.data) == json.loads(data)


# --- the operations: what runs alone, listings paged and bounded --------------------------


@pytest.fixture
def dapr(tmp_path: Path) -> DaprContext:
    folder = tmp_path / "components"
    folder.mkdir()
    (folder / "statestore.yaml").write_text(SEED_STATESTORE)
    for name, kind in (
        ("objectstore", "bindings.localstorage"),
        ("vault", "secretstores.local.file"),
    ):
        (folder / f"{name}.yaml").write_text(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n"
            f"  name: {name}\nspec:\n  type: {kind}\n  version: v1\n"
        )
    return DaprContext(load_components(folder), "myapp")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with make_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def test_the_operations_check_the_limit_before_writing(
    store: StateStore, dapr: DaprContext
) -> None:
    caller = StoreCaller(store, max_txn_ops=2)
    three = [SaveItem(f"k{i}", RawJSON(b"1")) for i in range(3)]
    deletes = [DeleteItem(f"k{i}") for i in range(3)]
    for work in (
        lambda: save_state(caller, dapr, "statestore", three),
        lambda: execute_transaction(caller, dapr, "statestore", three, {}),
        lambda: delete_bulk_state(caller, dapr, "statestore", deletes),
    ):
        with pytest.raises(DaprError) as caught:
            run(work())
        error = caught.value
        assert (error.code, error.http_status, error.grpc_status) == (
            TOO_MANY_TRANSACTIONS,
            400,
            "INVALID_ARGUMENT",
        )
        assert error.message.endswith("which is more than what the state store supports: 2")
    assert caller.writes == 0


def test_big_writes_and_reads_are_asked_to_run_alone(store: StateStore, dapr: DaprContext) -> None:
    caller = StoreCaller(store, max_txn_ops=1000)
    run(save_state(caller, dapr, "statestore", [SaveItem("one", RawJSON(b"1"))]))
    many = [SaveItem(f"m{i}", RawJSON(b"1")) for i in range(100)]
    run(save_state(caller, dapr, "statestore", many))
    huge = SaveItem("huge", Blob(b"x" * (1 << 20)))
    run(save_state(caller, dapr, "statestore", [huge]))
    big_object = json.dumps(list(range(100_000))).encode()
    run(invoke_binding(caller, dapr, "objectstore", "create", big_object, {"key": "o"}))
    run(invoke_binding(caller, dapr, "objectstore", "create", b"{}", {"key": "p"}))
    assert caller.alone_writes == [False, True, True, True, False]

    run(get_bulk_state(caller, dapr, "statestore", ["one"] * BIG_READ_KEYS, {}))
    items = run(get_bulk_state(caller, dapr, "statestore", ["one"] * (BIG_READ_KEYS + 1), {}))
    assert [item.data for item in items] == [b"1"] * (BIG_READ_KEYS + 1)
    run(invoke_binding(caller, dapr, "objectstore", "list", b"", {}))
    run(get_bulk_secret(caller, dapr, "vault", {}))
    assert caller.alone_reads == [False, True, True, True]


def test_a_binding_list_is_read_a_page_at_a_time_and_bounded(
    store: StateStore, dapr: DaprContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bindings_api, "LIST_PAGE", 3)
    ks = dapr.components.binding("objectstore").keyspace
    plain = [f"dir/{i:02d}.json" for i in range(7)]
    odd = [f"dir/odd name {i}" for i in range(4)]  # encoded keys
    caller = StoreCaller(store)
    for name in [*plain, *odd, "elsewhere/x", "dirt"]:
        run(invoke_binding(caller, dapr, "objectstore", "create", b"1", {"key": name}))
    assert len(store.list(scope=ks.scope, namespace=ks.namespace).entries) == 13

    def listed(prefix: str) -> Any:
        data = run(invoke_binding(caller, dapr, "objectstore", "list", b"", {"prefix": prefix}))
        return json.loads(data.data)

    assert listed("dir/") == sorted(plain + odd)
    assert listed("") == sorted([*plain, *odd, "elsewhere/x", "dirt"])
    assert listed("dir/ ") == []  # not a statebox prefix: every key decoded
    monkeypatch.setattr(bindings_api, "MAX_LISTED", 11)
    assert len(listed("dir/")) == 11
    monkeypatch.setattr(bindings_api, "MAX_LISTED", 10)
    with pytest.raises(DaprError) as caught:
        listed("dir/")
    assert caught.value.code == "ERR_INVOKE_OUTPUT_BINDING"
    assert "more than 10 objects under prefix 'dir/'" in caught.value.message


def test_bulk_secrets_are_read_a_page_at_a_time_and_bounded(
    store: StateStore, dapr: DaprContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets_api, "SECRETS_PAGE", 2)
    ks = dapr.components.secret_store("vault").keyspace
    store.transaction(
        [SetOp(f"s{i}", {"password": f"p{i}"}) for i in range(5)],
        scope=ks.scope,
        namespace=ks.namespace,
    )
    caller = StoreCaller(store)
    secrets = run(get_bulk_secret(caller, dapr, "vault", {}))
    assert secrets == {f"s{i}": {"password": f"p{i}"} for i in range(5)}
    monkeypatch.setattr(secrets_api, "MAX_BULK_SECRETS", 4)
    with pytest.raises(DaprError) as caught:
        run(get_bulk_secret(caller, dapr, "vault", {}))
    assert caught.value.code == "ERR_SECRET_GET"
    assert "more than 4 secrets" in caught.value.message
    monkeypatch.setattr(secrets_api, "MAX_BULK_SECRETS", 5)
    monkeypatch.setattr(secrets_api, "MAX_BULK_SECRET_BYTES", 40)
    with pytest.raises(DaprError):
        run(get_bulk_secret(caller, dapr, "vault", {}))
