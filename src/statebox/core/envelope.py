"""The Dagu envelope (SPEC §4-§5): the JSON object each result is rendered as.

Results (:mod:`statebox.core.results`, :mod:`statebox.core.results_beyond`) are plain
data; this module is the one place that turns them into the SPEC's envelopes: keys in
the SPEC's order, fields omitted (not null) where the SPEC says so, camelCase names,
RFC 3339 timestamps, ``expiresAt`` only where a TTL exists, binary values as base64 with
their content type. The CLI prints :func:`envelope_json`, the HTTP server answers with
it and the http:// backend parses it back; a face with a shape of its own renders it from
the results' fields instead.

Envelope strings are raw UTF-8 (no ``\\u`` escaping, no HTML escaping); a stored JSON
value is embedded as its normalized bytes, unchanged (:class:`EmbeddedJSON`).

A value of a secret keyspace (``StoredValue.secret``) is masked — ``"value": "***"``
with ``"masked": true`` — unless the caller renders with ``reveal=True`` (the CLI's
``--reveal``, the server's ``?reveal=true`` once the caller's grant allows it).

Pure: it imports nothing beyond what a CLI ``get`` already loads (the result modules,
``json``, ``os``, ``re``, ``contextvars``; ``base64`` only for a binary value).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar

from .clock import format_timestamp
from .model import Keyspace
from .results import (
    DeleteResult,
    DiffResult,
    GetResult,
    ListEntry,
    ListResult,
    SetResult,
    StoredValue,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # rendered by .envelope_beyond, loaded with the first of them
    from typing import Any, Final, TypeAlias

    from .results_beyond import (
        HistoryItem,
        HistoryResult,
        KeyspaceDeleteResult,
        KeyspacesResult,
        LeaseResult,
        LeasesResult,
        PurgeResult,
        TransactionResult,
        WatchEvent,
        WatchResult,
    )

__all__ = [
    "MASK",
    "EmbeddedJSON",
    "Result",
    "dumps_envelope",
    "envelope",
    "envelope_data",
    "envelope_json",
    "renderer",
    "value_fields",
]

#: Every object that has an envelope. ``ListEntry`` and ``HistoryItem`` are parts of a
#: list and a history; rendered alone they give the object they are in those lists.
Result: TypeAlias = (
    "GetResult | SetResult | DiffResult | DeleteResult | ListEntry | ListResult"
    " | HistoryItem | HistoryResult | KeyspacesResult | KeyspaceDeleteResult | PurgeResult"
    " | TransactionResult | LeaseResult | LeasesResult | WatchEvent | WatchResult"
)


# -- the encoder ----------------------------------------------------------------------------


class EmbeddedJSON:
    """Already-normalized JSON text to embed verbatim in an envelope."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmbeddedJSON) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Embedded parts travel through the (C) encoder as marker strings, then are put back in
# one pass. The nonce makes a marker impossible to forge from stored data.
_MARKER = "\x00" + os.urandom(8).hex() + ":"
# A marker as the encoder writes it: this, the part's index, then _MARKER_END. (Found
# with str methods: a regular expression would be compiled at every CLI start.)
_MARKER_START = _ENCODE(_MARKER)[:-1]
_MARKER_END = '\\u0000"'


_PLAIN = (str, int, float, type(None))


def _swap_embedded(obj: Any, found: list[str]) -> Any:
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, EmbeddedJSON):
        found.append(obj.text)
        return f"{_MARKER}{len(found) - 1}\x00"
    if isinstance(obj, (dict, Mapping)):
        return {k: _swap_embedded(v, found) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_swap_embedded(v, found) for v in obj]
    return obj


def dumps_envelope(obj: Any) -> str:
    """One compact JSON line; :class:`EmbeddedJSON` parts are inserted verbatim."""
    found: list[str] = []
    text: str = _ENCODE(_swap_embedded(obj, found))
    if not found:
        return text
    first, *marked = text.split(_MARKER_START)
    out = [first]
    for part in marked:  # each starts with its index, then the marker's end
        end = part.index(_MARKER_END)
        out.append(found[int(part[:end])])
        out.append(part[end + len(_MARKER_END) :])
    return "".join(out)


# -- the public entry points -------------------------------------------------------------

#: What a masked value shows in place of the value.
MASK: Final = "***"
# Whether the envelope being rendered shows secret values: a context variable, so the
# renderers deep inside (a list's entries, a history's versions) need no parameter, and
# concurrent renders (the server's requests, each in its own task) never see another's.
_REVEAL: ContextVar[bool] = ContextVar("statebox_reveal", default=False)


def envelope(result: Result, reveal: bool = False) -> dict[str, Any]:
    """The envelope's fields in the SPEC's order; a stored JSON value as
    :class:`EmbeddedJSON` (encode with :func:`dumps_envelope`). Values of secret
    keyspaces are masked unless ``reveal``."""
    render = renderer(type(result))
    token = _REVEAL.set(reveal)
    try:
        return render(result)
    finally:
        _REVEAL.reset(token)


def envelope_json(result: Result, reveal: bool = False) -> str:
    """The envelope as the exact compact JSON line the CLI prints and HTTP answers
    (secret values masked unless ``reveal``)."""
    return dumps_envelope(envelope(result, reveal))


