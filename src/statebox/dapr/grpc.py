"""Dapr's gRPC API (``--dapr-grpc-port``): the state, secret, binding and metadata methods.

A ``grpc.aio`` server in the app's event loop, started and stopped with the app (a
:data:`~statebox.web.extension.Service`). Its servicer is the ``dapr`` package's own
``DaprServicer`` (the stubs that package ships; no proto of Dapr's is copied here), with
the ten methods statebox serves overridden; every other method keeps the stub's answer,
UNIMPLEMENTED. Each method only translates: the request message into the arguments of
the transport-free operations (:mod:`.state_api`, :mod:`.secrets_api`,
:mod:`.bindings_api`, :mod:`.metadata_api`, which the HTTP face calls too), their result
into the response message, and a failure into the gRPC status Dapr answers (a
:class:`~.errors.DaprError` carries it).

The caller is the principal of the request's ``dapr-api-token`` metadata (what Dapr's
SDKs send, ``DAPR_API_TOKEN``), through ``Host.caller``: a bad or missing token is
UNAUTHENTICATED when the server has tokens, a missing grant PERMISSION_DENIED. Messages
are capped at the server's body limit (RESOURCE_EXHAUSTED above it, as gRPC answers),
concurrent calls at :data:`MAX_CONCURRENT_RPCS` (further calls are refused with
RESOURCE_EXHAUSTED). A failure's message is the one the server's HTTP faces would give
(:meth:`Host.error_message`: what may name the server's storage is withheld and logged
under a request id the message names).

A big call does not hold the event loop the server's every request is answered on: the
items of a write of many operations (or many bytes) are built on a worker thread before
the operation runs, and the answer to a bulk get of many keys is built there too.

The module needs the ``dapr`` extra (``grpcio`` and ``dapr``); ``statebox.dapr.serve``
imports it only when ``--dapr-grpc-port`` is given.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import anyio.to_thread
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import (
    binding_pb2,
    dapr_pb2_grpc,
    metadata_pb2,
    secret_pb2,
    state_pb2,
)

from ..core.errors import ConfigurationError, StateboxError
from .bindings_api import invoke_binding
from .errors import (
    BULK_DELETE,
    BULK_GET,
    INVOKE_OUTPUT_BINDING,
    SECRET_GET,
    STATE_DELETE,
    STATE_GET,
    STATE_SAVE,
    STATE_TRANSACTION,
    dapr_error_of,
)
from .metadata_api import metadata as metadata_of
from .secrets_api import get_bulk_secret, get_secret
from .state_api import (
    BIG_READ_KEYS,
    DaprContext,
    DeleteItem,
    Item,
    SaveItem,
    checked_batch,
    delete_bulk_state,
    delete_state,
    execute_transaction,
    get_bulk_state,
    get_state,
    save_state,
    value_from_bytes,
)
from .values import transaction_item

if TYPE_CHECKING:
    from ..web.extension import Caller, Host, Service

__all__ = ["MAX_CONCURRENT_RPCS", "grpc_service"]

log = logging.getLogger("statebox.dapr")

#: Calls served at once; one more is refused (RESOURCE_EXHAUSTED) rather than queued
#: without bound.
MAX_CONCURRENT_RPCS: Final = 1024
#: Seconds the calls under way get to finish when the server stops.
STOP_GRACE: Final = 1.0

TOKEN_METADATA: Final = "dapr-api-token"

# grpcio and protobuf ship no type information (their stub packages are not
# dependencies), nor does the generated registration function: held as Any here.
_grpc: Any = importlib.import_module("grpc")
_grpc_aio: Any = importlib.import_module("grpc.aio")
_empty_pb2: Any = importlib.import_module("google.protobuf.empty_pb2")
_add_servicer: Any = dapr_pb2_grpc.add_DaprServicer_to_server

_CONCURRENCY: Final[dict[int, str | None]] = {
    common_pb2.StateOptions.CONCURRENCY_UNSPECIFIED: None,
    common_pb2.StateOptions.CONCURRENCY_FIRST_WRITE: "first-write",
    common_pb2.StateOptions.CONCURRENCY_LAST_WRITE: "last-write",
}

T = TypeVar("T")


def grpc_service(dapr: DaprContext, host: str, port: int) -> Service:
    """The gRPC API as a service of ``statebox serve``: entered in the app's lifespan
    (binds ``host:port`` and starts serving), exited at shutdown (stops, letting calls
    under way finish for :data:`STOP_GRACE` seconds). A port that cannot be bound is a
    :class:`ConfigurationError` naming it."""

    def service(server_host: Host) -> AbstractAsyncContextManager[None]:
        return _serving(dapr, server_host, host, port)

    return service


@asynccontextmanager
async def _serving(
    dapr: DaprContext, server_host: Host, host: str, port: int
) -> AsyncIterator[None]:
    limit = server_host.max_body_bytes
    server = _grpc_aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # A port another process holds is an error, not shared (gRPC's default on
            # Linux is SO_REUSEPORT: two servers would split the calls between them).
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    _add_servicer(_Servicer(dapr, server_host), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # grpcio's words only point at its debug log
        bound = 0
    if not bound:  # older grpcio answers 0 instead of raising
        raise ConfigurationError(
            f"--dapr-grpc-port {port}: the Dapr gRPC port cannot be bound on {host} (in use, "
            "or not an address of this machine)"
        )
    await server.start()
    try:
        yield
    finally:
        # Shielded: the stop completes (the port released, the calls under way ended)
        # even when what exits the service is being cancelled (the app's shutdown).
        with anyio.CancelScope(shield=True):
            await server.stop(STOP_GRACE)


def _token(context: Any) -> str | None:
    """The request's ``dapr-api-token`` metadata (None: none sent)."""
    for key, value in context.invocation_metadata() or ():
        if key == TOKEN_METADATA:
            return str(value)
    return None


