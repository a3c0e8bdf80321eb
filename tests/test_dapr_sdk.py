"""The real ``dapr`` SDK, sync ``DaprClient`` and async ``dapr.aio.clients.DaprClient``,
unmodified, against ``statebox serve --dapr-components … --dapr-http-port …
--dapr-grpc-port …`` (docs/dapr.md).

The client finds the server as it finds a sidecar: ``DAPR_HTTP_PORT`` (it waits for
``/v1.0/healthz/outbound`` there before any call), ``DAPR_GRPC_PORT`` (every call here
goes over gRPC) and ``DAPR_API_TOKEN``, set on ``dapr.conf.settings`` for the module.
What a call did is checked with statebox's own API and CLI on the same server: the
entries in ``custom/dapr-statestore`` under Dapr's key prefix (``statebox||KEY``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from dapr.aio.clients import DaprClient as AsyncDaprClient
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError, DaprInternalError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, Consistency, StateOptions
from dapr.conf import settings

from .server_util import ROOT
from .test_dapr_grpc import APP, DaprServer, dapr_server

STORE = "statestore"
NAMESPACE = "dapr-statestore"

_SETTINGS = (
    "DAPR_HTTP_PORT",
    "DAPR_GRPC_PORT",
    "DAPR_API_TOKEN",
    "DAPR_HTTP_ENDPOINT",
    "DAPR_GRPC_ENDPOINT",
    "DAPR_RUNTIME_HOST",
    "DAPR_HEALTH_TIMEOUT",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaprServer]:
    """The server, and the SDK's settings pointing at it (restored afterwards)."""
    with dapr_server(tmp_path_factory.mktemp("dapr-sdk")) as srv:
        saved = {name: settings.__dict__[name] for name in _SETTINGS if name in settings.__dict__}
        values: dict[str, Any] = {
            "DAPR_HTTP_PORT": srv.http_port,
            "DAPR_GRPC_PORT": srv.grpc_port,
            "DAPR_API_TOKEN": APP,
            "DAPR_HTTP_ENDPOINT": None,
            "DAPR_GRPC_ENDPOINT": None,
            "DAPR_RUNTIME_HOST": "127.0.0.1",
            "DAPR_HEALTH_TIMEOUT": 10,
        }
        for name, value in values.items():
            setattr(settings, name, value)
        try:
            yield srv
        finally:
            for name in _SETTINGS:
                if name in saved:
                    setattr(settings, name, saved[name])
                else:
                    settings.__dict__.pop(name, None)


@pytest.fixture(scope="module")
def client(server: DaprServer) -> Iterator[DaprClient]:
    with DaprClient() as dapr:
        yield dapr


def stored(server: DaprServer, key: str) -> Any:
    """The statebox entry a Dapr key is kept in (the default prefix: APPID||key)."""
    with server.store() as store:
        return store.get(f"statebox||{key}", scope="custom", namespace=NAMESPACE)


def code(error: pytest.ExceptionInfo[Any]) -> str:
    """The gRPC status name of what a client call raised: a ``DaprGrpcError`` (most
    calls), a bare ``grpc.RpcError`` (sync ``invoke_binding``), or the async client's
    ``DaprInternalError`` from ``save_state`` (the status is its cause's)."""
    failure = error.value
    if isinstance(failure, DaprInternalError):
        failure = failure.__cause__
    assert isinstance(failure, grpc.RpcError), error.value
    return str(failure.code().name)


#: What a failed call of the SDK raises (see :func:`code`).
FAILED = (grpc.RpcError, DaprInternalError)


# -- the sync client ---------------------------------------------------------------------


def test_save_get_and_delete(server: DaprServer, client: DaprClient) -> None:
    client.save_state(STORE, "order-1", json.dumps({"id": 1, "items": ["a", "b"]}))
    got = client.get_state(STORE, "order-1")
    assert json.loads(got.data) == {"id": 1, "items": ["a", "b"]}
    assert got.etag == "1"
    entry = stored(server, "order-1")  # statebox sees the same entry, as JSON
    assert (entry.value, entry.version) == ({"id": 1, "items": ["a", "b"]}, 1)
    client.save_state(STORE, "blob-1", b"\x00\xffbinary")
    assert client.get_state(STORE, "blob-1").data == b"\x00\xffbinary"
    client.delete_state(STORE, "order-1")
    gone = client.get_state(STORE, "order-1")
    assert (gone.data, gone.etag) == (b"", "")
    assert not stored(server, "order-1").found


