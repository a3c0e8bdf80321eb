"""``memory://`` — entries in a dict, for tests and for users testing their workflows.

Atomic across threads (one lock); nothing outlives the process.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Sequence
from typing import ClassVar

from ..core.model import Keyspace
from ..core.versions import (
    check_fence,
    history_record,
    plan,
    plan_acquire,
    plan_release,
    plan_renew,
)
from .base import (
    Applied,
    Backend,
    Capabilities,
    Entry,
    HistoryRecord,
    KeyImport,
    KeyspaceInfo,
    Lease,
    Mutation,
    WriteContext,
    check_batches,
    keyspace_sort_key,
    live_leases,
)
from .keyrange import prefix_upper_bound

__all__ = ["MemoryBackend"]


class _Space:
    """One keyspace: entries by key, plus the keys kept sorted by UTF-8 bytes."""

    __slots__ = ("entries", "sorted_keys")

    def __init__(self) -> None:
        self.entries: dict[bytes, Entry] = {}
        self.sorted_keys: list[bytes] = []

    def place(self, raw_key: bytes, current: Entry | None) -> None:
        """Make ``current`` the key's entry, or remove the key when it is None."""
        if current is not None:
            if raw_key not in self.entries:
                bisect.insort(self.sorted_keys, raw_key)
            self.entries[raw_key] = current
        elif raw_key in self.entries:
            del self.entries[raw_key]
            self.sorted_keys.pop(bisect.bisect_left(self.sorted_keys, raw_key))


#: A batch planned and not yet committed: its keyspace, mutations and outcomes.
_Planned = tuple[Keyspace, _Space, Sequence[Mutation], list[Applied]]


