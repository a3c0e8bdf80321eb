"""Dapr's HTTP API (``/v1.0/...``): health, metadata, state, secrets, output bindings.

Each route only translates: the request (path, ``metadata.*`` query parameters, headers,
the JSON body as Dapr's clients send it) into the arguments of the transport-free
operations (:mod:`.state_api`, :mod:`.secrets_api`, :mod:`.bindings_api`,
:mod:`.metadata_api`, which the gRPC face calls too), their result into Dapr's answer,
and a failure into Dapr's error body ``{"errorCode": "ERR_...", "message": "..."}`` with
Dapr's status (:class:`~.errors.DaprError`; a statebox error is given the route's code
by :func:`~.errors.dapr_error_of`).

As in Dapr, a state route checks its store before it reads the body (an unknown store
is 400 ``ERR_STATE_STORE_NOT_FOUND`` whatever the body holds), and the routes that take a
body (state save, bulk get, transaction, bindings) answer ``PUT`` as ``POST``. The
request models, their decoding and the bulk answer are in :mod:`.http_models`.

The routes are declared on a :class:`~statebox.web.Router` like the server's own: they
appear in ``/openapi.json``, need a token (``Authorization: Bearer`` or Dapr's
``dapr-api-token`` header) except the health routes, and read their body through the
server, whose ``--max-body-bytes`` holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, cast

import anyio
from starlette.responses import Response

from ..core.errors import StateboxError
from ..web import Answer, RequestView, Router
from ..web.routing import ErrorsAs, Handler
from .bindings_api import invoke_binding
from .errors import (
    BULK_GET,
    INVOKE_OUTPUT_BINDING,
    SECRET_GET,
    STATE_DELETE,
    STATE_GET,
    STATE_SAVE,
    STATE_TRANSACTION,
    DaprError,
    dapr_error_of,
)
from .http_models import (
    BINDING_SCHEMA,
    BULK_SCHEMA,
    METADATA,
    SAVE_SCHEMA,
    TRANSACTION_SCHEMA,
    BindingPath,
    BindingRequest,
    BulkGetRequest,
    DeleteQuery,
    GetQuery,
    HealthQuery,
    IfMatch,
    SecretKeyPath,
    SecretStorePath,
    StateRequest,
    StoreKeyPath,
    StorePath,
    TransactionRequest,
    binding_data,
    bulk_answer,
    decode,
    merged,
    query_metadata,
    save_items,
    transaction_items,
)
from .metadata_api import metadata as metadata_of
from .secrets_api import get_bulk_secret, get_secret
from .state_api import (
    DaprContext,
    DeleteItem,
    execute_transaction,
    get_bulk_state,
    get_state,
    save_state,
)
from .state_api import delete_state as delete_one

__all__ = ["dapr_error_response", "errors_as", "router"]

T = TypeVar("T")
JSON: Final = "application/json"


# --- errors -----------------------------------------------------------------------------


def dapr_error_response(error: DaprError, message: str | None = None) -> Response:
    body = {"errorCode": error.code, "message": error.message if message is None else message}
    return Response(
        json.dumps(body, separators=(",", ":")), status_code=error.http_status, media_type=JSON
    )


def errors_as(code: str) -> ErrorsAs:
    """A route's errors in Dapr's body: a :class:`DaprError` as it is, any other
    statebox error under ``code`` (the route's own: ``ERR_STATE_GET``...) with Dapr's
    status for it; ``message`` is the one the server discloses."""

    def answer(exc: StateboxError, message: str) -> Response:
        error = exc if isinstance(exc, DaprError) else dapr_error_of(exc, code)
        return dapr_error_response(error, message)

    return answer


# --- answers ------------------------------------------------------------------------------


#: As the server's own routes: a body larger than this is decoded on a worker thread,
#: and a request of more items than this has them built there, so one big request never
#: holds the event loop (every other request waits on it) for long.
BIG_BODY: Final = 64 * 1024
BIG_ITEMS: Final = 1000


async def _body(call: RequestView, kind: type[T], what: str) -> T:
    """The request body decoded as ``kind`` (Dapr's 400 ``ERR_MALFORMED_REQUEST`` when
    it is not), off the event loop when it is large."""
    raw = await call.request.body()
    if len(raw) > BIG_BODY:
        decoded: T = await anyio.to_thread.run_sync(decode, kind, raw, what)
        return decoded
    return cast(T, decode(kind, raw, what))


async def _off_loop_if(big: bool, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)``, on a worker thread when ``big``."""
    if big:
        return await anyio.to_thread.run_sync(work, *args)
    return work(*args)


def _empty() -> Response:
    return Response(status_code=204)


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, separators=(",", ":")), status_code=status, media_type=JSON)


