"""Dapr's output bindings, for object stores: ``create``, ``get``, ``delete``, ``list``.

An object-store binding NAME keeps its objects in the keyspace ``custom/dapr-NAME``, an
object whose path has a ``credentials`` segment (the Atlan SDK 2.8's credentials,
``persistent-artifacts/apps/APP/credentials/ID/config.json``) in
``custom/dapr-NAME-credentials``, which is secret. An object's name is its key (as
:func:`~statebox.dapr.keys.encode_key` gives it).

The object is named by the request metadata ``key``, ``fileName``, ``blobName`` or
``name`` (the first one present: what S3, local storage, Azure Blob and GCP read), or,
for ``get`` and ``delete``, by the data ``{"key": NAME}`` the Atlan SDK sends as well. A
``create`` without a name makes one (a UUID, as Dapr's local storage and S3 do) and
answers it. ``create`` stores the data's bytes (JSON as statebox JSON, other bytes as a
blob: :func:`~statebox.dapr.state_api.value_from_bytes`); ``get`` answers them (a missing
object is an error, as Dapr's bindings answer it); ``delete`` of a missing object is an
error too; ``list`` answers a JSON array of the object names under the metadata's (or
the data's) ``prefix``, in order: at most :data:`MAX_LISTED` of them (more is an error
that asks for a narrower prefix, never a silently cut list). Every failure is
``ERR_INVOKE_OUTPUT_BINDING`` (500).

Off the event loop: a ``create`` of a big object (the server's rule,
:meth:`~statebox.web.extension.Caller.batch`) is written, and its bytes are parsed, on
the writer thread; a ``list`` reads on a worker thread, a page of :data:`LIST_PAGE`
entries at a time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ..core.errors import InvalidReferenceError, PermissionDeniedError
from ..core.model import Keyspace, validate_prefix
from .components import Component
from .errors import INVOKE_OUTPUT_BINDING, DaprError, translated
from .keys import ENCODED_MARK, decode_key, encode_key
from .state_api import checked_batch, fitted, value_from_bytes

if TYPE_CHECKING:
    from ..store import StateStore
    from ..web.extension import Caller
    from .state_api import DaprContext

__all__ = ["LIST_PAGE", "MAX_LISTED", "NAME_KEYS", "OPERATIONS", "BindingResult", "invoke_binding"]

#: The metadata that names an object, in the order they are read.
NAME_KEYS: Final = ("key", "fileName", "blobName", "name")
OPERATIONS: Final = ("create", "get", "delete", "list")
CREDENTIALS_SEGMENT: Final = "credentials"
#: The most object names one ``list`` answers (about 40 bytes each in the answer).
MAX_LISTED: Final = 100_000
#: Entries read from the store at a time while listing.
LIST_PAGE: Final = 1000


@dataclass(frozen=True)
class BindingResult:
    """What an operation answers: its data and response metadata."""

    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)


def _fail(name: str, why: str) -> DaprError:
    return DaprError(
        INVOKE_OUTPUT_BINDING, f"error invoking output binding {name}: {why}", 500, "INTERNAL"
    )


def _data_object(data: bytes) -> dict[str, object]:
    try:
        value = json.loads(data) if data else None
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _object_name(metadata: Mapping[str, str], data: bytes | None) -> str:
    for key in NAME_KEYS:
        named = metadata.get(key)
        if named:
            return named
    if data is not None:
        value = _data_object(data).get("key")
        if isinstance(value, str) and value:
            return value
    return ""


def object_keyspace(component: Component, name: str) -> Keyspace:
    """Where the object ``name`` of ``component`` lives."""
    if CREDENTIALS_SEGMENT in name.split("/"):
        return component.credentials_keyspace
    return component.keyspace


def _list_prefix(metadata: Mapping[str, str], data: bytes) -> str:
    prefix = metadata.get("prefix")
    if prefix:
        return prefix
    value = _data_object(data).get("prefix")
    if isinstance(value, str) and value:
        return value
    directory = metadata.get("fileName", "")
    return directory.rstrip("/") + "/" if directory.strip("/") else ""


def _names(store: StateStore, ks: Keyspace, prefix: str, found: list[str], most: int) -> None:
    """The object names of ``ks`` under ``prefix``, added to ``found``: the plain keys
    under it (scanned by prefix when it is a statebox prefix), and the encoded keys that
    decode under it; read a page at a time, and no more once ``found`` has more than
    ``most``."""
    try:
        plain_prefix: str | None = validate_prefix(prefix) if prefix else ""
    except InvalidReferenceError:
        plain_prefix = None
    if plain_prefix != prefix:
        plain_prefix = None  # a prefix statebox would trim: decode every key instead
    # Each entry is seen once: without a statebox prefix, one scan of every key; with
    # one, the encoded keys (all under ENCODED_MARK, which no plain key starts with),
    # and the plain keys under it unless that scan is the first one's part.
    if not plain_prefix:
        scans = [""]
    elif plain_prefix.startswith(ENCODED_MARK):
        scans = [ENCODED_MARK]
    else:
        scans = [ENCODED_MARK, plain_prefix]
    for scan in scans:
        after: str | None = None
        while len(found) <= most:
            page = store.list(
                scan or None,
                scope=ks.scope,
                namespace=ks.namespace,
                limit=LIST_PAGE,
                after=after,
            ).entries
            for entry in page:
                try:
                    name = decode_key(entry.key)
                except ValueError:
                    name = entry.key
                if name.startswith(prefix):
                    found.append(name)
            if len(page) < LIST_PAGE:
                break
            after = page[-1].key


async def invoke_binding(
    caller: Caller,
    dapr: DaprContext,
    name: str,
    operation: str,
    data: bytes,
    metadata: Mapping[str, str],
) -> BindingResult:
    """Run ``operation`` on the object-store binding ``name``."""
    component = dapr.components.binding(name)
    if not operation:
        raise _fail(name, "operation field is missing from request")
    if operation not in OPERATIONS:
        raise _fail(
            name,
            f"binding {name} does not support operation {operation}. supported "
            f"operations:{' '.join(OPERATIONS)}",
        )
    context = f"error invoking output binding {name}"
    if operation == "list":
        return await _list(caller, component, name, _list_prefix(metadata, data))
    obj = _object_name(metadata, None if operation == "create" else data)
    if not obj:
        if operation != "create":
            raise _fail(name, "required metadata 'key' missing")
        obj = str(uuid.uuid4())
    ks = object_keyspace(component, obj)
    key = encode_key(obj)
    with translated(INVOKE_OUTPUT_BINDING, context):
        if operation == "create":
            caller.authorize("write", ks)
            big = checked_batch(caller, 1, len(data))

            def create() -> object:
                # The bytes parsed (are they JSON?) here: on the writer thread when big.
                store = caller.store()
                value = fitted(value_from_bytes(data, metadata), store)
                return store.set(key, value, scope=ks.scope, namespace=ks.namespace)

            await caller.write(create, alone=big)
            answer = json.dumps({"fileName": obj}).encode()
            return BindingResult(answer, {"key": obj})
        if operation == "get":
            caller.authorize("read", ks)
            if caller.secret(ks):
                caller.authorize_reveal(ks, what="a Dapr object-store get")
            result = await caller.read(
                lambda: caller.reader().get(key, scope=ks.scope, namespace=ks.namespace)
            )
            if not result.found or result.stored is None:
                raise _fail(name, f"object not found: {obj}")
            return BindingResult(result.stored.data, {})
        caller.authorize("write", ks)
        deleted = await caller.write(
            lambda: caller.store().delete(key, scope=ks.scope, namespace=ks.namespace)
        )
        if not deleted.deleted:
            raise _fail(name, f"object not found: {obj}")
        return BindingResult(b"", {})


async def _list(caller: Caller, component: Component, name: str, prefix: str) -> BindingResult:
    keyspaces = []
    with translated(INVOKE_OUTPUT_BINDING, f"error invoking output binding {name}"):
        caller.authorize("read", component.keyspace)
        keyspaces.append(component.keyspace)
        try:  # names only, no values: the -credentials keyspace when it may be read
            caller.authorize("read", component.credentials_keyspace)
            keyspaces.append(component.credentials_keyspace)
        except PermissionDeniedError:
            pass

        def work() -> bytes:
            store = caller.reader()
            found: list[str] = []
            for ks in keyspaces:
                _names(store, ks, prefix, found, MAX_LISTED)
            if len(found) > MAX_LISTED:
                raise _fail(
                    name,
                    f"more than {MAX_LISTED} objects under prefix {prefix!r}: list a "
                    "narrower prefix",
                )
            return json.dumps(sorted(found)).encode()

        answer = await caller.read(work, alone=True)
    return BindingResult(answer, {})