def test_a_stale_etag_raises_and_changes_nothing(server: DaprServer, client: DaprClient) -> None:
    strong = StateOptions(consistency=Consistency.strong, concurrency=Concurrency.first_write)
    client.save_state(STORE, "guarded", "v1")
    etag = client.get_state(STORE, "guarded").etag
    client.save_state(STORE, "guarded", "v2", etag=etag, options=strong)  # the current one
    with pytest.raises(DaprGrpcError) as stale:
        client.save_state(STORE, "guarded", "v3", etag=etag, options=strong)
    assert code(stale) == "ABORTED"
    last = StateOptions(consistency=Consistency.eventual, concurrency=Concurrency.last_write)
    with pytest.raises(DaprGrpcError) as stale_last:  # an etag guards under last-write too
        client.save_state(STORE, "guarded", "v3", etag=etag, options=last)
    assert code(stale_last) == "ABORTED"
    with pytest.raises(DaprGrpcError) as stale_delete:
        client.delete_state(STORE, "guarded", etag=etag)
    assert code(stale_delete) == "ABORTED"
    assert stored(server, "guarded").version == 2
    assert client.get_state(STORE, "guarded").data == b"v2"


def test_first_write_without_an_etag_only_creates(server: DaprServer, client: DaprClient) -> None:
    first = StateOptions(concurrency=Concurrency.first_write)
    client.save_state(STORE, "created-once", "1", options=first)
    with pytest.raises(DaprGrpcError) as exists:
        client.save_state(STORE, "created-once", "2", options=first)
    assert code(exists) == "ABORTED"
    assert stored(server, "created-once").version == 1
    client.save_state(STORE, "created-once", "3")  # last-write (the default): unconditional
    assert client.get_state(STORE, "created-once").data == b"3"


def test_ttl_expiry_and_minus_one(server: DaprServer, client: DaprClient) -> None:
    client.save_state(STORE, "short-lived", "1", state_metadata={"ttlInSeconds": "1"})
    client.save_state(STORE, "forever", "1", state_metadata={"ttlInSeconds": "-1"})
    assert client.get_state(STORE, "short-lived").data == b"1"
    assert stored(server, "short-lived").expires_at is not None
    assert stored(server, "forever").expires_at is None
    time.sleep(1.6)
    assert client.get_state(STORE, "short-lived").data == b""
    assert client.get_state(STORE, "forever").data == b"1"
    with pytest.raises(DaprGrpcError) as bad:
        client.save_state(STORE, "forever", "2", state_metadata={"ttlInSeconds": "soon"})
    assert code(bad) == "INVALID_ARGUMENT"


def test_a_write_without_ttl_clears_an_earlier_expiry(client: DaprClient) -> None:
    client.save_state(STORE, "was-short", "1", state_metadata={"ttlInSeconds": "1"})
    client.save_state(STORE, "was-short", "2")
    time.sleep(1.4)
    assert client.get_state(STORE, "was-short").data == b"2"


def test_bulk_get_reports_missing_keys_in_order(client: DaprClient) -> None:
    client.save_state(STORE, "bulk-a", "1")
    client.save_state(STORE, "bulk-b", "2")
    items = client.get_bulk_state(STORE, keys=["bulk-b", "bulk-missing", "bulk-a"]).items
    assert [(i.key, i.data, i.etag) for i in items] == [
        ("bulk-b", b"2", "1"),
        ("bulk-missing", b"", ""),
        ("bulk-a", b"1", "1"),
    ]