def _etag(item: common_pb2.StateItem) -> str | None:
    """The item's etag as sent (None: no ``etag`` field; what an empty one means is the
    operations' business, as it is a state store's in Dapr)."""
    return item.etag.value if item.HasField("etag") else None


def _concurrency(item: common_pb2.StateItem) -> str | None:
    if not item.HasField("options"):
        return None
    return _CONCURRENCY.get(item.options.concurrency)


def _save_item(item: common_pb2.StateItem) -> SaveItem:
    metadata = dict(item.metadata)
    return SaveItem(
        key=item.key,
        value=value_from_bytes(item.value, metadata),
        etag=_etag(item),
        metadata=metadata,
        concurrency=_concurrency(item),
    )


def _delete_item(item: common_pb2.StateItem) -> DeleteItem:
    return DeleteItem(
        key=item.key,
        etag=_etag(item),
        metadata=dict(item.metadata),
        concurrency=_concurrency(item),
    )


def _operation(operation: state_pb2.TransactionalStateOperation) -> SaveItem | DeleteItem:
    """One operation of a transaction; one neither ``upsert`` nor ``delete`` is Dapr's
    ``UNIMPLEMENTED`` (:func:`~.values.transaction_item`)."""
    kind = operation.operationType
    request = operation.request
    metadata = dict(request.metadata)
    value = value_from_bytes(request.value, metadata) if kind == "upsert" else None
    return transaction_item(
        kind, request.key, value, _etag(request), metadata, _concurrency(request)
    )


async def _items(caller: Caller, request: Any, count: int, build: Callable[[], T]) -> T:
    """The items of a write of ``count`` operations, built by ``build``: checked against
    the server's ``--max-txn-ops`` first (Dapr's ``INVALID_ARGUMENT``, nothing built),
    and built on a worker thread when the write is big (``request``'s bytes count), not
    on the event loop (each value is parsed: is it JSON?)."""
    if checked_batch(caller, count, request.ByteSize()):
        return await anyio.to_thread.run_sync(build)
    return build()


def _bulk_response(items: Sequence[Item]) -> state_pb2.GetBulkStateResponse:
    return state_pb2.GetBulkStateResponse(
        items=[
            state_pb2.BulkStateItem(
                key=item.key,
                data=item.data or b"",
                etag=item.etag or "",
                metadata=dict(item.metadata),
            )
            for item in items
        ]
    )


