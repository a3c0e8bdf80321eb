"""The output objects of the operations (SPEC §4), built here once for every face.

Each result knows its envelope: :meth:`to_dict` gives the fields in the SPEC's order
(omitting what the SPEC says to omit) and :meth:`to_json` the exact compact line the CLI
and the runner print. Envelope strings are raw UTF-8 (no ``\\u`` escaping, no HTML
escaping); a stored JSON value is embedded as its normalized bytes, unchanged.

The results of the operations beyond Dagu's (history, keyspaces, purge, transaction,
lease, watch) live in :mod:`statebox.core.results_beyond`; their names are re-exported here,
loaded on first use.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .clock import format_timestamp
from .model import Keyspace, UpdatedBy
from .values import JSON_CONTENT_TYPE

if TYPE_CHECKING:
    from .results_beyond import (
        HistoryItem,
        HistoryResult,
        KeyspaceDeleteResult,
        KeyspacesResult,
        LeaseResult,
        PurgeResult,
        TransactionResult,
        WatchEvent,
        WatchResult,
    )
    from .results_beyond import (
        keyspace_cursor as keyspace_cursor,
    )

__all__ = [
    "DeleteResult",
    "DiffResult",
    "EmbeddedJSON",
    "GetResult",
    "HistoryItem",
    "HistoryResult",
    "KeyspaceDeleteResult",
    "KeyspacesResult",
    "LeaseResult",
    "ListEntry",
    "ListResult",
    "PurgeResult",
    "SetResult",
    "StoredValue",
    "TransactionResult",
    "WatchEvent",
    "WatchResult",
    "dumps_envelope",
]


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
_MARKER_PATTERN = re.compile(re.escape(_ENCODE(_MARKER)[:-1]) + r"(\d+)\\u0000\"")


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
    return _MARKER_PATTERN.sub(lambda m: found[int(m.group(1))], text)


class StoredValue(NamedTuple):
    """A stored value: its bytes and content type; parsed on demand."""

    data: bytes
    content_type: str = JSON_CONTENT_TYPE

    @property
    def is_json(self) -> bool:
        return self.content_type == JSON_CONTENT_TYPE

    @property
    def text(self) -> str:
        """The normalized JSON text (JSON entries only)."""
        return self.data.decode("utf-8")

    def parse(self) -> Any:
        """The value as Python data (JSON entries), or the raw bytes (binary entries)."""
        return json.loads(self.data) if self.is_json else self.data

    def envelope_fields(self) -> dict[str, Any]:
        """``value`` for the envelope: embedded JSON, or base64 for a binary entry."""
        if self.is_json:
            return {"value": EmbeddedJSON(self.text)}
        import base64  # binary entries are rare: not paid at every CLI start-up

        return {
            "value": base64.b64encode(self.data).decode("ascii"),
            "contentType": self.content_type,
            "encoding": "base64",
        }


class _HasEnvelope(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def _to_json(self: _HasEnvelope) -> str:
    """The exact compact JSON line of the envelope."""
    return dumps_envelope(self.to_dict())


def _as_data(self: _HasEnvelope) -> dict[str, Any]:
    """The envelope as plain Python data (values parsed)."""
    parsed: dict[str, Any] = json.loads(dumps_envelope(self.to_dict()))
    return parsed


# Results are NamedTuples (cheap to define: the CLI imports them on every start), so
# they cannot share a base class; each one's to_json/as_data delegates to these.


def _address(operation: str, keyspace: Keyspace, key: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operation": operation,
        "scope": keyspace.scope,
        "namespace": keyspace.namespace,
    }
    if key is not None:
        out["key"] = key
    return out


class GetResult(NamedTuple):
    keyspace: Keyspace
    key: str
    found: bool
    version: int = 0
    hash: str = ""
    #: The stored value, or the default when missing and a default was given.
    stored: StoredValue | None = None
    created_at: int = 0
    updated_at: int = 0
    updated_by: UpdatedBy = UpdatedBy()
    expires_at: int | None = None

    @property
    def value(self) -> Any:
        """The value as Python data (``None`` when missing with no default)."""
        return self.stored.parse() if self.stored is not None else None

    def to_dict(self) -> dict[str, Any]:
        out = _address("get", self.keyspace, self.key)
        out["found"] = self.found
        if self.found:
            out["version"] = self.version
            out["hash"] = self.hash
            if self.expires_at is not None:  # only with a TTL: Dagu's fields stay as they are
                out["expiresAt"] = format_timestamp(self.expires_at)
        if self.stored is not None:
            out.update(self.stored.envelope_fields())
        return out

    def to_json(self) -> str:
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        return _as_data(self)


class SetResult(NamedTuple):
    keyspace: Keyspace
    key: str
    version: int
    hash: str
    created: bool
    #: Set by operations that report the value they wrote (``update``, ``rollback``).
    stored: StoredValue | None = None
    operation: str = "set"
    #: ``update`` only: how many times it re-read and retried after a concurrent write.
    #: Observable for benchmarks and logs; not part of the envelope.
    retries: int = 0

    @property
    def value(self) -> Any:
        return self.stored.parse() if self.stored is not None else None

    def to_dict(self) -> dict[str, Any]:
        out = _address(self.operation, self.keyspace, self.key)
        out["version"] = self.version
        out["hash"] = self.hash
        out["created"] = self.created
        if self.stored is not None:
            out.update(self.stored.envelope_fields())
        return out

    def to_json(self) -> str:
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        return _as_data(self)


class DiffResult(NamedTuple):
    keyspace: Keyspace
    key: str
    changed: bool
    found_previous: bool
    previous_version: int
    version: int
    hash: str
    previous: StoredValue | None
    current: StoredValue

    def to_dict(self) -> dict[str, Any]:
        out = _address("diff", self.keyspace, self.key)
        out["changed"] = self.changed
        out["foundPrevious"] = self.found_previous
        if self.previous_version:
            out["previousVersion"] = self.previous_version
        if self.version:
            out["version"] = self.version
        if self.hash:
            out["hash"] = self.hash
        if self.previous is not None:
            out["previous"] = self.previous.envelope_fields()["value"]
        out["current"] = self.current.envelope_fields()["value"]
        return out

    def to_json(self) -> str:
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        return _as_data(self)


class DeleteResult(NamedTuple):
    keyspace: Keyspace
    key: str
    deleted: bool

    def to_dict(self) -> dict[str, Any]:
        out = _address("delete", self.keyspace, self.key)
        out["deleted"] = self.deleted
        return out

    def to_json(self) -> str:
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        return _as_data(self)


class ListEntry(NamedTuple):
    keyspace: Keyspace
    key: str
    version: int
    hash: str
    created_at: int
    updated_at: int
    stored: StoredValue | None = None
    expires_at: int | None = None

    @property
    def value(self) -> Any:
        return self.stored.parse() if self.stored is not None else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scope": self.keyspace.scope,
            "namespace": self.keyspace.namespace,
            "key": self.key,
            "version": self.version,
            "hash": self.hash,
            "createdAt": format_timestamp(self.created_at),
            "updatedAt": format_timestamp(self.updated_at),
        }
        if self.expires_at is not None:
            out["expiresAt"] = format_timestamp(self.expires_at)
        if self.stored is not None:
            out.update(self.stored.envelope_fields())
        return out


class ListResult(NamedTuple):
    keyspace: Keyspace
    prefix: str
    entries: Sequence[ListEntry]

    def to_dict(self) -> dict[str, Any]:
        out = _address("list", self.keyspace)
        if self.prefix:
            out["prefix"] = self.prefix
        out["entries"] = [entry.to_dict() for entry in self.entries]
        return out

    def to_json(self) -> str:
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        return _as_data(self)


# -- the results beyond Dagu's, re-exported -----------------------------------------------

_BEYOND = frozenset(
    {
        "HistoryItem",
        "HistoryResult",
        "KeyspaceDeleteResult",
        "KeyspacesResult",
        "LeaseResult",
        "PurgeResult",
        "TransactionResult",
        "WatchEvent",
        "WatchResult",
        "keyspace_cursor",
    }
)


def __getattr__(name: str) -> object:
    """A name of :mod:`statebox.core.results_beyond`, imported on first use: that module
    imports this one, so importing it here at load time would be circular."""
    if name not in _BEYOND:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import results_beyond

    value = getattr(results_beyond, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_BEYOND})