def test_json_values_keep_their_exact_bytes(server: DaprServer, client: DaprClient) -> None:
    """Numbers a float would change are read back as they were written, by GetBulkState
    and by the HTTP bulk read of the same entries."""
    exact = {
        "exact-decimal": b'{"a":1.000000000000000000001}',
        "exact-huge": b"1e400",
        "exact-minus-zero": b"-0",
        "exact-big-int": b"[123456789012345678901234567890,-0.0]",
    }
    for key, text in exact.items():
        client.save_state(STORE, key, text)
    items = client.get_bulk_state(STORE, keys=list(exact)).items
    assert [(i.key, i.data) for i in items] == list(exact.items())
    bulk = httpx.post(
        f"http://127.0.0.1:{server.http_port}/v1.0/state/{STORE}/bulk",
        json={"keys": list(exact)},
        headers={"dapr-api-token": APP},
        timeout=30,
    )
    assert bulk.status_code == 200, bulk.text
    answered = b",".join(
        b'{"key":"%s","data":%s,"etag":"1"}' % (k.encode(), v) for k, v in exact.items()
    )
    assert bulk.content == b"[" + answered + b"]"


def test_a_transaction_is_all_or_nothing(server: DaprServer, client: DaprClient) -> None:
    client.save_state(STORE, "tx-a", "1")
    client.save_state(STORE, "tx-b", "1")
    upsert, delete = TransactionOperationType.upsert, TransactionOperationType.delete
    client.execute_state_transaction(
        STORE,
        [
            TransactionalStateOperation(key="tx-a", data="2", operation_type=upsert),
            TransactionalStateOperation(key="tx-c", data="new", operation_type=upsert),
            TransactionalStateOperation(key="tx-b", operation_type=delete),
        ],
    )
    assert client.get_state(STORE, "tx-a").data == b"2"
    assert client.get_state(STORE, "tx-c").data == b"new"
    assert client.get_state(STORE, "tx-b").etag == ""
    with pytest.raises(DaprGrpcError) as failed:  # one stale etag: nothing of it happens
        client.execute_state_transaction(
            STORE,
            [
                TransactionalStateOperation(key="tx-a", data="3", operation_type=upsert),
                TransactionalStateOperation(key="tx-d", data="4", operation_type=upsert),
                TransactionalStateOperation(key="tx-c", etag="99", operation_type=delete),
            ],
        )
    assert code(failed) == "INTERNAL"  # as Dapr answers any failed transaction
    assert stored(server, "tx-a").version == 2
    assert not stored(server, "tx-d").found
    assert stored(server, "tx-c").found


def test_secrets_put_with_statebox_set(server: DaprServer, client: DaprClient) -> None:
    environment = {
        **os.environ,
        "STATEBOX_STORE": server.process.url,
        "STATEBOX_TOKEN": APP,
        "STATEBOX_HOME": str(server.where / "cli-home"),
    }
    environment.pop("STATEBOX_SECRET_KEY", None)  # the server seals; the CLI holds no key
    db = {"user": "app", "password": "pw-secret-0001"}
    for key, value in (("db", json.dumps(db)), ("api-key", '"key-secret-0002"')):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "statebox.cli",
                "set",
                key,
                value,
                "--scope",
                "custom",
                "--namespace",
                "dapr-secretstore",
            ],
            cwd=ROOT,
            env=environment,
            check=True,
            capture_output=True,
        )
    assert client.get_secret("secretstore", "db").secret == db
    assert client.get_secret("secretstore", "api-key").secret == {"api-key": "key-secret-0002"}
    assert client.get_bulk_secret("secretstore").secrets == {
        "db": db,
        "api-key": {"api-key": "key-secret-0002"},
    }
    client.save_state(STORE, "plain", "in-clear-0123")  # a state store is not secret
    stored_bytes = b"".join(  # the store's files: what is at rest
        path.read_bytes() for path in server.where.glob("state.db*") if path.is_file()
    )
    assert b"in-clear-0123" in stored_bytes
    assert b"pw-secret-0001" not in stored_bytes  # sealed
    assert b"key-secret-0002" not in stored_bytes


def test_the_objectstore_binding(server: DaprServer, client: DaprClient) -> None:
    path = "persistent-artifacts/apps/demo/workflows/wf-1/config.json"
    document = json.dumps({"status": "running"}).encode()
    client.invoke_binding("objectstore", "create", document, binding_metadata={"key": path})
    got = client.invoke_binding("objectstore", "get", b"", binding_metadata={"key": path})
    assert json.loads(got.data) == {"status": "running"}
    listed = client.invoke_binding("objectstore", "list", b"", binding_metadata={})
    assert path in json.loads(listed.data)
    client.invoke_binding("objectstore", "delete", b"", binding_metadata={"key": path})
    listed = client.invoke_binding("objectstore", "list", b"", binding_metadata={})
    assert path not in json.loads(listed.data)
    with pytest.raises(grpc.RpcError) as missing:  # as Dapr's localstorage answers it
        client.invoke_binding("objectstore", "get", b"", binding_metadata={"key": path})
    assert code(missing) == "INTERNAL"


