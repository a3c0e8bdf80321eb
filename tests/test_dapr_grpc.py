"""Dapr's gRPC API of ``statebox serve --dapr-grpc-port`` through raw stubs: the status
codes (docs/dapr.md), the token, the message-size limit, and what stays unimplemented.

The stubs are the ``dapr`` package's own (``DaprStub``), over a plain ``grpc`` channel,
against a real ``statebox serve`` subprocess over a SQLite file, with tokens. The real
SDK's view of the same server is in tests/test_dapr_sdk.py, whose server comes from
:func:`dapr_server` here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import (
    dapr_pb2_grpc,
    metadata_pb2,
    pubsub_pb2,
    state_pb2,
)

from statebox import StateStore
from statebox.backends.http import HttpBackend

from .dapr_http_support import SECRETSTORE_YAML, STATESTORE_YAML
from .server_util import ROOT, ServerProcess, free_port, start_server
from .test_atlan_api import new_secret_key

APP = "dapr-app-secret-0123456789abcdef"  # write + reveal on every dapr-* keyspace
OTHER = "dapr-other-secret-0123456789abcd"  # write on another app's namespaces only
WRONG = "not-a-token-of-this-server-0123"

TOKENS = f"""
tokens:
  - name: app
    secret: {APP}
    grants:
      - {{access: write, scope: custom, namespace: "dapr-*", reveal: true}}
  - name: other
    secret: {OTHER}
    grants:
      - {{access: write, scope: custom, namespace: "other-*"}}
"""

COMPONENTS = {
    # The Atlan seed's state store, as its components/statestore.yaml declares it.
    "statestore.yaml": STATESTORE_YAML,
    "secretstore.yaml": SECRETSTORE_YAML,
    "objectstore.yaml": """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: objectstore
spec:
  type: bindings.localstorage
  version: v1
  metadata:
    - name: rootPath
      value: ./local/objectstore
""",
    "pubsub.yaml": """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - name: redisHost
      value: localhost:6379
""",
}

#: The server's --max-body-bytes here: the gRPC messages' limit too.
MAX_BODY = 256 * 1024


@dataclass
class DaprServer:
    """A ``statebox serve`` with Dapr's HTTP API on ``http_port`` and gRPC on ``grpc_port``."""

    process: ServerProcess
    http_port: int
    grpc_port: int
    where: Path

    def store(self, token: str = APP) -> StateStore:
        """statebox's own API on the same server (the remote store)."""
        return StateStore(HttpBackend(self.process.url, token=token))


def write_components(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in COMPONENTS.items():
        (directory / name).write_text(text)
    return directory


def wait_for_grpc(port: int, timeout: float = 20.0) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout)


@contextmanager
def dapr_server(
    where: Path, *, max_body: int | None = None, args: Sequence[str] = ()
) -> Iterator[DaprServer]:
    """``statebox serve`` over a SQLite file in ``where``, with tokens, a secret key and
    the components above, Dapr's HTTP API on a second port and its gRPC API; ``args``:
    more options of ``serve``."""
    tokens = where / "tokens.yaml"
    tokens.write_text(TOKENS)
    components = write_components(where / "components")
    http_port, grpc_port = free_port(), free_port()
    process = start_server(
        f"sqlite:///{where / 'state.db'}",
        via_cli=True,
        tokens=tokens,
        env={"STATEBOX_SECRET_KEY": new_secret_key(), "STATEBOX_HOME": str(where / "home")},
        args=[
            "--dapr-components",
            str(components),
            "--dapr-http-port",
            str(http_port),
            "--dapr-grpc-port",
            str(grpc_port),
            *(["--max-body-bytes", str(max_body)] if max_body is not None else []),
            *args,
        ],
    )
    try:
        try:
            wait_for_grpc(grpc_port)
        except grpc.FutureTimeoutError:
            raise AssertionError(f"no gRPC on {grpc_port}: {process.log_text()}") from None
        yield DaprServer(process, http_port, grpc_port, where)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaprServer]:
    with dapr_server(tmp_path_factory.mktemp("dapr-grpc"), max_body=MAX_BODY) as srv:
        yield srv


@pytest.fixture(scope="module")
def stub(server: DaprServer) -> Iterator[Any]:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield dapr_pb2_grpc.DaprStub(channel)


def token(secret: str = APP) -> list[tuple[str, str]]:
    return [("dapr-api-token", secret)]


def item(key: str, value: bytes, etag: str | None = None, **options: Any) -> Any:
    return common_pb2.StateItem(
        key=key,
        value=value,
        etag=common_pb2.Etag(value=etag) if etag is not None else None,
        options=common_pb2.StateOptions(**options) if options else None,
    )


def save(stub: Any, *items: Any, store: str = "statestore", secret: str = APP) -> None:
    stub.SaveState(
        state_pb2.SaveStateRequest(store_name=store, states=list(items)), metadata=token(secret)
    )


