"""The output objects of the operations (SPEC §4), built here once for every face.

Results are plain data: their fields, and properties that are facts about the data
(``found``, ``value``, ``expires_at``). How a face shows them is the face's business; the
Dagu envelope (the exact JSON objects of SPEC §4-§5, which the CLI prints and the HTTP
server answers) is rendered by :mod:`statebox.core.envelope`. ``to_dict()``,
``to_json()`` and ``as_data()`` stay as conveniences that delegate to it.

The results of the operations beyond Dagu's (history, keyspaces, purge, transaction,
watch) live in :mod:`statebox.core.results_beyond`; their names are re-exported here,
loaded on first use. :class:`LeaseResult` is here: a write's ``fencing=`` takes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .model import Keyspace, UpdatedBy
from .values import JSON_CONTENT_TYPE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from .envelope import Result
    from .results_beyond import (
        HistoryItem,
        HistoryResult,
        KeyspaceDeleteResult,
        KeyspacesResult,
        LeasesResult,
        PurgeResult,
        TransactionResult,
        WatchEvent,
        WatchResult,
    )
    from .results_beyond import (
        keyspace_cursor as keyspace_cursor,
    )
else:  # typing.NamedTuple's classes, built faster (a CLI start defines them)
    from ._tuples import NamedTuple

__all__ = [
    "DeleteResult",
    "DiffResult",
    "GetResult",
    "HistoryItem",
    "HistoryResult",
    "KeyspaceDeleteResult",
    "KeyspacesResult",
    "LeaseResult",
    "LeasesResult",
    "ListEntry",
    "ListResult",
    "PurgeResult",
    "SetResult",
    "StoredValue",
    "TransactionResult",
    "WatchEvent",
    "WatchResult",
]


class StoredValue(NamedTuple):
    """A stored value: its bytes and content type; parsed on demand.

    ``secret``: the value belongs to a secret keyspace (:mod:`statebox.core.secrecy`).
    The library still holds the real bytes (whoever has the store has the key); the
    renderers mask it unless asked to reveal it (:func:`statebox.core.envelope.envelope`),
    and so does its ``repr`` (a value printed in a traceback or a log stays hidden).
    """

    data: bytes
    content_type: str = JSON_CONTENT_TYPE
    secret: bool = False

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


def _stored_value_repr(self: StoredValue) -> str:
    """The repr of every field, but the data of a secret value masked."""
    if not self.secret:
        return f"StoredValue(data={self.data!r}, content_type={self.content_type!r})"
    return f"StoredValue(data=<masked>, content_type={self.content_type!r}, secret=True)"


# Set after the class is built: the NamedTuple builders give every class their own repr.
StoredValue.__repr__ = _stored_value_repr  # type: ignore[method-assign,assignment]


# The envelope conveniences of every result. Results are NamedTuples (cheap to define: the
# CLI imports them on every start), so they cannot share a base class; each method calls
# one of these. The renderer imports this module, so each imports it when called (a
# look-up in sys.modules once it is loaded).


def _to_dict(result: Result) -> dict[str, Any]:
    from .envelope import envelope

    return envelope(result)


def _to_json(result: Result) -> str:
    from .envelope import envelope_json

    return envelope_json(result)


def _as_data(result: Result) -> dict[str, Any]:
    from .envelope import envelope_data

    return envelope_data(result)


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
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
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
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
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
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


class DeleteResult(NamedTuple):
    keyspace: Keyspace
    key: str
    deleted: bool

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
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
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)


class ListResult(NamedTuple):
    keyspace: Keyspace
    prefix: str
    entries: Sequence[ListEntry]

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


# A result beyond Dagu's operations, but here: writes take it as ``fencing=``, and the type
# of that parameter (statebox.core.leases.Fencing) is built from it on a get's path.
class LeaseResult(NamedTuple):
    """A lease: pass it as ``fencing=`` to writes, or to renew/release."""

    action: str  # "acquire", "renew", "release", "get"
    name: str
    holder: str
    token: int
    expires_at: int  # ns since the epoch, UTC
    #: The duration asked for at acquisition or renewal (seconds); renew reuses it.
    ttl: float = 0.0
    #: ``release`` only: whether the lease was ours to end.
    released: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


# -- names re-exported from the modules that import this one --------------------------------

#: Name → the module (of this package) that defines it.
_REEXPORTED = {
    **dict.fromkeys(
        (
            "HistoryItem",
            "HistoryResult",
            "KeyspaceDeleteResult",
            "KeyspacesResult",
            "LeasesResult",
            "PurgeResult",
            "TransactionResult",
            "WatchEvent",
            "WatchResult",
            "keyspace_cursor",
        ),
        "results_beyond",
    ),
}


def __getattr__(name: str) -> object:
    """A name of :mod:`statebox.core.results_beyond`, imported on first use: it imports
    this module, so importing it here at load time would be circular."""
    module = _REEXPORTED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__package__}.{module}", fromlist=[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_REEXPORTED})