def test_metadata_lists_the_served_components(client: DaprClient) -> None:
    shown = client.get_metadata()
    assert shown.application_id == "statebox"
    assert {(c.name, c.type) for c in shown.registered_components} == {
        ("statestore", "state.sqlite"),
        ("secretstore", "secretstores.local.file"),
        ("objectstore", "bindings.localstorage"),
    }


# -- the async client --------------------------------------------------------------------


def test_the_async_client(server: DaprServer) -> None:
    async def scenario() -> None:
        async with AsyncDaprClient() as dapr:
            await dapr.save_state(STORE, "async-1", json.dumps({"n": 1}))
            got = await dapr.get_state(STORE, "async-1")
            assert (json.loads(got.data), got.etag) == ({"n": 1}, "1")
            with pytest.raises(FAILED) as stale:
                await dapr.save_state(STORE, "async-1", "2", etag="7")
            assert code(stale) == "ABORTED"
            first = StateOptions(concurrency=Concurrency.first_write)
            with pytest.raises(FAILED) as exists:
                await dapr.save_state(STORE, "async-1", "2", options=first)
            assert code(exists) == "ABORTED"
            await dapr.save_state(STORE, "async-ttl", "1", state_metadata={"ttlInSeconds": "1"})
            bulk = await dapr.get_bulk_state(STORE, keys=["async-1", "async-none"])
            assert [(i.key, i.etag) for i in bulk.items] == [("async-1", "1"), ("async-none", "")]
            with pytest.raises(FAILED) as failed:
                await dapr.execute_state_transaction(
                    STORE,
                    [
                        TransactionalStateOperation(key="async-2", data="x"),
                        TransactionalStateOperation(
                            key="async-1",
                            etag="5",
                            operation_type=TransactionOperationType.delete,
                        ),
                    ],
                )
            assert code(failed) == "INTERNAL"
            assert (await dapr.get_state(STORE, "async-2")).etag == ""
            await dapr.delete_state(STORE, "async-1", etag="1")
            assert (await dapr.get_state(STORE, "async-1")).data == b""
            await asyncio.sleep(1.4)
            assert (await dapr.get_state(STORE, "async-ttl")).data == b""
            shown = await dapr.get_metadata()
            assert "statestore" in {c.name for c in shown.registered_components}

            # secrets (put with statebox's own API) and the object-store binding
            secret = await dapr.get_secret("secretstore", "async-secret")
            assert secret.secret == {"user": "async", "password": "pw-async-0003"}
            every = (await dapr.get_bulk_secret("secretstore")).secrets
            assert every["async-secret"] == {"user": "async", "password": "pw-async-0003"}
            with pytest.raises(FAILED) as no_store:
                await dapr.get_secret("nostore", "async-secret")
            assert code(no_store) == "INVALID_ARGUMENT"
            path = "persistent-artifacts/apps/demo/workflows/async/config.json"
            where = {"key": path}
            await dapr.invoke_binding("objectstore", "create", b'{"s":1}', binding_metadata=where)
            read = await dapr.invoke_binding("objectstore", "get", b"", binding_metadata=where)
            assert json.loads(read.data) == {"s": 1}
            listed = await dapr.invoke_binding("objectstore", "list", b"", binding_metadata={})
            assert path in json.loads(listed.data)
            await dapr.invoke_binding("objectstore", "delete", b"", binding_metadata=where)
            with pytest.raises(FAILED) as missing:
                await dapr.invoke_binding("objectstore", "get", b"", binding_metadata=where)
            assert code(missing) == "INTERNAL"

    with server.store() as store:
        secret = {"user": "async", "password": "pw-async-0003"}
        store.set("async-secret", secret, scope="custom", namespace="dapr-secretstore")

    asyncio.run(scenario())
    assert not stored(server, "async-1").found
