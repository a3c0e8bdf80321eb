"""Reading a store out as :class:`~.codec.DumpRecord` s: streamed, page by page.

Keyspaces come from ``list_keyspaces`` (paged), keys from ``scan`` pages continued with
``after=``, in the order a resumed dump relies on: keyspaces by the UTF-8 bytes of
``(scope, namespace)``, keys by their bytes. Values are read from the backend below the
engine, where nothing is masked (the sealing layer opens a secret value; masking is the
renderers' business, and a dump is a copy, not a rendering).

What a dump cannot carry: a key that has only history (it was deleted, or expired) is
found by no backend call — the contract lists live entries only — so it is not dumped,
and neither is a keyspace without live entries. A live key's history is dumped whole,
deletions included. Nor is a dump a snapshot: each page is read at its own moment (a
SQLite store's consistent copy is ``statebox backup``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from ..core.errors import InvalidReferenceError
from ..core.model import (
    Keyspace,
    KeyspaceInfo,
    Scope,
    keyspace_sort_key,
    validate_namespace,
)
from .codec import DumpRecord

if TYPE_CHECKING:
    from ..backends.base import Entry, HistoryRecord
    from ..store import StateStore

__all__ = ["DumpPosition", "count_records", "dump_records", "selected_keyspaces"]

#: Keys read per ``scan``, keyspaces per ``list_keyspaces``: memory stays bounded.
PAGE = 500
#: The store's registry of secret keyspaces: statebox's own bookkeeping, carried by
#: each record's ``secret`` flag instead (the destination declares them itself).
_REGISTRY = Keyspace("statebox", "secret-keyspaces")
#: Re-reads of a key whose entry and history changed between the two reads.
_ATTEMPTS = 5


class DumpPosition(NamedTuple):
    """Where a dump stopped: the last key written (a resumed dump starts after it)."""

    scope: str
    namespace: str
    key: str

    @property
    def keyspace(self) -> Keyspace:
        return Keyspace(self.scope, self.namespace)


def selected_keyspaces(
    store: StateStore,
    scope: str | None = None,
    namespace: str | None = None,
    *,
    start: Keyspace | None = None,
) -> Iterator[KeyspaceInfo]:
    """The keyspaces holding live entries that ``scope`` and ``namespace`` select (all
    without them), in dump order, from ``start`` on (inclusive); the registry of secret
    keyspaces is never one."""
    now = store.clock.now_ns()
    upper: Keyspace | None = None
    if namespace is not None:
        upper = store.keyspace(scope, namespace)
        scope_name: str | None = upper.scope
        if start is None or keyspace_sort_key(start) < keyspace_sort_key(upper):
            start = upper
    else:
        scope_name = Scope.parse(scope).value if scope is not None else None
    after = _before(start) if start is not None else None
    while True:
        page = store.backend.list_keyspaces(scope_name, after=after, limit=PAGE, now=now)
        for info in page:
            order = keyspace_sort_key(info.keyspace)
            if start is not None and order < keyspace_sort_key(start):
                continue  # between _before(start) and start
            if upper is not None and order > keyspace_sort_key(upper):
                return
            if info.keyspace != _REGISTRY:
                yield info
        if len(page) < PAGE:
            return
        after = page[-1].keyspace


def _before(keyspace: Keyspace) -> Keyspace | None:
    """A keyspace that sorts before ``keyspace`` and after every keyspace of an earlier
    scope (``list_keyspaces``'s ``after`` is exclusive, and a string has no immediate
    predecessor): its namespace less the last character. Those listed between the two
    are skipped by the caller. None — list from the start — where that is no valid
    namespace (``"a"`` → ``""``, ``".x"`` → ``"."``, ``"b c"`` → ``"b "``): a remote
    store's server takes ``after`` only as a valid keyspace, and trims it."""
    shorter = keyspace.namespace[:-1]
    try:
        valid = validate_namespace(shorter) == shorter
    except InvalidReferenceError:
        valid = False
    return Keyspace(keyspace.scope, shorter) if valid else None


def count_records(
    store: StateStore,
    scope: str | None = None,
    namespace: str | None = None,
    *,
    include_secrets: bool = True,
) -> int:
    """How many records :func:`dump_records` will give (the live keys): the total a
    progress bar shows. Counted from ``list_keyspaces``, without reading a key."""
    return sum(
        info.entries
        for info in selected_keyspaces(store, scope, namespace)
        if include_secrets or not store.secret_policy.is_secret(info.keyspace)
    )


def dump_records(
    store: StateStore,
    *,
    scope: str | None = None,
    namespace: str | None = None,
    history: bool = False,
    include_secrets: bool = False,
    after: DumpPosition | None = None,
    on_skip: Callable[[Keyspace], None] | None = None,
) -> Iterator[DumpRecord]:
    """Every live key that ``scope``/``namespace`` select, with its history when
    ``history``, in dump order, after ``after`` when resuming. A secret keyspace is
    skipped (``on_skip`` is told) unless ``include_secrets``: then its values are in
    the clear in the records, marked ``secret``."""
    start = after.keyspace if after is not None else None
    for info in selected_keyspaces(store, scope, namespace, start=start):
        keyspace = info.keyspace
        secret = store.secret_policy.is_secret(keyspace)
        if secret and not include_secrets:
            if on_skip is not None:
                on_skip(keyspace)
            continue
        first = after.key if after is not None and keyspace == start else None
        yield from _keyspace_records(store, keyspace, first, history=history, secret=secret)


def _keyspace_records(
    store: StateStore, keyspace: Keyspace, after: str | None, *, history: bool, secret: bool
) -> Iterator[DumpRecord]:
    backend = store.backend
    while True:
        page = backend.scan(
            keyspace, "", after=after, limit=PAGE, include_values=True, now=store.clock.now_ns()
        )
        for entry in page:
            current: Entry | None = entry
            records: tuple[HistoryRecord, ...] = ()
            if history:
                current, records = _with_history(store, keyspace, entry)
            yield DumpRecord(
                keyspace.scope, keyspace.namespace, entry.key, current, records, secret
            )
        if len(page) < PAGE:
            return
        after = page[-1].key


def _with_history(
    store: StateStore, keyspace: Keyspace, entry: Entry
) -> tuple[Entry | None, tuple[HistoryRecord, ...]]:
    """The key's entry and history as they were together: when a write came between the
    scan and the history read (the newest record is another version), both are read
    again, so a record never pairs one version's entry with another's history."""
    backend = store.backend
    current: Entry | None = entry
    records = tuple(backend.history(keyspace, entry.key, 0))
    for _ in range(_ATTEMPTS):
        if not records or _agree(current, records[0]):
            break
        current = backend.get(keyspace, entry.key, store.clock.now_ns())
        records = tuple(backend.history(keyspace, entry.key, 0))
    return current, records


def _agree(current: Entry | None, newest: HistoryRecord) -> bool:
    if current is None:
        return newest.deleted
    return not newest.deleted and newest.version == current.version
