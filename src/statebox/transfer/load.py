"""Writing :class:`~.codec.DumpRecord` s into a store: ``StateStore.import_keys`` in
batches, each key verbatim (versions, hashes, timestamps, writers, expiry).

Idempotent: a key already there as the record has it is ``same``, so loading twice, or
loading again after an interruption, finishes with the same store. A key that differs
is a conflict, reported and left as it is, unless ``replace``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.model import Keyspace
from ..core.records import (
    IMPORT_CONFLICT,
    IMPORT_CREATED,
    IMPORT_REPLACED,
    IMPORT_SAME,
    KeyImport,
)
from .codec import DumpRecord

if TYPE_CHECKING:
    from ..store import StateStore

__all__ = ["Conflict", "LoadReport", "load_records"]

#: Keys per ``import_keys`` call: one transaction each.
BATCH = 200


class Conflict(NamedTuple):
    """A key that was left as the destination had it: its version in the dump and
    there (None: no live entry — a key with history only)."""

    scope: str
    namespace: str
    key: str
    version: int | None
    existing_version: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "namespace": self.namespace,
            "key": self.key,
            "version": self.version,
            "existingVersion": self.existing_version,
        }


class LoadReport(NamedTuple):
    """What a load did, key by key, counted by outcome."""

    created: int = 0
    same: int = 0
    replaced: int = 0
    conflicts: tuple[Conflict, ...] = ()

    @property
    def records(self) -> int:
        return self.created + self.same + self.replaced + len(self.conflicts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "created": self.created,
            "same": self.same,
            "replaced": self.replaced,
            "conflicts": [c.to_dict() for c in self.conflicts],
        }


class _Loader:
    def __init__(
        self, store: StateStore, replace: bool, progress: Callable[[int], None] | None
    ) -> None:
        self.store = store
        self.replace = replace
        self.progress = progress
        self.counts = {IMPORT_CREATED: 0, IMPORT_SAME: 0, IMPORT_REPLACED: 0}
        self.conflicts: list[Conflict] = []
        self.declared: set[Keyspace] = set()

    def flush(self, keyspace: Keyspace, batch: list[DumpRecord]) -> None:
        if not batch:
            return
        if keyspace not in self.declared:
            self.declared.add(keyspace)
            if any(r.secret for r in batch) and not self.store.secret_policy.is_secret(keyspace):
                # Sealed at the destination too: declared before the first value lands.
                self.store.declare_secret_keyspace(keyspace.scope, keyspace.namespace)
        items = [KeyImport(r.key, r.current, r.history) for r in batch]
        outcomes = self.store.import_keys(keyspace, items, replace=self.replace)
        for record, outcome in zip(batch, outcomes, strict=True):
            if outcome == IMPORT_CONFLICT:
                self.conflicts.append(self._conflict(keyspace, record))
            else:
                self.counts[outcome] += 1
        if self.progress is not None:
            self.progress(len(batch))

    def _conflict(self, keyspace: Keyspace, record: DumpRecord) -> Conflict:
        backend = self.store.backend
        there = backend.get(keyspace, record.key, self.store.clock.now_ns())
        if there is None:
            kept = backend.history(keyspace, record.key, 1)
            existing = kept[0].version if kept else None
        else:
            existing = there.version
        ours = record.current or (record.history[0] if record.history else None)
        return Conflict(
            keyspace.scope,
            keyspace.namespace,
            record.key,
            ours.version if ours is not None else None,
            existing,
        )

    def report(self) -> LoadReport:
        return LoadReport(
            self.counts[IMPORT_CREATED],
            self.counts[IMPORT_SAME],
            self.counts[IMPORT_REPLACED],
            tuple(self.conflicts),
        )


def load_records(
    store: StateStore,
    records: Iterable[DumpRecord],
    *,
    replace: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Import ``records`` (in dump order, or any order: a batch holds one keyspace's
    consecutive records) into ``store``; ``progress`` is called with the number of
    records each batch finished. Keys that conflict are reported, never overwritten
    unless ``replace``; everything else is loaded either way. A secret record's keyspace
    is declared secret at the destination first, so its values are sealed there."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    loader = _Loader(store, replace, progress)
    pending: list[DumpRecord] = []
    keyspace: Keyspace | None = None
    for record in records:
        # store.keyspace validates the names a dump file brings (an edited one may lie).
        here = store.keyspace(record.scope, record.namespace)
        if here != keyspace or len(pending) >= batch:
            if keyspace is not None:
                loader.flush(keyspace, pending)
            keyspace, pending = here, []
        pending.append(record)
    if keyspace is not None:
        loader.flush(keyspace, pending)
    return loader.report()