def _metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    return {METADATA + name: value for name, value in metadata.items()}


# --- the routes ---------------------------------------------------------------------------

_METADATA_QUERY: Final = (
    "Any `metadata.NAME=VALUE` query parameter is passed as the request's metadata "
    "(`metadata.ttlInSeconds`, `metadata.contentType`...)."
)
_ERRORS: Final = (400, 401, 403, 409, 500)


def router(dapr: DaprContext) -> Router:
    """Every Dapr HTTP route statebox serves, over ``dapr``'s components."""
    routes = Router("dapr")
    health = {204: Answer(description="ready")}

    def post_or_put(path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        """The route ``POST path``, and ``PUT path``, which Dapr accepts the same."""

        def declare(handler: Handler) -> Handler:
            for method in ("POST", "PUT"):
                routes.route(method, path, **declaration)(handler)
            return handler

        return declare

    def _state_store(call: RequestView) -> str:
        """The path's state store, checked first, as Dapr checks it: an unknown one is
        400 ``ERR_STATE_STORE_NOT_FOUND`` whatever the body holds."""
        store: str = call.request.path_params["store"]
        dapr.components.state_store(store)
        return store

    @routes.get(
        "/v1.0/healthz",
        summary="dapr: healthz (ready)",
        query=HealthQuery,
        responses=health,
        public=True,
        errors_as=errors_as("ERR_HEALTH_NOT_READY"),
    )
    async def dapr_healthz(call: RequestView, query: HealthQuery) -> Response:
        if query.appid is not None and query.appid != dapr.app_id:
            raise DaprError(
                "ERR_HEALTH_APPID_NOT_MATCH", "dapr app-id does not match", 500, "INTERNAL"
            )
        return _empty()

    @routes.get(
        "/v1.0/healthz/outbound",
        summary="dapr: outbound healthz (what DaprClient waits for)",
        responses=health,
        public=True,
        errors_as=errors_as("ERR_OUTBOUND_HEALTH_NOT_READY"),
    )
    async def dapr_healthz_outbound(call: RequestView) -> Response:
        return _empty()

    @routes.get(
        "/v1.0/metadata",
        summary="dapr: metadata (the app id and the components served)",
        responses={200: Answer(description="Dapr's metadata object")},
        errors_as=errors_as("ERR_METADATA_GET"),
    )
    async def dapr_metadata(call: RequestView) -> Response:
        return _json(metadata_of(dapr))

    # --- state -----------------------------------------------------------------------

    state_errors = (400, 401, 403, 500)

    @post_or_put(
        "/v1.0/state/{store}/bulk",
        summary="dapr: bulk get state (missing keys have only their key)",
        description=_METADATA_QUERY,
        path_params=StorePath,
        content={JSON: BULK_SCHEMA},
        responses={200: Answer(description="[{key, data, etag, metadata}] in request order")},
        errors=state_errors,
        errors_as=errors_as(BULK_GET),
    )
    async def dapr_bulk_get_state(call: RequestView) -> Response:
        store = _state_store(call)
        request: BulkGetRequest = await _body(call, BulkGetRequest, "bulk get")
        metadata = merged(request.metadata, query_metadata(call))
        items = await get_bulk_state(call, dapr, store, request.keys, metadata)
        return Response(bulk_answer(items), status_code=200, media_type=JSON)

    @post_or_put(
        "/v1.0/state/{store}/transaction",
        summary="dapr: state transaction (all or nothing)",
        description=_METADATA_QUERY,
        path_params=StorePath,
        content={JSON: TRANSACTION_SCHEMA},
        responses={204: Answer(description="committed")},
        errors=(*state_errors, 409),
        errors_as=errors_as(STATE_TRANSACTION),
    )
    async def dapr_transaction(call: RequestView) -> Response:
        store = _state_store(call)
        request: TransactionRequest = await _body(call, TransactionRequest, "transaction")
        query = query_metadata(call)
        operations = await _off_loop_if(
            len(request.operations) > BIG_ITEMS, transaction_items, request, query
        )
        metadata = merged(request.metadata, query)
        await execute_transaction(call, dapr, store, operations, metadata)
        return _empty()

    @post_or_put(
        "/v1.0/state/{store}",
        summary="dapr: save state (several items: all or nothing)",
        description=_METADATA_QUERY,
        path_params=StorePath,
        content={JSON: SAVE_SCHEMA},
        responses={204: Answer(description="saved")},
        errors=(*state_errors, 409),
        errors_as=errors_as(STATE_SAVE),
    )
    async def dapr_save_state(call: RequestView) -> Response:
        store = _state_store(call)
        items: list[StateRequest] = await _body(call, list[StateRequest], "save")
        query = query_metadata(call)
        saves = await _off_loop_if(len(items) > BIG_ITEMS, save_items, items, query)
        await save_state(call, dapr, store, saves)
        return _empty()

    @routes.get(
        "/v1.0/state/{store}/{key:path}",
        summary="dapr: get state (204 when missing)",
        description=_METADATA_QUERY,
        path_params=StoreKeyPath,
        query=GetQuery,
        responses={
            200: Answer(
                media_type="application/octet-stream",
                description="the stored bytes (JSON as stored, or the blob's bytes)",
                headers={
                    "ETag": "The entry's etag (its statebox version).",
                    "metadata.ttlExpireTime": "When it expires (RFC 3339), if it does.",
                },
                schema={"type": "string", "format": "binary"},
            ),
            204: Answer(description="no such key"),
        },
        errors=state_errors,
        errors_as=errors_as(STATE_GET),
    )
    async def dapr_get_state(call: RequestView, query: GetQuery) -> Response:
        params = call.request.path_params
        item = await get_state(call, dapr, params["store"], params["key"], query_metadata(call))
        if item.data is None:
            return _empty()
        headers = _metadata_headers(item.metadata)
        if item.etag is not None:
            headers["ETag"] = item.etag
        return Response(
            item.data,
            status_code=200,
            media_type=item.content_type or JSON,
            headers=headers,
        )

    @routes.delete(
        "/v1.0/state/{store}/{key:path}",
        summary="dapr: delete state (If-Match: the etag)",
        description=_METADATA_QUERY,
        path_params=StoreKeyPath,
        query=DeleteQuery,
        headers=IfMatch,
        responses={204: Answer(description="deleted (or there was nothing to delete)")},
        errors=(*state_errors, 409),
        errors_as=errors_as(STATE_DELETE),
    )
    async def dapr_delete_state(call: RequestView, query: DeleteQuery) -> Response:
        params = call.request.path_params
        item = DeleteItem(
            key=params["key"],
            etag=call.headers.get("if-match"),
            metadata=query_metadata(call),
            concurrency=query.concurrency or None,
        )
        await delete_one(call, dapr, params["store"], item)
        return _empty()

    # --- secrets ---------------------------------------------------------------------

    secret_answer = {200: Answer(description="{NAME: VALUE} of the secret")}

    @routes.get(
        "/v1.0/secrets/{store}/bulk",
        summary="dapr: get every secret of a store",
        description=_METADATA_QUERY + " Needs the reveal grant.",
        path_params=SecretStorePath,
        responses={200: Answer(description="{SECRET: {NAME: VALUE}}")},
        errors=(400, 401, 403, 500),
        errors_as=errors_as(SECRET_GET),
    )
    async def dapr_bulk_secret(call: RequestView) -> Response:
        store = call.request.path_params["store"]
        return _json(await get_bulk_secret(call, dapr, store, query_metadata(call)))

    @routes.get(
        "/v1.0/secrets/{store}/{key:path}",
        summary="dapr: get a secret",
        description=_METADATA_QUERY + " Needs the reveal grant.",
        path_params=SecretKeyPath,
        responses=secret_answer,
        errors=(400, 401, 403, 500),
        errors_as=errors_as(SECRET_GET),
    )
    async def dapr_get_secret(call: RequestView) -> Response:
        params = call.request.path_params
        found = await get_secret(call, dapr, params["store"], params["key"], query_metadata(call))
        return _json(found)

    # --- bindings --------------------------------------------------------------------

    @post_or_put(
        "/v1.0/bindings/{name}",
        summary="dapr: invoke an object-store output binding (get, create, delete, list)",
        path_params=BindingPath,
        content={JSON: BINDING_SCHEMA},
        responses={
            200: Answer(
                media_type=JSON,
                description="the operation's data (an object's bytes, a list)",
                schema={"type": "string", "format": "binary"},
            ),
            204: Answer(description="no data"),
        },
        errors=(400, 401, 403, 500),
        errors_as=errors_as(INVOKE_OUTPUT_BINDING),
    )
    async def dapr_invoke_binding(call: RequestView) -> Response:
        name = call.request.path_params["name"]
        request: BindingRequest = await _body(call, BindingRequest, "binding")
        data = await _off_loop_if(len(request.data) > BIG_BODY, binding_data, request.data)
        result = await invoke_binding(
            call, dapr, name, request.operation, data, dict(request.metadata or {})
        )
        headers = _metadata_headers(result.metadata)
        if not result.data and not result.metadata:
            return _empty()
        return Response(result.data, status_code=200, media_type=JSON, headers=headers)

    return routes
