"""``file:///dir`` — Dagu's on-disk state directory, safe for concurrent local processes.

A JSON entry is exactly a Dagu record (``_codec``); everything else statebox keeps lives
under ``<dir>/statebox/`` (``_layout``). How a write stays safe:

* it holds the ``flock`` buckets of every key (and lease) it touches, in ascending order;
* it reads the current entries and plans the whole batch — of one keyspace, or of several
  (``apply_batch``) — with :mod:`statebox.core.versions` before changing any file, so a
  conflict leaves everything untouched (``_batch``);
* a batch that changes one record file commits by that file's atomic rename; one that
  changes several writes a journal first, rolled forward by whoever next touches those
  keys if its writer dies (``_writes``, ``_journal``).

Reads take no lock; they first finish (or wait for) any journal covering what they read.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar, cast

from ...core.errors import (
    BackendUnavailableError,
    CorruptEntryError,
    InvalidReferenceError,
    StateboxError,
)
from ...core.model import Keyspace
from ...core.values import JSON_CONTENT_TYPE
from ...core.versions import plan_acquire, plan_release, plan_renew
from ..base import (
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
)
from ._batch import Batches, plan_batches, targets
from ._dagulock import DaguLocks
from ._fsio import Syncs, make_dirs, read_file, remove_file, replace_file
from ._journal import (
    Op,
    buckets_of,
    finish,
    pending,
    read_journal,
    record_ids,
    run_ops,
    write_journal,
)
from ._keyspaces import keyspaces_in
from ._layout import KeyPaths, Layout, parse_file_url
from ._locks import BucketLocks, ChangeCounter
from ._reads import kept_history, key_from_name, listdir, load, meta_keys, names_in_range
from ._sidecodec import MAX_META_BYTES, decode_lease, decode_meta, encode_lease
from ._sweep import sweep_temp_files
from ._writes import FilePlan

__all__ = ["FileBackend"]

F = TypeVar("F", bound=Callable[..., Any])
_LEASE_SUFFIX = ".lease"  # a lease file: hex(UTF-8 name) + this (_layout.lease_path)


def _translating(method: F) -> F:
    """Driver errors (``OSError``) leave the backend as BackendUnavailableError."""

    @functools.wraps(method)
    def wrapper(self: FileBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StateboxError:
            raise
        except OSError as exc:
            raise BackendUnavailableError(f"file store {self.root}: {exc}") from exc

    return cast(F, wrapper)


class FileBackend(Backend):
    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=True,
        cross_machine=False,
        store_wide_changes=True,  # one change counter for the store
    )

    def __init__(self, url: str) -> None:
        self.url = url
        options = parse_file_url(url)
        self._durable = options.fsync
        try:
            # The root may be reached through symlinks the operator made; everything
            # below it is walked without following any (_dirs), from its real path.
            os.makedirs(options.root, mode=0o750, exist_ok=True)
            self.root = os.path.realpath(options.root)
            name_max = int(os.pathconf(self.root, "PC_NAME_MAX"))
        except OSError as exc:
            raise BackendUnavailableError(f"cannot open the file store {self.root}: {exc}") from exc
        self._layout = Layout(self.root, name_max)
        self._locks = BucketLocks(self._layout.lock_path, self._layout.locks_dir, options.timeout)
        self._counter = ChangeCounter(self._layout.changes, options.timeout)
        self._dagu = DaguLocks(self.root, options.timeout, self._durable)
        self._open()

    @_translating
    def _open(self) -> None:
        for directory in (self._layout.locks_dir, self._layout.journal_dir):
            make_dirs(directory, self._durable)
        self._settle(None)  # roll forward what a crashed writer left
        sweep_temp_files(self.root, os.path.join(self._layout.side, "swept"))

    # -- reading ---------------------------------------------------------------------------

    @_translating
    def get(self, keyspace: Keyspace, key: str, now: int) -> Entry | None:
        paths = self._layout.key_paths(keyspace, key)
        self._settle_key(paths)
        entry = load(paths, key).entry
        return entry if entry is not None and entry.is_live(now) else None

    @_translating
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
        dirs = self._layout.keyspace_dirs(keyspace)
        low, floor = prefix.encode().hex(), after.encode().hex() if after is not None else ""
        deadline = self._locks.deadline()
        while True:
            self._settle(None)
            journaled = self._counter.read()[1]
            names = names_in_range(dirs, low, floor, first=limit + 8 if limit else 0)
            entries = self._read_listed(keyspace, names, limit, include_values, now)
            # A transaction that ran during the listing may be half in it: list again.
            if self._counter.read()[1] == journaled and not pending(self._layout.journal_dir):
                return entries
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"file store {self.root}: transactions kept changing the store while "
                    "the keyspace was being listed; retry"
                )

    def _read_listed(
        self, keyspace: Keyspace, names: Iterable[str], limit: int, include_values: bool, now: int
    ) -> list[Entry]:
        """Read the listed names in order until ``limit`` live entries: only those."""
        out: list[Entry] = []
        for name in names:
            key = key_from_name(name)
            if key is None:
                continue  # not a file statebox or Dagu would name so
            entry = load(self._layout.key_paths(keyspace, key), key).entry
            if entry is None or not entry.is_live(now):
                continue  # removed since the listing, or expired
            out.append(entry if include_values else _without_data(entry))
            if limit and len(out) >= limit:
                break
        return out

    @_translating
    def history(self, keyspace: Keyspace, key: str, limit: int) -> list[HistoryRecord]:
        paths = self._layout.key_paths(keyspace, key)
        self._settle_key(paths)
        kept = kept_history(paths, key, load(paths, key).entry)
        return kept[:limit] if limit > 0 else kept

    @_translating
    def get_version(self, keyspace: Keyspace, key: str, version: int) -> HistoryRecord | None:
        for record in self.history(keyspace, key, 0):
            if record.version == version and not record.deleted:
                return record
        return None

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self, buckets: set[int], records: Iterable[str] = ()) -> Iterator[None]:
        """Hold ``buckets`` with no unfinished journal covering any of them, and then
        Dagu's own lock of each record id in ``records`` (the records written)."""
        deadline = self._locks.deadline()
        while True:
            self._settle(buckets)
            with self._locks.hold(buckets, deadline):
                names = pending(self._layout.journal_dir)
                if not any(buckets_of(name) & buckets for name in names):
                    with self._dagu.hold(records, deadline):
                        yield
                    return
            # A writer died with a journal on our keys while we waited: finish it first.

    def _settle_key(self, paths: KeyPaths) -> None:
        if pending(self._layout.journal_dir):  # rare: only then hash the key to its bucket
            self._settle({paths.bucket})

    def _settle(self, buckets: set[int] | None) -> None:
        """Wait for (or roll forward) the journals covering ``buckets`` (None: all)."""
        names = pending(self._layout.journal_dir)
        if not names:
            return
        deadline = self._locks.deadline()
        for name in names:
            covered = buckets_of(name)
            if buckets is not None and not covered & buckets:
                continue
            # Once we hold its buckets its writer is gone: finished, or dead.
            with self._locks.hold(covered, deadline):
                path = os.path.join(self._layout.journal_dir, name)
                ops = read_journal(path, self.root)
                if ops is None:
                    continue
                with self._dagu.hold(record_ids(ops, self.root), deadline):
                    run_ops(ops, self._durable)
                self._counter.bump(journaled=True)
                finish(path, self._durable)

    @_translating
    def apply(
        self, keyspace: Keyspace, mutations: Sequence[Mutation], ctx: WriteContext
    ) -> list[Applied]:
        return self._apply_batches([(keyspace, mutations)], ctx)[0]

    @_translating
    def apply_batch(self, batches: Batches, ctx: WriteContext) -> list[list[Applied]]:
        """Several keyspaces under one set of locks and (when more than one record file
        changes) one journal: all-or-nothing, across crashes too."""
        check_batches(batches)
        return self._apply_batches(batches, ctx)

    def _apply_batches(self, batches: Batches, ctx: WriteContext) -> list[list[Applied]]:
        touched = targets(self._layout, batches)
        with self._locked(touched.buckets, touched.records):
            results, files = plan_batches(batches, touched.paths, ctx, self._read_lease)
            syncs = self._commit(touched.buckets, files)
        syncs.flush()  # durable before we return, without holding the lock meanwhile
        return results

    def _commit(self, buckets: set[int], files: FilePlan) -> Syncs:
        """Run the plan; returns the fsyncs still owed once the locks are released."""
        syncs = Syncs()
        if not files.journaled:  # at most one record file: its rename is the commit
            # The meta file must be durable before the record's rename can be.
            run_ops(files.before, self._durable)
            run_ops([*files.primary, *files.after], self._durable, syncs)
            self._counter.bump(journaled=False)
            return syncs
        journal = write_journal(
            self._layout.journal_dir, self.root, buckets, files.ops, self._durable
        )
        run_ops(files.ops, self._durable)
        self._counter.bump(journaled=True)
        finish(journal, self._durable)  # durably gone before the locks are released
        return syncs

    @_translating
    def import_keys(
        self, keyspace: Keyspace, items: Sequence[KeyImport], *, replace: bool, now: int
    ) -> list[str]:
        from ._import import import_keys

        return import_keys(self, keyspace, items, replace=replace, now=now)

    # -- leases ----------------------------------------------------------------------------

    def _read_lease(self, name: str) -> Lease | None:
        path, _ = self._layout.lease_path(name)
        raw = read_file(path)
        return None if raw is None else decode_lease(raw, name, path)

    def _store_lease(self, lease: Lease) -> None:
        replace_file(self._layout.lease_path(lease.name)[0], encode_lease(lease), self._durable)

    @_translating
    def acquire_lease(self, name: str, holder: str, ttl_ns: int, now: int) -> Lease:
        with self._locked({self._layout.lease_path(name)[1]}):
            lease = plan_acquire(self._read_lease(name), name, holder, ttl_ns, now)
            self._store_lease(lease)
            return lease

    @_translating
    def renew_lease(self, name: str, holder: str, token: int, ttl_ns: int, now: int) -> Lease:
        with self._locked({self._layout.lease_path(name)[1]}):
            lease = plan_renew(self._read_lease(name), name, holder, token, ttl_ns, now)
            self._store_lease(lease)
            return lease

    @_translating
    def release_lease(self, name: str, holder: str, token: int, now: int) -> bool:
        with self._locked({self._layout.lease_path(name)[1]}):
            ended = plan_release(self._read_lease(name), name, holder, token, now)
            if ended is not None:
                self._store_lease(ended)
            return ended is not None

    @_translating
    def get_lease(self, name: str, now: int) -> Lease | None:
        return self._read_lease(name)

    @_translating
    def list_leases(self, now: int, after: str | None, limit: int) -> list[Lease]:
        """Reads the lease files named after ``after`` in name order (hex of the UTF-8
        bytes sorts as the bytes do) until ``limit`` live ones are found."""
        names = sorted(
            name
            for file_name in listdir(self._layout.leases_dir)
            if file_name.endswith(_LEASE_SUFFIX)
            and (name := key_from_name(file_name[: -len(_LEASE_SUFFIX)])) is not None
            and (after is None or name > after)
        )
        found: list[Lease] = []
        for name in names:
            lease = self._read_lease(name)
            if lease is not None and lease.is_live(now):
                found.append(lease)
                if limit and len(found) >= limit:
                    break
        return found

    # -- watch and expiry ------------------------------------------------------------------

    @_translating
    def change_token(self, keyspace: Keyspace) -> int:
        return self._counter.read()[0]

    @_translating
    def wait_for_change(self, keyspace: Keyspace, token: int, timeout: float) -> int:
        # Sleeps until the counter file is written (inotify on its directory; a polling
        # fallback elsewhere), then re-reads it: never a read of the entries, and no CPU
        # while idle (backends/_fswait.py).
        from .._fswait import wait_for_token  # only watchers need it

        directory, name = os.path.split(self._layout.changes)
        return wait_for_token(lambda: self._counter.read()[0], token, timeout, directory, (name,))

    @_translating
    def purge_expired(self, now: int, limit: int = 1000) -> int:
        """Remove expired entries (their history stays); walks only keys with a meta file."""
        purged = 0
        for keyspace, key in meta_keys(self._layout.meta_root):
            if purged >= limit:
                break
            try:
                paths = self._layout.key_paths(keyspace, key)
            except InvalidReferenceError:
                continue  # not a name statebox wrote
            try:
                if not self._may_have_expired(paths, now):
                    continue  # one unlocked read of a small file; most keys stop here
                purged += self._purge_one(paths, key, now)
            except CorruptEntryError:
                continue  # a planted file: reported by every read of it; never touched here
        return purged

    def _purge_one(self, paths: KeyPaths, key: str, now: int) -> bool:
        syncs: Syncs | None = None
        with self._locked({paths.bucket}, [paths.record_id] if paths.dagu else []):
            loaded = load(paths, key, for_write=True)
            entry = loaded.entry
            if entry is not None and not entry.is_live(now):
                is_json = entry.content_type == JSON_CONTENT_TYPE
                files = FilePlan(
                    primary=[Op("remove", paths.record if is_json else paths.blob)],
                    after=[Op("remove", paths.meta)],
                )
                syncs = self._commit({paths.bucket}, files)
            elif loaded.meta is None:  # describes no version that is current
                remove_file(paths.meta, durable=False)
        if syncs is None:
            return False
        syncs.flush()  # as in apply: durable, without holding the lock meanwhile
        return True

    @staticmethod
    def _may_have_expired(paths: KeyPaths, now: int) -> bool:
        raw = read_file(paths.meta, MAX_META_BYTES)
        if raw is None:
            return False
        try:
            metas = decode_meta(raw, paths.meta)
        except CorruptEntryError:
            return True  # let the locked read report it (and leave it)
        return any(m.expires_at is not None and m.expires_at <= now for m in metas)

    @_translating
    def list_keyspaces(
        self, scope: str | None, *, after: Keyspace | None, limit: int, now: int
    ) -> list[KeyspaceInfo]:
        """One directory walk, then one listing per keyspace: O(entries) (a file store
        keeps no counts)."""
        roots = (*self._layout.record_roots, os.path.join(self._layout.side, "blobs"))
        floor = keyspace_sort_key(after) if after is not None else None
        out: list[KeyspaceInfo] = []
        for keyspace in keyspaces_in(roots, scope):
            if floor is not None and keyspace_sort_key(keyspace) <= floor:
                continue
            live = self.scan(keyspace, "", after=None, limit=0, include_values=False, now=now)
            if live:
                newest = max(e.updated_at for e in live)
                out.append(KeyspaceInfo(keyspace.scope, keyspace.namespace, len(live), newest))
                if limit and len(out) >= limit:
                    break
        return out

    def close(self) -> None:
        self._counter.close()


def _without_data(entry: Entry) -> Entry:
    return Entry(
        entry.key,
        entry.version,
        entry.hash,
        b"",
        entry.content_type,
        entry.created_at,
        entry.updated_at,
        entry.updated_by,
        entry.expires_at,
    )