def get(stub: Any, key: str, *, store: str = "statestore", secret: str = APP) -> Any:
    return stub.GetState(
        state_pb2.GetStateRequest(store_name=store, key=key), metadata=token(secret)
    )


def failure(call: Any) -> grpc.RpcError:
    """The RpcError ``call()`` raises (the test fails if it succeeds)."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def status(call: Any) -> Any:
    error: Any = failure(call)
    return error.code()


# -- the state methods' answers ------------------------------------------------------------


def test_a_saved_key_reads_back_with_its_etag_and_a_missing_one_reads_empty(stub: Any) -> None:
    save(stub, item("grpc-plain", b'{"a": 1}'))
    found = get(stub, "grpc-plain")
    assert found.data == b'{"a":1}'  # statebox JSON: insignificant whitespace not kept
    assert found.etag == "1"
    missing = get(stub, "grpc-never-written")
    assert (missing.data, missing.etag) == (b"", "")


def test_the_etag_is_the_statebox_version_of_the_mapped_key(server: DaprServer, stub: Any) -> None:
    save(stub, item("grpc-versioned", b"first"))
    save(stub, item("grpc-versioned", b"second"))
    assert get(stub, "grpc-versioned").etag == "2"
    with server.store() as store:  # the default key prefix: APPID||key
        entry = store.get("statebox||grpc-versioned", scope="custom", namespace="dapr-statestore")
    assert entry.version == 2


def test_reads_report_the_expiry_time_in_the_item_metadata(stub: Any) -> None:
    ttl = common_pb2.StateItem(key="grpc-ttl", value=b"1", metadata={"ttlInSeconds": "100"})
    save(stub, ttl, item("grpc-no-ttl", b"1"))
    shown = get(stub, "grpc-ttl").metadata["ttlExpireTime"]
    expires = datetime.strptime(shown, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 90 < (expires - datetime.now(UTC)).total_seconds() <= 101
    assert "ttlExpireTime" not in get(stub, "grpc-no-ttl").metadata
    bulk = stub.GetBulkState(
        state_pb2.GetBulkStateRequest(store_name="statestore", keys=["grpc-ttl", "grpc-no-ttl"]),
        metadata=token(),
    )
    assert [dict(i.metadata).get("ttlExpireTime") for i in bulk.items] == [shown, None]


def test_a_stale_etag_is_aborted_and_writes_nothing(stub: Any) -> None:
    save(stub, item("grpc-guarded", b"v1"))
    save(stub, item("grpc-guarded", b"v2", etag="1"))
    assert status(lambda: save(stub, item("grpc-guarded", b"v3", etag="1"))) == (
        grpc.StatusCode.ABORTED
    )
    delete = state_pb2.DeleteStateRequest(
        store_name="statestore", key="grpc-guarded", etag=common_pb2.Etag(value="1")
    )
    assert status(lambda: stub.DeleteState(delete, metadata=token())) == grpc.StatusCode.ABORTED
    found = get(stub, "grpc-guarded")
    assert (found.data, found.etag) == (b"v2", "2")


def test_first_write_without_an_etag_only_creates(stub: Any) -> None:
    first = common_pb2.StateOptions.CONCURRENCY_FIRST_WRITE
    save(stub, item("grpc-first", b"one", concurrency=first))
    assert status(lambda: save(stub, item("grpc-first", b"two", concurrency=first))) == (
        grpc.StatusCode.ABORTED
    )
    assert get(stub, "grpc-first").data == b"one"


def test_a_key_with_the_prefix_separator_is_an_invalid_argument(stub: Any) -> None:
    error: Any = failure(lambda: save(stub, item("a||b", b"x")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status(lambda: get(stub, "a||b")) == grpc.StatusCode.INVALID_ARGUMENT


def test_an_etag_that_is_no_version_is_an_invalid_argument(stub: Any) -> None:
    save(stub, item("grpc-badetag", b"x"))
    assert status(lambda: save(stub, item("grpc-badetag", b"y", etag="not-a-version"))) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert get(stub, "grpc-badetag").data == b"x"


def test_an_unknown_store_is_an_invalid_argument_and_an_unserved_one_says_so(stub: Any) -> None:
    error: Any = failure(lambda: get(stub, "k", store="nosuchstore"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nosuchstore" in error.details()
    error = failure(lambda: get(stub, "k", store="pubsub"))
    assert "pubsub" in error.details() and "does not serve" in error.details()


def test_a_bulk_delete_and_a_transaction_are_all_or_nothing(stub: Any) -> None:
    save(stub, item("grpc-tx-a", b"a1"), item("grpc-tx-b", b"b1"))
    operations = [
        state_pb2.TransactionalStateOperation(
            operationType="upsert", request=item("grpc-tx-a", b"a2")
        ),
        state_pb2.TransactionalStateOperation(
            operationType="delete", request=item("grpc-tx-b", b"", etag="7")
        ),
    ]
    request = state_pb2.ExecuteStateTransactionRequest(
        storeName="statestore", operations=operations
    )
    failed: Any = failure(lambda: stub.ExecuteStateTransaction(request, metadata=token()))
    assert failed.code() == grpc.StatusCode.INTERNAL  # Dapr's answer to a failed transaction
    assert get(stub, "grpc-tx-a").data == b"a1"
    bulk = state_pb2.DeleteBulkStateRequest(
        store_name="statestore",
        states=[item("grpc-tx-a", b""), item("grpc-tx-b", b"", etag="9")],
    )
    assert status(lambda: stub.DeleteBulkState(bulk, metadata=token())) == (grpc.StatusCode.ABORTED)
    assert get(stub, "grpc-tx-a").data == b"a1" and get(stub, "grpc-tx-b").data == b"b1"


def test_a_transaction_operation_of_unknown_type_is_unimplemented(stub: Any) -> None:
    request = state_pb2.ExecuteStateTransactionRequest(
        storeName="statestore",
        operations=[
            state_pb2.TransactionalStateOperation(
                operationType="upsert", request=item("grpc-op-a", b"x")
            ),
            state_pb2.TransactionalStateOperation(
                operationType="merge", request=item("grpc-op-b", b"y")
            ),
        ],
    )
    error: Any = failure(lambda: stub.ExecuteStateTransaction(request, metadata=token()))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "merge" in error.details()
    assert get(stub, "grpc-op-a").etag == ""


# -- the token ---------------------------------------------------------------------------


def test_no_token_or_a_wrong_one_is_unauthenticated(stub: Any) -> None:
    request = state_pb2.GetStateRequest(store_name="statestore", key="k")
    assert status(lambda: stub.GetState(request)) == grpc.StatusCode.UNAUTHENTICATED
    assert status(lambda: get(stub, "k", secret=WRONG)) == grpc.StatusCode.UNAUTHENTICATED
    metadata = metadata_pb2.GetMetadataRequest()
    assert status(lambda: stub.GetMetadata(metadata)) == grpc.StatusCode.UNAUTHENTICATED


def test_a_token_granted_another_namespace_is_permission_denied(stub: Any) -> None:
    save(stub, item("grpc-granted", b"x"))
    assert status(lambda: get(stub, "grpc-granted", secret=OTHER)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert status(lambda: save(stub, item("grpc-granted", b"y"), secret=OTHER)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert get(stub, "grpc-granted").data == b"x"
    # Metadata needs a valid token, no particular grant.
    shown = stub.GetMetadata(metadata_pb2.GetMetadataRequest(), metadata=token(OTHER))
    assert {c.name for c in shown.registered_components} == {
        "statestore",
        "secretstore",
        "objectstore",
    }


# -- limits and what is not served -------------------------------------------------------


def test_a_message_over_the_body_limit_is_refused_and_writes_nothing(stub: Any) -> None:
    big = b"x" * (MAX_BODY + 1)
    assert status(lambda: save(stub, item("grpc-big", big))) == (grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert get(stub, "grpc-big").etag == ""
    save(stub, item("grpc-big", b"x" * (MAX_BODY // 2)))  # under it: served
    assert len(get(stub, "grpc-big").data) == MAX_BODY // 2


def test_a_method_statebox_does_not_serve_is_unimplemented(stub: Any) -> None:
    request = pubsub_pb2.PublishEventRequest(pubsub_name="pubsub", topic="t", data=b"{}")
    assert status(lambda: stub.PublishEvent(request, metadata=token())) == (
        grpc.StatusCode.UNIMPLEMENTED
    )


# -- the port ----------------------------------------------------------------------------


def test_a_grpc_port_in_use_stops_the_start_naming_it(server: DaprServer, tmp_path: Path) -> None:
    """Another server's gRPC port is not shared (gRPC would, with SO_REUSEPORT, and split
    the calls between the two): the second start fails, as any configuration error."""
    port = server.grpc_port
    components = write_components(tmp_path / "components")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "statebox.cli",
            "serve",
            "--store",
            f"sqlite:///{tmp_path / 'state.db'}",
            "--port",
            "0",
            "--dapr-components",
            str(components),
            "--dapr-grpc-port",
            str(port),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert f"--dapr-grpc-port {port}" in result.stderr


def test_the_grpc_server_stops_with_the_app(tmp_path: Path) -> None:
    """At shutdown the gRPC server is stopped cleanly (no failed shutdown in the log)
    and its port is free again."""
    with (
        dapr_server(tmp_path) as srv,
        grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as channel,
    ):
        assert get(dapr_pb2_grpc.DaprStub(channel), "k").etag == ""
    log = srv.process.log_text()
    assert "Traceback" not in log and "shutdown failed" not in log, log
    with socket.socket() as again:
        again.bind(("127.0.0.1", srv.grpc_port))