class _Servicer(dapr_pb2_grpc.DaprServicer):
    """Dapr's servicer with the methods statebox serves; the rest answer UNIMPLEMENTED
    (the stub's own methods)."""

    def __init__(self, dapr: DaprContext, host: Host) -> None:
        self._dapr = dapr
        self._host = host

    async def _call(self, context: Any, code: str, work: Callable[[Caller], Awaitable[T]]) -> T:
        """``work`` for the caller of the request's token. A failure ends the call with
        Dapr's status: a statebox error as Dapr's ``code`` (the method's) answers it."""
        try:
            return await work(self._host.caller(_token(context)))
        except StateboxError as exc:
            error = dapr_error_of(exc, code)
            # Dapr's words, or, for a failure whose details may name the server's
            # storage, a generic message naming the request id they are logged under.
            status, message = error.grpc_status, self._host.error_message(error)
        except Exception as exc:  # a bug: the caller gets no traceback, the log does
            log.error("Dapr gRPC call failed (%s): %s", code, exc, exc_info=exc)
            status, message = "INTERNAL", "internal error"
        await context.abort(_grpc.StatusCode[status], message)
        raise AssertionError("context.abort returned")  # it raises, always

    async def GetState(
        self, request: state_pb2.GetStateRequest, context: Any
    ) -> state_pb2.GetStateResponse:
        async def work(caller: Caller) -> state_pb2.GetStateResponse:
            item = await get_state(
                caller, self._dapr, request.store_name, request.key, dict(request.metadata)
            )
            return state_pb2.GetStateResponse(
                data=item.data or b"", etag=item.etag or "", metadata=dict(item.metadata)
            )

        return await self._call(context, STATE_GET, work)

    async def GetBulkState(
        self, request: state_pb2.GetBulkStateRequest, context: Any
    ) -> state_pb2.GetBulkStateResponse:
        async def work(caller: Caller) -> state_pb2.GetBulkStateResponse:
            items = await get_bulk_state(
                caller, self._dapr, request.store_name, list(request.keys), dict(request.metadata)
            )
            if len(items) > BIG_READ_KEYS:  # built off the loop, as they were read
                return await anyio.to_thread.run_sync(_bulk_response, items)
            return _bulk_response(items)

        return await self._call(context, BULK_GET, work)

    async def SaveState(self, request: state_pb2.SaveStateRequest, context: Any) -> Any:
        async def work(caller: Caller) -> Any:
            states = request.states
            items = await _items(
                caller, request, len(states), lambda: [_save_item(s) for s in states]
            )
            await save_state(caller, self._dapr, request.store_name, items)
            return _empty()

        return await self._call(context, STATE_SAVE, work)

    async def DeleteState(self, request: state_pb2.DeleteStateRequest, context: Any) -> Any:
        async def work(caller: Caller) -> Any:
            item = DeleteItem(
                key=request.key,
                etag=request.etag.value if request.HasField("etag") else None,
                metadata=dict(request.metadata),
                concurrency=(
                    _CONCURRENCY.get(request.options.concurrency)
                    if request.HasField("options")
                    else None
                ),
            )
            await delete_state(caller, self._dapr, request.store_name, item)
            return _empty()

        return await self._call(context, STATE_DELETE, work)

    async def DeleteBulkState(self, request: state_pb2.DeleteBulkStateRequest, context: Any) -> Any:
        async def work(caller: Caller) -> Any:
            states = request.states
            items = await _items(
                caller, request, len(states), lambda: [_delete_item(s) for s in states]
            )
            await delete_bulk_state(caller, self._dapr, request.store_name, items)
            return _empty()

        return await self._call(context, BULK_DELETE, work)

    async def ExecuteStateTransaction(
        self, request: state_pb2.ExecuteStateTransactionRequest, context: Any
    ) -> Any:
        async def work(caller: Caller) -> Any:
            ops = request.operations
            operations = await _items(
                caller, request, len(ops), lambda: [_operation(op) for op in ops]
            )
            await execute_transaction(
                caller, self._dapr, request.storeName, operations, dict(request.metadata)
            )
            return _empty()

        return await self._call(context, STATE_TRANSACTION, work)

    async def InvokeBinding(
        self, request: binding_pb2.InvokeBindingRequest, context: Any
    ) -> binding_pb2.InvokeBindingResponse:
        async def work(caller: Caller) -> binding_pb2.InvokeBindingResponse:
            result = await invoke_binding(
                caller,
                self._dapr,
                request.name,
                request.operation,
                request.data,
                dict(request.metadata),
            )
            return binding_pb2.InvokeBindingResponse(
                data=result.data, metadata=dict(result.metadata)
            )

        return await self._call(context, INVOKE_OUTPUT_BINDING, work)

    async def GetSecret(
        self, request: secret_pb2.GetSecretRequest, context: Any
    ) -> secret_pb2.GetSecretResponse:
        async def work(caller: Caller) -> secret_pb2.GetSecretResponse:
            data = await get_secret(
                caller, self._dapr, request.store_name, request.key, dict(request.metadata)
            )
            return secret_pb2.GetSecretResponse(data=data)

        return await self._call(context, SECRET_GET, work)

    async def GetBulkSecret(
        self, request: secret_pb2.GetBulkSecretRequest, context: Any
    ) -> secret_pb2.GetBulkSecretResponse:
        async def work(caller: Caller) -> secret_pb2.GetBulkSecretResponse:
            data = await get_bulk_secret(
                caller, self._dapr, request.store_name, dict(request.metadata)
            )
            return secret_pb2.GetBulkSecretResponse(
                data={
                    key: secret_pb2.SecretResponse(secrets=values) for key, values in data.items()
                }
            )

        return await self._call(context, SECRET_GET, work)

    async def GetMetadata(
        self, request: metadata_pb2.GetMetadataRequest, context: Any
    ) -> metadata_pb2.GetMetadataResponse:
        async def work(caller: Caller) -> metadata_pb2.GetMetadataResponse:
            return _metadata_response(metadata_of(self._dapr))  # any valid token will do

        return await self._call(context, "ERR_METADATA_GET", work)


def _metadata_response(shown: Mapping[str, Any]) -> metadata_pb2.GetMetadataResponse:
    """Dapr's metadata (the HTTP API's JSON shape, :func:`.metadata_api.metadata`) as
    the gRPC message."""
    components: Sequence[Mapping[str, Any]] = shown.get("components") or ()
    return metadata_pb2.GetMetadataResponse(
        id=str(shown.get("id", "")),
        runtime_version=str(shown.get("runtimeVersion", "")),
        registered_components=[
            metadata_pb2.RegisteredComponents(
                name=str(component.get("name", "")),
                type=str(component.get("type", "")),
                version=str(component.get("version", "")),
                capabilities=[str(c) for c in component.get("capabilities") or ()],
            )
            for component in components
        ],
        extended_metadata={
            str(key): str(value) for key, value in (shown.get("extended") or {}).items()
        },
        enabled_features=[str(feature) for feature in shown.get("enabledFeatures") or ()],
    )


def _empty() -> Any:
    return _empty_pb2.Empty()
