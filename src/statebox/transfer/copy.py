"""Copying a store into another (any two backends), then checking the copy.

:func:`copy_store` is :func:`~.load.load_records` of :func:`~.dump.dump_records`, secret
keyspaces included (sealed again at the destination), followed by :func:`verify_copy`:
both stores are read again in dump order, side by side, and every keyspace's entries
and history versions are counted and compared key by key — ``(key, version, hash)`` of
each entry and each history record. A copy interrupted anywhere is finished by running
it again: the keys already there are ``same``.

A secret value's hash is keyed by the store that seals it (``backends/sealing``), so
two stores with different keys report different hashes for one value: such a version
counts as equal when its content type and bytes are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import zip_longest
from typing import TYPE_CHECKING, Any, NamedTuple

from .dump import dump_records
from .load import LoadReport, load_records

if TYPE_CHECKING:
    from ..core.records import Entry, HistoryRecord
    from ..store import StateStore
    from .codec import DumpRecord

__all__ = ["CopyReport", "KeyspaceCount", "Verification", "copy_store", "verify_copy"]


class KeyspaceCount(NamedTuple):
    """One keyspace as verified: its keys (live entries) and history versions."""

    scope: str
    namespace: str
    entries: int
    versions: int

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class Verification(NamedTuple):
    """Whether the destination holds what the source does; ``difference`` names the
    first key that differs (None when none does)."""

    ok: bool
    keyspaces: tuple[KeyspaceCount, ...]
    difference: str | None = None

    @property
    def entries(self) -> int:
        return sum(k.entries for k in self.keyspaces)

    @property
    def versions(self) -> int:
        return sum(k.versions for k in self.keyspaces)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "keyspaces": len(self.keyspaces),
            "entries": self.entries,
            "versions": self.versions,
            "difference": self.difference,
        }


class CopyReport(NamedTuple):
    load: LoadReport
    verification: Verification

    def to_dict(self) -> dict[str, Any]:
        return {**self.load.to_dict(), "verification": self.verification.to_dict()}


Version = tuple[int, str, bool, str, bytes]


def _versions(record: DumpRecord) -> tuple[Version | None, list[Version]]:
    def of(item: Entry | HistoryRecord, deleted: bool) -> Version:
        return (item.version, item.hash, deleted, item.content_type, item.data)

    current = of(record.current, False) if record.current is not None else None
    return current, [of(r, r.deleted) for r in record.history]


def _same(a: Version | None, b: Version | None) -> bool:
    if a is None or b is None:
        return a is b
    if a[:3] == b[:3]:
        return True
    # A keyed (secret) hash differs between two sealing keys: the bytes decide.
    return a[0] == b[0] and a[2] == b[2] and not a[2] and a[3:] == b[3:]


def _describe(record: DumpRecord, history: bool) -> str:
    current = record.current
    kept = f" and {len(record.history)} history records" if history else ""
    if current is None:
        return f"no live entry{kept}"
    return f"version {current.version}, hash {current.hash[:12]}…{kept}"


def _differs(ours: DumpRecord | None, theirs: DumpRecord | None, history: bool) -> str | None:
    """Why the two sides' records of one position differ, or None."""
    if ours is not None and theirs is not None:
        if (ours.scope, ours.namespace, ours.key) == (theirs.scope, theirs.namespace, theirs.key):
            a_now, a_kept = _versions(ours)
            b_now, b_kept = _versions(theirs)
            if _same(a_now, b_now) and (
                not history
                or (
                    len(a_kept) == len(b_kept)
                    and all(_same(a, b) for a, b in zip(a_kept, b_kept, strict=True))
                )
            ):
                return None
            return (
                f"{ours.scope}/{ours.namespace} key {ours.key!r}: the source has "
                f"{_describe(ours, history)}, the destination {_describe(theirs, history)}"
            )
        # Different keys at one position: the first of the two is missing on the other side.
        order = [(r.scope.encode(), r.namespace.encode(), r.key.encode()) for r in (ours, theirs)]
        if order[0] < order[1]:
            theirs = None
        else:
            ours = None
    record = ours if ours is not None else theirs
    assert record is not None
    where = "destination" if ours is not None else "source"
    return f"{record.scope}/{record.namespace} key {record.key!r} is missing at the {where}"


def verify_copy(
    source: StateStore,
    destination: StateStore,
    *,
    scope: str | None = None,
    namespace: str | None = None,
    history: bool = True,
) -> Verification:
    """Compare what ``scope``/``namespace`` select in both stores, key by key (streamed:
    both are read in the same order, one page at a time)."""

    def side(store: StateStore) -> Iterator[DumpRecord]:
        return dump_records(
            store, scope=scope, namespace=namespace, history=history, include_secrets=True
        )

    counts: dict[tuple[str, str], list[int]] = {}
    difference: str | None = None
    for ours, theirs in zip_longest(side(source), side(destination)):
        record = ours if ours is not None else theirs
        assert record is not None
        tally = counts.setdefault((record.scope, record.namespace), [0, 0])
        tally[0] += 1
        tally[1] += len(record.history)
        difference = _differs(ours, theirs, history)
        if difference is not None:
            break
    keyspaces = tuple(KeyspaceCount(s, n, e, v) for (s, n), (e, v) in counts.items())
    return Verification(difference is None, keyspaces, difference)


def copy_store(
    source: StateStore,
    destination: StateStore,
    *,
    scope: str | None = None,
    namespace: str | None = None,
    history: bool = True,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy what ``scope``/``namespace`` select (everything without them) from
    ``source`` to ``destination``, secret keyspaces included and sealed there, then
    verify the copy. ``progress`` is called with the number of keys each batch did."""
    records = dump_records(
        source, scope=scope, namespace=namespace, history=history, include_secrets=True
    )
    report = load_records(destination, records, replace=replace, progress=progress)
    verification = verify_copy(
        source, destination, scope=scope, namespace=namespace, history=history
    )
    return CopyReport(report, verification)