class MemoryBackend(Backend):
    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=False,
        cross_machine=False,
        durable=False,
        inline_reads=True,
        test_reset=True,
        store_wide_changes=True,  # one change counter for the store
    )

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._changes = 0
        self._leases: dict[str, Lease] = {}
        self._spaces: dict[Keyspace, _Space] = {}
        self._history: dict[tuple[Keyspace, bytes], deque[HistoryRecord]] = {}

    def _space(self, keyspace: Keyspace) -> _Space:
        space = self._spaces.get(keyspace)
        if space is None:
            space = self._spaces[keyspace] = _Space()
        return space

    def get(self, keyspace: Keyspace, key: str, now: int) -> Entry | None:
        with self._lock:
            space = self._spaces.get(keyspace)
            entry = space.entries.get(key.encode()) if space else None
        return entry if entry is not None and entry.is_live(now) else None

    def scan(
        self,
        keyspace: Keyspace,
        prefix: str,
        *,
        after: str | None,
        limit: int,
        include_values: bool,
        now: int,
    ) -> list[Entry]:
        low = prefix.encode()
        high = prefix_upper_bound(low)
        with self._lock:
            space = self._spaces.get(keyspace)
            if space is None:
                return []
            keys = space.sorted_keys
            start = bisect.bisect_left(keys, low)
            if after is not None:
                start = max(start, bisect.bisect_right(keys, after.encode()))
            out: list[Entry] = []
            for raw_key in (
                keys[start:] if high is None else keys[start : bisect.bisect_left(keys, high)]
            ):
                entry = space.entries[raw_key]
                if entry.is_live(now):
                    out.append(entry)
                    if limit and len(out) >= limit:
                        break
            return out

    def apply(
        self, keyspace: Keyspace, mutations: Sequence[Mutation], ctx: WriteContext
    ) -> list[Applied]:
        with self._lock:
            space = self._space(keyspace)
            results = self._plan(space, mutations, ctx, 0)
            self._commit_all([(keyspace, space, mutations, results)], ctx)
            return results

    def apply_batch(
        self, batches: Sequence[tuple[Keyspace, Sequence[Mutation]]], ctx: WriteContext
    ) -> list[list[Applied]]:
        check_batches(batches)
        with self._lock:
            # Plan every batch before committing any: a conflict anywhere leaves the
            # store untouched.
            planned: list[_Planned] = []
            offset = 0
            for keyspace, mutations in batches:
                space = self._space(keyspace)
                results = self._plan(space, mutations, ctx, offset)
                planned.append((keyspace, space, mutations, results))
                offset += len(mutations)
            self._commit_all(planned, ctx)
            return [results for *_, results in planned]

    def _plan(
        self, space: _Space, mutations: Sequence[Mutation], ctx: WriteContext, offset: int
    ) -> list[Applied]:
        """Plan ``mutations`` against a private view (nothing is written); a conflict's
        index counts from ``offset``."""
        staged: dict[bytes, Entry | None] = {}
        results: list[Applied] = []
        for index, mutation in enumerate(mutations, offset):
            raw_key = mutation.key.encode()
            existing = staged[raw_key] if raw_key in staged else space.entries.get(raw_key)
            current = existing if existing is not None and existing.is_live(ctx.now) else None
            if mutation.fence is not None:
                check_fence(mutation.fence, self._leases.get(mutation.fence.lease), index=index)
            new = plan(current, mutation, ctx, index=index)
            staged[raw_key] = new
            results.append(Applied(current, new))
        return results

    def _commit_all(self, planned: Sequence[_Planned], ctx: WriteContext) -> None:
        """Commit planned batches (holding the lock), then wake the watchers once."""
        for keyspace, space, mutations, results in planned:
            for applied, mutation in zip(results, mutations, strict=True):
                self._commit(keyspace, space, mutation.key.encode(), applied, ctx)
        self._changes += 1
        self._changed.notify_all()

    def _commit(
        self, keyspace: Keyspace, space: _Space, raw_key: bytes, applied: Applied, ctx: WriteContext
    ) -> None:
        space.place(raw_key, applied.current)
        record = history_record(applied.previous, applied.current, ctx)
        if record is None:
            return
        if ctx.history_limit <= 0:
            self._history.pop((keyspace, raw_key), None)
            return
        kept = self._history.get((keyspace, raw_key))
        if kept is None or kept.maxlen != ctx.history_limit:
            kept = deque(kept or (), maxlen=ctx.history_limit)
            self._history[(keyspace, raw_key)] = kept
        kept.append(record)

    def history(self, keyspace: Keyspace, key: str, limit: int) -> list[HistoryRecord]:
        with self._lock:
            kept = list(self._history.get((keyspace, key.encode()), ()))
        kept.reverse()
        return kept[:limit] if limit else kept

    def get_version(self, keyspace: Keyspace, key: str, version: int) -> HistoryRecord | None:
        for record in self.history(keyspace, key, 0):
            if record.version == version and not record.deleted:
                return record
        return None

    def import_keys(
        self, keyspace: Keyspace, items: Sequence[KeyImport], *, replace: bool, now: int
    ) -> list[str]:
        from ._imports import check_imports, outcome, signature, written

        check_imports(items)  # before anything is written: nothing below can fail
        with self._lock:
            space = self._space(keyspace)
            outcomes: list[str] = []
            for item in items:
                raw_key = item.key.encode()
                kept = reversed(self._history.get((keyspace, raw_key), ()))
                result = outcome(
                    space.entries.get(raw_key), signature(kept), item, now, replace=replace
                )
                if written(result):
                    self._import_one(keyspace, space, raw_key, item)
                outcomes.append(result)
            if any(written(result) for result in outcomes):
                self._changes += 1
                self._changed.notify_all()
            return outcomes

    def _import_one(
        self, keyspace: Keyspace, space: _Space, raw_key: bytes, item: KeyImport
    ) -> None:
        """Put ``item`` in place of whatever the key held (holding the lock)."""
        space.place(raw_key, item.current)
        if item.history:
            # No maxlen: kept as given; the key's next write trims it (_commit).
            self._history[(keyspace, raw_key)] = deque(reversed(item.history))
        else:
            self._history.pop((keyspace, raw_key), None)

    def acquire_lease(self, name: str, holder: str, ttl_ns: int, now: int) -> Lease:
        with self._lock:
            lease = self._leases[name] = plan_acquire(
                self._leases.get(name), name, holder, ttl_ns, now
            )
            return lease

    def renew_lease(self, name: str, holder: str, token: int, ttl_ns: int, now: int) -> Lease:
        with self._lock:
            lease = plan_renew(self._leases.get(name), name, holder, token, ttl_ns, now)
            self._leases[name] = lease
            return lease

    def release_lease(self, name: str, holder: str, token: int, now: int) -> bool:
        with self._lock:
            ended = plan_release(self._leases.get(name), name, holder, token, now)
            if ended is not None:
                self._leases[name] = ended
            return ended is not None

    def get_lease(self, name: str, now: int) -> Lease | None:
        with self._lock:
            return self._leases.get(name)

    def list_leases(self, now: int, after: str | None, limit: int) -> list[Lease]:
        with self._lock:
            leases = list(self._leases.values())
        return live_leases(leases, now, after, limit)

    def change_token(self, keyspace: Keyspace) -> int:
        with self._lock:
            return self._changes

    def wait_for_change(self, keyspace: Keyspace, token: int, timeout: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self._changes != token, timeout=max(timeout, 0.0))
            return self._changes

    def purge_expired(self, now: int, limit: int = 1000) -> int:
        purged = 0
        with self._lock:
            for space in self._spaces.values():
                for raw_key, entry in list(space.entries.items()):
                    if purged >= limit:
                        return purged
                    if not entry.is_live(now):
                        del space.entries[raw_key]
                        space.sorted_keys.pop(bisect.bisect_left(space.sorted_keys, raw_key))
                        purged += 1
        return purged

    def list_keyspaces(
        self, scope: str | None, *, after: Keyspace | None, limit: int, now: int
    ) -> list[KeyspaceInfo]:
        floor = keyspace_sort_key(after) if after is not None else None
        out: list[KeyspaceInfo] = []
        with self._lock:
            for keyspace in sorted(self._spaces, key=keyspace_sort_key):
                if scope is not None and keyspace.scope != scope:
                    continue
                if floor is not None and keyspace_sort_key(keyspace) <= floor:
                    continue
                live = [e for e in self._spaces[keyspace].entries.values() if e.is_live(now)]
                if live:
                    newest = max(e.updated_at for e in live)
                    out.append(KeyspaceInfo(keyspace.scope, keyspace.namespace, len(live), newest))
                    if limit and len(out) >= limit:
                        break
        return out

    def delete_keyspace(self, keyspace: Keyspace, ctx: WriteContext) -> int:
        with self._lock:  # re-entrant: the listing and the batch are one atomic step
            deleted = super().delete_keyspace(keyspace, ctx)
            space = self._spaces.pop(keyspace, None)  # expired entries go too
            if space is not None and space.entries:
                self._changes += 1
                self._changed.notify_all()
            return deleted

    def reset(self) -> MemoryBackend:
        """Test mode: an empty store in place of this one."""
        return MemoryBackend(self.url)

    def close(self) -> None:
        return None
