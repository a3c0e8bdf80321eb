"""The results of the operations beyond Dagu's (SPEC §4-§5): history, keyspaces and
maintenance, transactions, leases and watch. Plain data, like those of
:mod:`statebox.core.results`; :mod:`statebox.core.envelope` renders their envelopes.

They are apart from :mod:`statebox.core.results` (the results of Dagu's own operations:
get, set, diff, delete, list) only to keep each module short;
:mod:`statebox.core.results` re-exports every name here, so
``from statebox.core.results import X`` keeps working. (``LeaseResult`` is defined
there, as writes take it, and is importable from here too.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .model import Keyspace, KeyspaceInfo, UpdatedBy
from .results import LeaseResult as LeaseResult  # defined there: see its comment
from .results import _as_data, _to_dict, _to_json

if TYPE_CHECKING:
    from .results import DeleteResult, SetResult, StoredValue

__all__ = [
    "HistoryItem",
    "HistoryResult",
    "KeyspaceDeleteResult",
    "KeyspacesResult",
    "LeaseResult",
    "LeasesResult",
    "PurgeResult",
    "TransactionResult",
    "WatchEvent",
    "WatchResult",
    "keyspace_cursor",
]


class HistoryItem(NamedTuple):
    version: int
    hash: str
    deleted: bool
    created_at: int
    updated_at: int
    updated_by: UpdatedBy
    stored: StoredValue | None
    #: The current version only, when it has a TTL (past versions no longer expire).
    expires_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)


class HistoryResult(NamedTuple):
    keyspace: Keyspace
    key: str
    versions: Sequence[HistoryItem]

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


# -- keyspaces and maintenance --------------------------------------------------------------


def keyspace_cursor(keyspace: Keyspace) -> str:
    """``scope/namespace``: the ``after`` of the next page (neither part holds a '/')."""
    return f"{keyspace.scope}/{keyspace.namespace}"


class KeyspacesResult(NamedTuple):
    """One page of keyspaces; ``next`` (when set) is the ``after`` of the next page."""

    scope: str | None
    keyspaces: Sequence[KeyspaceInfo]
    next: Keyspace | None = None

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


class LeasesResult(NamedTuple):
    """One page of live leases, each as ``get_lease`` gives it; ``next`` (when set) is
    the ``after`` of the next page (the last lease's name)."""

    leases: Sequence[LeaseResult]
    next: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


class KeyspaceDeleteResult(NamedTuple):
    """A whole keyspace deleted: how many live entries it had."""

    keyspace: Keyspace
    deleted: int

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


class PurgeResult(NamedTuple):
    """How many expired entries one purge removed."""

    purged: int

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


# -- SPEC §5 ------------------------------------------------------------------------------


class TransactionResult(NamedTuple):
    """What each operation of a transaction did, in order."""

    keyspace: Keyspace
    results: Sequence[SetResult | DeleteResult]

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)


class WatchEvent(NamedTuple):
    """One entry that changed past the watcher's known state (changes in between are
    coalesced: ``previous_version`` is what the watcher knew, ``version`` what is now)."""

    keyspace: Keyspace
    key: str
    event: str  # "created", "updated", "deleted"
    previous_version: int
    version: int  # 0 when deleted
    hash: str = ""
    stored: StoredValue | None = None

    @property
    def deleted(self) -> bool:
        return self.event == "deleted"

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


class WatchResult(NamedTuple):
    """The changes one ``watch`` call saw; empty with ``timed_out`` when none came."""

    keyspace: Keyspace
    key: str | None
    prefix: str | None
    events: Sequence[WatchEvent]

    @property
    def timed_out(self) -> bool:
        return not self.events

    def to_dict(self) -> dict[str, Any]:
        """The Dagu envelope: ``statebox.core.envelope.envelope(result)``."""
        return _to_dict(self)

    def to_json(self) -> str:
        """The Dagu envelope line: ``statebox.core.envelope.envelope_json(result)``."""
        return _to_json(self)

    def as_data(self) -> dict[str, Any]:
        """The Dagu envelope, parsed: ``statebox.core.envelope.envelope_data(result)``."""
        return _as_data(self)
