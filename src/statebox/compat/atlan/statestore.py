"""The Atlan Apps Framework's ``StateStore``, on statebox.

Same names, parameters and results as ``application_sdk.services.statestore.StateStore``
(the SDK up to 2.8.x), without its two failures:

- The SDK's ``save_state`` and ``save_state_object`` read the object, change it in
  memory and upload it whole, unguarded: tasks that set different fields at once
  overwrite each other (eight tasks lost 34 of 40 fields). Here each call is one
  version-guarded write of the fields it sets, re-read and retried when another writer
  got in first: every field survives.
- The SDK reads with ``suppress_error=True``: a failed read is "no state", so a
  ``save_state`` after one transient failure wrote an object holding its one field
  over the whole stored object. Here a failed read raises (a statebox error: the store
  unreachable, a corrupt entry, a wrong secret key) and nothing is written.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from typing import Any, Final

from ...core.errors import ConflictError, InvalidValueError, quoted
from ...core.results import StoredValue
from ...core.values import RawJSON
from ...store import StateStore as EngineStore
from ...transforms import MAX_PATCH_OPS
from . import _runtime
from ._naming import SCOPE, StateType, field_pointer, state_address

__all__ = ["StateStore"]

#: Attempts of a save against writers that keep getting in first (the engine's
#: ``update`` gives up after as many), with a growing, jittered pause between them.
ATTEMPTS: Final = 1000
_BACKOFF_BASE = 0.001
_BACKOFF_CAP = 0.05

_KINDS: Final = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _kind_of(value: Any) -> str:
    """What a Python value is, in JSON's words."""
    return _KINDS.get(type(value), type(value).__name__)


def _object(stored: StoredValue, id: str, kind: StateType, namespace: str) -> dict[str, Any]:
    """The stored value as a dict; any other value is refused, naming the object."""
    value = stored.parse()
    if isinstance(value, dict):
        return value
    held = _kind_of(value) if stored.is_json else f"binary data ({stored.content_type})"
    raise InvalidValueError(
        f"the {kind.value} state {quoted(id)} (scope {SCOPE}, namespace {quoted(namespace)}) "
        f"holds {held}, not an object: get_state, save_state and save_state_object work on "
        "objects (save_state_object(..., replace=True) writes a new object over it)"
    )


def _save(
    store: EngineStore,
    id: str,
    kind: StateType,
    namespace: str,
    operations: list[dict[str, Any]],
) -> dict[str, Any]:
    """Apply the JSON patch ``operations`` to the object ``id`` (``{}`` when there is
    none), atomically: read it, refuse a value that is not an object, patch it guarded
    by the version read; when another writer got in between, read again and retry."""
    conflict: ConflictError | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))
        current = store.get(id, scope=SCOPE, namespace=namespace)
        if current.stored is not None:
            # Checked here, under the version guard below: a JSON patch "add" of a field
            # named "0" or "-" would insert into an array instead of failing.
            _object(current.stored, id, kind, namespace)
        try:
            written = store.update(
                id,
                patch=operations,
                default={},
                expected_version=current.version,  # 0: the object must not exist yet
                scope=SCOPE,
                namespace=namespace,
            )
        except ConflictError as exc:
            conflict = exc
            continue
        assert written.stored is not None  # update reports the value it wrote
        return _object(written.stored, id, kind, namespace)
    assert conflict is not None
    raise ConflictError(
        f"saving the {kind.value} state {quoted(id)} gave up after {ATTEMPTS} attempts: "
        f"other writers kept changing it (last: {conflict.message})",
        current_version=conflict.current_version,
    ) from conflict


def _replace(store: EngineStore, id: str, namespace: str, value: Any) -> dict[str, Any]:
    normalized = store.normalize(value)
    store.set(id, RawJSON(normalized.data), scope=SCOPE, namespace=namespace)
    saved: dict[str, Any] = json.loads(normalized.data)
    return saved


class StateStore:
    """``await StateStore.get_state(id, StateType.WORKFLOWS)`` and the rest, as in the
    SDK. Each object is one statebox entry: scope ``custom``, namespace
    ``atlan-{ATLAN_APPLICATION_NAME}-{state type}``, key ``id``, in the store
    ``STATEBOX_STORE`` names (any backend, a statebox server included). ``type`` is a
    :class:`StateType` (or its value, ``"workflows"``)."""

    @classmethod
    async def get_state(cls, id: str, type: StateType) -> dict[str, Any] | None:
        """The object saved under ``id``, or None when there is none.

        A read that fails raises (the SDK 2.x returned ``{}``, as if there were no
        state); so does a stored value that is not an object."""
        kind, namespace, key = state_address(id, type)

        def read(store: EngineStore) -> dict[str, Any] | None:
            got = store.get(key, scope=SCOPE, namespace=namespace)
            return None if got.stored is None else _object(got.stored, key, kind, namespace)

        return await _runtime.call(read)

    @classmethod
    async def save_state(cls, key: str, value: Any, id: str, type: StateType) -> None:
        """Set the one top-level field ``key`` of the object ``id`` to ``value`` (any
        JSON value), creating the object if there is none. Atomic: calls that set
        other fields of the same object at the same time all survive."""
        kind, namespace, name = state_address(id, type)
        operations = [{"op": "add", "path": field_pointer(key), "value": value}]
        await _runtime.call(lambda store: _save(store, name, kind, namespace, operations))

    @classmethod
    async def save_state_object(
        cls, id: str, value: dict[str, Any], type: StateType, *, replace: bool = False
    ) -> dict[str, Any]:
        """Merge ``value``'s fields into the object ``id`` and return the object saved,
        as the SDK does: each top-level field of ``value`` replaces the stored one
        (``dict.update``: a nested object is replaced, not merged), the other stored
        fields stay. Atomic, as :meth:`save_state`.

        ``replace=True`` writes ``value`` as the whole object instead (whatever was
        stored, even a value that is not an object)."""
        kind, namespace, name = state_address(id, type)
        if not isinstance(value, Mapping):
            raise InvalidValueError(
                f"invalid value for the {kind.value} state {quoted(name)}: must be a dict "
                f"of fields, not {_kind_of(value)}",
                param="value",
            )
        if replace:
            whole = dict(value)
            for field in whole:
                field_pointer(field, "value")  # the same rule as a merge: str field names
            return await _runtime.call(lambda store: _replace(store, name, namespace, whole))
        if len(value) > MAX_PATCH_OPS:
            raise InvalidValueError(
                f"save_state_object merges at most {MAX_PATCH_OPS} fields at once, not "
                f"{len(value)}: save them in parts, or pass replace=True",
                param="value",
            )
        operations = [
            {"op": "add", "path": field_pointer(field, "value"), "value": item}
            for field, item in value.items()
        ]
        return await _runtime.call(lambda store: _save(store, name, kind, namespace, operations))

    @classmethod
    def close(cls) -> None:
        """Close the stores this process opened (and stop its worker threads); the next
        call opens the store ``STATEBOX_STORE`` names then. Call it when no call is
        running: at exit, between tests, after changing ``STATEBOX_STORE`` (a new URL
        opens its own store anyway; this closes the old one). Not part of the SDK."""
        _runtime.close_all()