def envelope_data(result: Result, reveal: bool = False) -> dict[str, Any]:
    """The envelope as plain Python data (values parsed; secret values masked unless
    ``reveal``)."""
    parsed: dict[str, Any] = json.loads(envelope_json(result, reveal))
    return parsed


def renderer(kind: type[Any]) -> Callable[[Any], dict[str, Any]]:
    """The function that renders results of type ``kind`` (or of a subclass of one);
    ``TypeError`` when there is none."""
    found = _RENDERERS.get(kind)
    if found is None:
        found = next((_RENDERERS[base] for base in kind.__mro__ if base in _RENDERERS), None)
        if found is None and _load_beyond():
            return renderer(kind)
        if found is None:
            raise TypeError(f"no Dagu envelope for {kind.__qualname__} objects")
    return found


def _load_beyond() -> bool:
    """Add the renderers of the results beyond Dagu's operations (history, keyspaces,
    leases, watch …) to the table, on first use: a ``get`` never loads them. False
    when they were there already."""
    from .envelope_beyond import RENDERERS

    if RENDERERS.keys() <= _RENDERERS.keys():
        return False
    _RENDERERS.update(RENDERERS)
    return True


def value_fields(stored: StoredValue) -> dict[str, Any]:
    """``value`` for the envelope: embedded JSON, or base64 for a binary entry (then
    with ``contentType`` and ``encoding``). A secret value, unless the envelope reveals
    it: ``"***"`` and ``masked: true`` (a binary one keeps its ``contentType``)."""
    if stored.secret and not _REVEAL.get():
        if stored.is_json:
            return {"value": MASK, "masked": True}
        return {"value": MASK, "contentType": stored.content_type, "masked": True}
    if stored.is_json:
        return {"value": EmbeddedJSON(stored.text)}
    import base64  # binary entries are rare: not paid at every CLI start-up

    return {
        "value": base64.b64encode(stored.data).decode("ascii"),
        "contentType": stored.content_type,
        "encoding": "base64",
    }


# -- Dagu's operations (SPEC §4) ----------------------------------------------------------


def _address(operation: str, keyspace: Keyspace, key: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operation": operation,
        "scope": keyspace.scope,
        "namespace": keyspace.namespace,
    }
    if key is not None:
        out["key"] = key
    return out


def _get(result: GetResult) -> dict[str, Any]:
    out = _address("get", result.keyspace, result.key)
    out["found"] = result.found
    if result.found:
        out["version"] = result.version
        out["hash"] = result.hash
        if result.expires_at is not None:  # only with a TTL: Dagu's fields stay as they are
            out["expiresAt"] = format_timestamp(result.expires_at)
    if result.stored is not None:  # the value, or the default a missing entry was given
        out.update(value_fields(result.stored))
    return out


def _set(result: SetResult) -> dict[str, Any]:
    out = _address(result.operation, result.keyspace, result.key)
    out["version"] = result.version
    out["hash"] = result.hash
    out["created"] = result.created
    if result.stored is not None:  # update and rollback report what they wrote
        out.update(value_fields(result.stored))
    # ``retries`` is for benchmarks and logs, not part of the envelope.
    return out


def _diff(result: DiffResult) -> dict[str, Any]:
    out = _address("diff", result.keyspace, result.key)
    out["changed"] = result.changed
    out["foundPrevious"] = result.found_previous
    if result.previous_version:
        out["previousVersion"] = result.previous_version
    if result.version:
        out["version"] = result.version
    if result.hash:
        out["hash"] = result.hash
    if result.previous is not None:
        out["previous"] = value_fields(result.previous)["value"]
    current = value_fields(result.current)
    out["current"] = current["value"]
    if current.get("masked"):  # previous is of the same keyspace: masked alike
        out["masked"] = True
    return out


def _delete(result: DeleteResult) -> dict[str, Any]:
    out = _address("delete", result.keyspace, result.key)
    out["deleted"] = result.deleted
    return out


def _list_entry(entry: ListEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scope": entry.keyspace.scope,
        "namespace": entry.keyspace.namespace,
        "key": entry.key,
        "version": entry.version,
        "hash": entry.hash,
        "createdAt": format_timestamp(entry.created_at),
        "updatedAt": format_timestamp(entry.updated_at),
    }
    if entry.expires_at is not None:
        out["expiresAt"] = format_timestamp(entry.expires_at)
    if entry.stored is not None:
        out.update(value_fields(entry.stored))
    return out


def _list(result: ListResult) -> dict[str, Any]:
    out = _address("list", result.keyspace)
    if result.prefix:
        out["prefix"] = result.prefix
    out["entries"] = [_list_entry(entry) for entry in result.entries]
    return out


def _without(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in names}


# A table, not functools.singledispatch: the exact type is the key, so a render is one
# dict look-up, with nothing more to import at start-up (a subclass falls back to its MRO).
_RENDERERS: dict[type[Any], Callable[[Any], dict[str, Any]]] = {
    GetResult: _get,
    SetResult: _set,
    DiffResult: _diff,
    DeleteResult: _delete,
    ListEntry: _list_entry,
    ListResult: _list,
}
