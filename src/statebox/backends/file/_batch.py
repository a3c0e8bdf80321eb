"""Planning a batch of writes: one keyspace (``apply``) or several (``apply_batch``).

Every key of every keyspace is read once and planned with :mod:`statebox.core.versions`
before any file changes, so a failed guard or fence anywhere leaves everything untouched.
The result is one :class:`~._writes.FilePlan` for all keyspaces: its record files change
by one rename (a single record) or under one journal (several, in any keyspaces), so the
whole batch is all-or-nothing across crashes too (``_journal``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...core.model import Keyspace
from ...core.versions import check_fence, history_record, plan
from ..base import Applied, Entry, HistoryRecord, Lease, Mutation, WriteContext
from ._layout import KeyPaths, Layout
from ._reads import Loaded, load
from ._writes import FilePlan

__all__ = ["Batches", "Targets", "plan_batches", "targets"]

Batches = Sequence[tuple[Keyspace, Sequence[Mutation]]]
_Id = tuple[Keyspace, str]


@dataclass(frozen=True, slots=True)
class Targets:
    """The files a batch touches and the locks that guard them."""

    paths: dict[_Id, KeyPaths]
    #: The ``flock`` buckets of every key and of every fence's lease.
    buckets: set[int]
    #: Dagu's record ids of the records written (their Dagu locks are taken too).
    records: list[str]


def targets(layout: Layout, batches: Batches) -> Targets:
    """Every key's paths (checked against the file-name limit before anything is locked)."""
    paths: dict[_Id, KeyPaths] = {}
    for keyspace, mutations in batches:
        for m in mutations:
            paths[keyspace, m.key] = layout.key_paths(keyspace, m.key)
    buckets = {p.bucket for p in paths.values()}
    for _, mutations in batches:
        for m in mutations:
            if m.fence is not None:
                buckets.add(layout.lease_path(m.fence.lease)[1])
    return Targets(paths, buckets, [p.record_id for p in paths.values() if p.dagu])


def plan_batches(
    batches: Batches,
    paths: dict[_Id, KeyPaths],
    ctx: WriteContext,
    read_lease: Callable[[str], Lease | None],
) -> tuple[list[list[Applied]], FilePlan]:
    """Plan every mutation in order (a conflict's ``index`` counts across all batches);
    called holding every lock of :func:`targets`."""
    loaded: dict[_Id, Loaded] = {}
    staged: dict[_Id, Entry | None] = {}
    records: dict[_Id, list[HistoryRecord]] = {}
    results: list[list[Applied]] = []
    index = 0
    for keyspace, mutations in batches:
        applied: list[Applied] = []
        for mutation in mutations:
            ident = (keyspace, mutation.key)
            if ident not in loaded:
                loaded[ident] = load(paths[ident], mutation.key, for_write=True)
            existing = staged[ident] if ident in staged else loaded[ident].entry
            current = existing if existing is not None and existing.is_live(ctx.now) else None
            if mutation.fence is not None:
                check_fence(mutation.fence, read_lease(mutation.fence.lease), index=index)
            new = plan(current, mutation, ctx, index=index)
            staged[ident] = new
            applied.append(Applied(current, new))
            record = history_record(current, new, ctx)
            if record is not None:
                records.setdefault(ident, []).append(record)
            index += 1
        results.append(applied)
    files = FilePlan()
    for ident, final in staged.items():
        keyspace, key = ident
        files.add_key(
            keyspace,
            key,
            paths[ident],
            loaded[ident],
            final,
            records.get(ident, []),
            ctx.history_limit,
        )
    return results, files
