"""The engine: the operations of SPEC §4 and §5 over any backend, for every face.

:class:`StateStore` resolves addresses, normalizes values, applies the version rules
through the backend contract, and builds the result objects. The CLI, the server and the
runner call these methods and nothing below them. The logic of SPEC §5 that needs no
storage lives in its own modules — :mod:`statebox.transforms` (update),
:mod:`statebox.transactions`, :mod:`statebox.leases`, :mod:`statebox.watch` — so the
methods here stay thin.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._plan import check_guard
from .backends import Backend, open_backend
from .backends.base import (
    Applied,
    Delete,
    Entry,
    HistoryRecord,
    Lease,
    Mutation,
    Put,
    WriteContext,
)
from .clock import Clock, SystemClock
from .config import resolve_store_url
from .errors import (
    BackendUnavailableError,
    ConflictError,
    FencingError,
    InvalidReferenceError,
    InvalidValueError,
    NotFoundError,
    PermissionDeniedError,
    quoted,
)
from .leases import (
    Fencing,
    as_fence,
    default_holder,
    duration_ns,
    validate_lease_holder,
    validate_lease_name,
)
from .model import (
    Keyspace,
    RunContext,
    Scope,
    UpdatedBy,
    parse_keyspace_cursor,
    resolve_keyspace,
    validate_key,
    validate_prefix,
)
from .results import (
    DeleteResult,
    DiffResult,
    GetResult,
    HistoryItem,
    HistoryResult,
    KeyspaceDeleteResult,
    KeyspacesResult,
    LeaseResult,
    ListEntry,
    ListResult,
    SetResult,
    StoredValue,
    TransactionResult,
    WatchEvent,
    WatchResult,
)
from .values import (
    DEFAULT_BINARY_LIMIT,
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_JSON_LIMIT,
    JSON_CONTENT_TYPE,
    NormalizedValue,
    RawJSON,
    normalize,
)

if TYPE_CHECKING:  # imported where used: the CLI's `get` must not pay for them
    from .transactions import DeleteOp, SetOp
    from .watch import Watcher

# DEFAULT_HISTORY_LIMIT lives in .values; still importable from here, as before.
__all__ = ["DEFAULT_HISTORY_LIMIT", "MISSING", "StateStore", "open_store"]


class _Missing(enum.Enum):
    """Sentinel: "no default given" — distinct from a default of JSON ``null``."""

    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING
#: ``update`` re-reads and retries this many times at most when another writer wins:
#: with the backoff below, that is about 25 s of trying before a ConflictError.
DEFAULT_UPDATE_ATTEMPTS: Final = 1000
#: Every this many writes through one store, expired entries are purged (0 = never).
DEFAULT_PURGE_EVERY: Final = 256
_PURGE_BATCH: Final = 1000
# update's backoff between attempts (seconds): full jitter up to base * 2**attempt, capped.
_BACKOFF_BASE = 0.001
_BACKOFF_CAP = 0.05


def _stored(entry: Entry | HistoryRecord) -> StoredValue:
    return StoredValue(entry.data, entry.content_type)


def _written(
    ks: Keyspace, new: Entry, operation: str = "set", *, reported: bool = False, retries: int = 0
) -> SetResult:
    """The result of a write that left ``new``; ``reported`` adds the value written."""
    stored = _stored(new) if reported else None
    return SetResult(
        ks, new.key, new.version, new.hash, new.version == 1, stored, operation, retries
    )


class StateStore:
    """Persistent state over one backend. Thread-safe; close it (or use ``with``)."""

    def __init__(
        self,
        backend: Backend,
        *,
        context: RunContext | None = None,
        clock: Clock | None = None,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        json_limit: int = DEFAULT_JSON_LIMIT,
        binary_limit: int = DEFAULT_BINARY_LIMIT,
        jq_timeout: float | None = None,
        update_attempts: int = DEFAULT_UPDATE_ATTEMPTS,
        purge_every: int = DEFAULT_PURGE_EVERY,
    ) -> None:
        if history_limit < 0:
            raise ValueError("history_limit must be >= 0")
        if update_attempts < 1 or purge_every < 0 or not (jq_timeout is None or jq_timeout > 0):
            raise ValueError("update_attempts must be >= 1, purge_every >= 0, jq_timeout > 0")
        self.backend = backend
        self.context = context if context is not None else RunContext.from_env()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.history_limit = history_limit
        self.json_limit = json_limit
        self.binary_limit = binary_limit
        self.jq_timeout = jq_timeout
        self.update_attempts = update_attempts
        self.purge_every = purge_every
        self._writes = itertools.count(1)
        self._keyspaces: dict[tuple[str | Scope | None, str | None], Keyspace] = {}
        # (context, context.updated_by()): built once, as a RunContext never changes.
        self._writer: tuple[RunContext, UpdatedBy] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def with_context(self, context: RunContext) -> StateStore:
        """The same store (same backend) acting for another run context."""
        return StateStore(
            self.backend,
            context=context,
            clock=self.clock,
            history_limit=self.history_limit,
            json_limit=self.json_limit,
            binary_limit=self.binary_limit,
            jq_timeout=self.jq_timeout,
            update_attempts=self.update_attempts,
            purge_every=self.purge_every,
        )

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers shared by the operations ---------------------------------------------

    def keyspace(self, scope: str | Scope | None = None, namespace: str | None = None) -> Keyspace:
        """The resolved ``(scope, namespace)``; cached, as the context never changes."""
        cache_key = (scope, namespace)
        keyspace = self._keyspaces.get(cache_key)
        if keyspace is None:
            keyspace = resolve_keyspace(scope, namespace, self.context)
            if len(self._keyspaces) < 1024:
                self._keyspaces[cache_key] = keyspace
        return keyspace

    def normalize(self, value: Any) -> NormalizedValue:
        """Normalize a value with this store's limits (JSON or :class:`Blob`)."""
        return normalize(value, limit=self.json_limit, binary_limit=self.binary_limit)

    def _write_context(self) -> WriteContext:
        # (now, updated_by, history_limit), positional: built on every write.
        writer = self._writer
        if writer is None or writer[0] is not self.context:  # the attribute is public
            writer = self._writer = (self.context, self.context.updated_by())
        return WriteContext(self.clock.now_ns(), writer[1], self.history_limit)

    def _expires_at(self, ttl: float | None, now: int) -> int | None:
        if ttl is None:
            return None
        return now + duration_ns(ttl, "ttl")

    def _apply(self, ks: Keyspace, mutations: list[Mutation], ctx: WriteContext) -> list[Applied]:
        """``backend.apply``, purging expired entries every ``purge_every`` writes."""
        applied = self.backend.apply(ks, mutations, ctx)
        if self.purge_every and next(self._writes) % self.purge_every == 0:
            self._purge_quietly(ctx.now)
        return applied

    def _purge_quietly(self, now: int) -> None:
        # Opportunistic: the write already succeeded, so a busy database only delays
        # the purge (expired entries are invisible meanwhile anyway), and a remote store
        # whose token may not purge the whole store leaves it to the server's own purges.
        try:
            self.backend.purge_expired(now, _PURGE_BATCH)
        except (BackendUnavailableError, PermissionDeniedError) as exc:
            import logging  # rare; not worth its import time at every CLI start

            logging.getLogger("statebox").warning("purging expired entries was skipped: %s", exc)

    # -- the five operations -----------------------------------------------------------

    def get(
        self,
        key: str,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        default: Any = MISSING,
        required: bool = False,
        version: int | None = None,
    ) -> GetResult:
        """Read one entry (or one past ``version`` of it, SPEC §5 history)."""
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        entry: Entry | HistoryRecord | None = self.backend.get(ks, key, self.clock.now_ns())
        if version is not None and (entry is None or entry.version != version):
            entry = self.backend.get_version(ks, key, version)
        if entry is not None:
            # Positional arguments: keywords make a NamedTuple noticeably slower to build.
            return GetResult(
                ks,
                key,
                True,
                entry.version,
                entry.hash,
                StoredValue(entry.data, entry.content_type),
                entry.created_at,
                entry.updated_at,
                entry.updated_by,
                entry.expires_at if isinstance(entry, Entry) else None,
            )
        if required:
            what = f"version {version} of key" if version is not None else "key"
            raise NotFoundError(
                f"{what} {quoted(key)} not found in scope {quoted(ks.scope)}, namespace "
                f"{quoted(ks.namespace)}"
            )
        if default is MISSING:
            return GetResult(ks, key, False)
        value = self.normalize(default)
        return GetResult(ks, key, False, stored=StoredValue(value.data, value.content_type))

    def set(
        self,
        key: str,
        value: Any,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        expected_version: int | None = None,
        create_only: bool = False,
        ttl: float | None = None,
        fencing: Fencing | None = None,
    ) -> SetResult:
        """Write one entry; ``value`` is Python JSON data, :class:`RawJSON` or :class:`Blob`.

        ``ttl`` (seconds) makes it expire; without it the entry never expires (a ``ttl``
        it had is dropped, as Redis ``SET`` does). ``fencing`` (a lease or
        ``(lease_name, token)``) refuses the write once a newer lease holder exists.
        """
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        normalized = self.normalize(value)
        ctx = self._write_context()
        expires_at = self._expires_at(ttl, ctx.now)
        put = Put(key, normalized, expected_version, create_only, expires_at, as_fence(fencing))
        new = self._apply(ks, [put], ctx)[0].current
        assert new is not None
        return _written(ks, new)

    def diff(
        self,
        key: str,
        value: Any,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        update: bool = True,
        expected_version: int | None = None,
    ) -> DiffResult:
        """Compare ``value`` with the stored one by hash; write it when changed and ``update``."""
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        normalized = self.normalize(value)
        current = self.backend.get(ks, key, self.clock.now_ns())
        check_guard(key, current, expected_version)
        changed = current is None or current.hash != normalized.hash
        version = current.version if current is not None else 0
        digest = current.hash if current is not None else ""
        if changed and update:
            # Guarded by what we compared against: a concurrent writer makes this conflict.
            put = Put(key, normalized, expected_version=version)
            written = self._apply(ks, [put], self._write_context())[0].current
            assert written is not None
            version, digest = written.version, written.hash
        return DiffResult(
            ks,
            key,
            changed=changed,
            found_previous=current is not None,
            previous_version=current.version if current is not None else 0,
            version=version,
            hash=digest,
            previous=_stored(current) if current is not None else None,
            current=StoredValue(normalized.data, normalized.content_type),
        )

    def delete(
        self,
        key: str,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        expected_version: int | None = None,
        fencing: Fencing | None = None,
    ) -> DeleteResult:
        """Delete one entry; deleting a missing key is not an error (``deleted: false``)."""
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        delete = Delete(key, expected_version, as_fence(fencing))
        applied = self._apply(ks, [delete], self._write_context())
        return DeleteResult(ks, key, applied[0].previous is not None)

    def list(
        self,
        prefix: str | None = None,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        limit: int = 0,
        include_values: bool = False,
        after: str | None = None,
    ) -> ListResult:
        """Entries whose key starts with ``prefix`` (bytes), ascending; page with ``after``."""
        ks = self.keyspace(scope, namespace)
        prefix = validate_prefix(prefix)
        _check_limit(limit)
        after = validate_key(after) if after is not None else None
        entries = self.backend.scan(
            ks,
            prefix,
            after=after,
            limit=limit,
            include_values=include_values,
            now=self.clock.now_ns(),
        )
        return ListResult(
            ks,
            prefix,
            [
                ListEntry(
                    ks,
                    e.key,
                    e.version,
                    e.hash,
                    e.created_at,
                    e.updated_at,
                    _stored(e) if include_values else None,
                    e.expires_at,
                )
                for e in entries
            ],
        )

    # -- history (SPEC §5) -------------------------------------------------------------

    def history(
        self,
        key: str,
        *,
        scope: str | Scope | None = None,
        namespace: str | None = None,
        limit: int = 0,
        include_values: bool = False,
    ) -> HistoryResult:
        """Kept versions of a key, newest first, deletions included."""
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        _check_limit(limit)
        records = self.backend.history(ks, key, limit)
        expires_at = self._current_expiry(ks, key, records)
        return HistoryResult(
            ks,
            key,
            [
                HistoryItem(
                    r.version,
                    r.hash,
                    r.deleted,
                    r.created_at,
                    r.updated_at,
                    r.updated_by,
                    _stored(r) if include_values and not r.deleted else None,
                    expires_at if i == 0 else None,
                )
                for i, r in enumerate(records)
            ],
        )

    def _current_expiry(
        self, ks: Keyspace, key: str, records: Sequence[HistoryRecord]
    ) -> int | None:
        """The TTL of the newest record when it is the live entry's version (history
        records do not keep it; older versions no longer expire)."""
        if not records or records[0].deleted:
            return None
        current = self.backend.get(ks, key, self.clock.now_ns())
        if current is None or current.version != records[0].version:
            return None
        return current.expires_at

    # -- update (SPEC §5) --------------------------------------------------------------

    def _json_text(self, value: Any, what: str) -> str:
        normalized = self.normalize(value)
        if not normalized.is_json:
            raise InvalidValueError(f"invalid {what}: must be JSON, not binary data")
        return normalized.data.decode("utf-8")

    def update(
        self,
        key: str,
        *,
        jq: str | None = None,
        merge: Any = MISSING,
        patch: Any = MISSING,
        default: Any = MISSING,
        ttl: float | None = None,
        expected_version: int | None = None,
        fencing: Fencing | None = None,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> SetResult:
        """Transform the stored value atomically: read, apply, write guarded by the
        version read, and on a conflict re-read and retry (at most ``update_attempts``
        times, with a short jittered backoff), so concurrent updates are never lost.

        Exactly one of ``jq`` (an expression yielding one value), ``merge`` (an RFC 7386
        merge patch) or ``patch`` (an RFC 6902 JSON patch, a list of operations) is
        given; ``merge``/``patch`` are Python data or :class:`RawJSON`. A missing key
        starts from ``default`` (else ``null``). ``ttl`` sets a new expiry; without it
        the entry keeps the one it had (as Redis ``INCR`` does). With
        ``expected_version`` there is no retry: the guard is the caller's.
        ``result.retries`` says how many retries it took.
        """
        # jq and jsonpatch load for update only (CLI start-up speed)
        from .transforms import DEFAULT_JQ_TIMEOUT, make_transform

        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        transform = make_transform(
            jq=jq,
            merge_text=None if merge is MISSING else self._json_text(merge, "merge patch"),
            patch_text=None if patch is MISSING else self._json_text(patch, "JSON patch"),
            jq_timeout=self.jq_timeout if self.jq_timeout is not None else DEFAULT_JQ_TIMEOUT,
            limit=self.json_limit,
        )
        start = "null" if default is MISSING else self._json_text(default, "default")
        fence = as_fence(fencing)
        conflict: ConflictError | None = None
        for attempt in range(self.update_attempts):
            if attempt:
                import random  # only under contention

                # Full jitter, growing: the writers that collided spread out.
                time.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))
            ctx = self._write_context()
            current = self.backend.get(ks, key, ctx.now)
            if expected_version is not None:
                check_guard(key, current, expected_version)
            if current is not None and current.content_type != JSON_CONTENT_TYPE:
                raise InvalidValueError(
                    f"cannot update key {quoted(key)}: it holds binary data "
                    f"({current.content_type}); transforms apply to JSON values"
                )
            before = current.data.decode("utf-8") if current is not None else start
            value = self.normalize(RawJSON(transform.apply(before)))
            expires_at = (
                self._expires_at(ttl, ctx.now)
                if ttl is not None
                else (current.expires_at if current is not None else None)
            )
            version = current.version if current is not None else 0
            put = Put(key, value, version, expires_at=expires_at, fence=fence)
            try:
                new = self._apply(ks, [put], ctx)[0].current
            except FencingError:
                raise
            except ConflictError as exc:
                if expected_version is not None:
                    raise
                conflict = exc
                continue
            assert new is not None
            return _written(ks, new, "update", reported=True, retries=attempt)
        assert conflict is not None
        raise ConflictError(
            f"update of key {quoted(key)} gave up after {self.update_attempts} attempts: other "
            f"writers kept changing it (last: {conflict.message})",
            current_version=conflict.current_version,
        ) from conflict

    def rollback(
        self,
        key: str,
        to_version: int,
        *,
        expected_version: int | None = None,
        fencing: Fencing | None = None,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> SetResult:
        """Write the value of a kept past version back as a new version.

        Guarded by the current version (``expected_version``, else the version found
        when the rollback starts): a concurrent write makes it conflict rather than be
        overwritten. The entry keeps its expiry, as with ``update``.
        """
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        if not isinstance(to_version, int) or isinstance(to_version, bool) or to_version < 1:
            raise InvalidValueError(
                f"invalid version {quoted(to_version)}: must be an integer of 1 or more",
                param="to_version",
            )
        ctx = self._write_context()
        current = self.backend.get(ks, key, ctx.now)
        old: Entry | HistoryRecord | None = self.backend.get_version(ks, key, to_version)
        if old is None and current is not None and current.version == to_version:
            old = current  # history is off, but the version asked for is the current one
        if old is None:
            raise NotFoundError(
                f"version {to_version} of key {quoted(key)} is not in its history (scope "
                f"{quoted(ks.scope)}, namespace {quoted(ks.namespace)}; the store keeps the last "
                f"{self.history_limit} versions)"
            )
        guard = expected_version
        if guard is None:
            guard = current.version if current is not None else 0
        value = NormalizedValue(old.data, old.content_type, old.hash)
        expires_at = current.expires_at if current is not None else None
        put = Put(key, value, guard, expires_at=expires_at, fence=as_fence(fencing))
        new = self._apply(ks, [put], ctx)[0].current
        assert new is not None
        return _written(ks, new, "rollback", reported=True)

    # -- transactions (SPEC §5) --------------------------------------------------------

    def transaction(
        self,
        operations: Iterable[SetOp | DeleteOp | Mapping[str, Any]],
        *,
        fencing: Fencing | None = None,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> TransactionResult:
        """Apply set/delete operations on one scope+namespace, all or nothing.

        Each operation has its own ``expected_version`` / ``create_only`` (and ``ttl``
        for a set); ``fencing`` applies to every operation that has none of its own. On
        a failed guard nothing is written and the :class:`ConflictError` carries the
        failing operation's ``index`` and names it.
        """
        ks = self.keyspace(scope, namespace)
        from .transactions import parse_operation

        ops = [parse_operation(raw, i) for i, raw in enumerate(operations)]
        ctx = self._write_context()
        mutations = [self._mutation(op, i, ctx.now, fencing) for i, op in enumerate(ops)]
        if not mutations:
            return TransactionResult(ks, [])
        try:
            applied = self._apply(ks, mutations, ctx)
        except ConflictError as exc:
            failed = mutations[exc.index]
            kind = "set" if isinstance(failed, Put) else "delete"
            raise type(exc)(
                f"transaction operation {exc.index} ({kind} {quoted(failed.key)}) failed, nothing "
                f"was written: {exc.message}",
                index=exc.index,
                current_version=exc.current_version,
            ) from exc
        results: list[SetResult | DeleteResult] = []
        for mutation, outcome in zip(mutations, applied, strict=True):
            if outcome.current is None:
                results.append(DeleteResult(ks, mutation.key, outcome.previous is not None))
            else:
                new = outcome.current
                results.append(_written(ks, new))
        return TransactionResult(ks, results)

    def _mutation(
        self, op: SetOp | DeleteOp, index: int, now: int, fencing: Fencing | None
    ) -> Mutation:
        from .transactions import DeleteOp, SetOp

        kind = "set" if isinstance(op, SetOp) else "delete"
        try:
            key = validate_key(op.key)
            fence = as_fence(op.fencing if op.fencing is not None else fencing)
            if isinstance(op, DeleteOp):
                return Delete(key, op.expected_version, fence)
            value = self.normalize(op.value)
            expires_at = self._expires_at(op.ttl, now)
            return Put(key, value, op.expected_version, op.create_only, expires_at, fence)
        except (InvalidReferenceError, InvalidValueError) as exc:
            raise type(exc)(
                f"transaction operation {index} ({kind}): {exc.message}", param=exc.params
            ) from exc

    # -- leases (SPEC §5) --------------------------------------------------------------

    def acquire_lease(self, name: str, ttl: float, *, holder: str | None = None) -> LeaseResult:
        """Take the lease ``name`` for ``ttl`` seconds; its token outgrows every earlier
        one. Raises :class:`ConflictError` while another holder's lease is live."""
        name = validate_lease_name(name)
        ttl_ns = duration_ns(ttl, "lease ttl")
        holder = default_holder(self.context) if holder is None else validate_lease_holder(holder)
        lease = self.backend.acquire_lease(name, holder, ttl_ns, self.clock.now_ns())
        return _lease_result("acquire", lease, ttl)

    def renew_lease(
        self,
        lease: LeaseResult | str,
        ttl: float | None = None,
        *,
        token: int | None = None,
        holder: str | None = None,
    ) -> LeaseResult:
        """Extend a live lease (by its original ``ttl`` unless given). Raises
        :class:`FencingError` when it expired or another holder took it."""
        name, token, holder = _lease_identity(lease, token, holder)
        if ttl is None:
            ttl = lease.ttl if isinstance(lease, LeaseResult) and lease.ttl else None
        if ttl is None:
            raise InvalidValueError("renewing a lease needs a ttl (seconds)", param="ttl")
        ttl_ns = duration_ns(ttl, "lease ttl")
        renewed = self.backend.renew_lease(name, holder, token, ttl_ns, self.clock.now_ns())
        return _lease_result("renew", renewed, ttl)

    def release_lease(
        self, lease: LeaseResult | str, *, token: int | None = None, holder: str | None = None
    ) -> LeaseResult:
        """End a lease early so another holder can acquire it at once (its token stays
        used). ``released`` is False when it was no longer ours."""
        name, token, holder = _lease_identity(lease, token, holder)
        now = self.clock.now_ns()
        released = self.backend.release_lease(name, holder, token, now)
        return LeaseResult("release", name, holder, token, now, released=released)

    def get_lease(self, name: str) -> LeaseResult | None:
        """The latest lease on ``name`` (perhaps expired), or None when never acquired."""
        lease = self.backend.get_lease(validate_lease_name(name), self.clock.now_ns())
        return None if lease is None else _lease_result("get", lease, 0.0)

    # -- watch (SPEC §5) ---------------------------------------------------------------

    def watcher(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        after_version: int | None = None,
        include_values: bool = False,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> Watcher:
        """A :class:`~statebox.watch.Watcher` whose baseline is taken now; its ``poll``
        returns the next changes. See :mod:`statebox.watch` for the exact rules."""
        ks = self.keyspace(scope, namespace)
        if (key is None) == (prefix is None):
            raise InvalidValueError("watch needs exactly one of a key or a prefix")
        if after_version is not None and (
            not isinstance(after_version, int)
            or isinstance(after_version, bool)
            or after_version < 0
        ):
            raise InvalidValueError(
                f"invalid version to watch after {quoted(after_version)}: must be 0 or more",
                param="after_version",
            )
        from .watch import Watcher

        return Watcher(
            self.backend,
            ks,
            self.clock,
            key=validate_key(key) if key is not None else None,
            prefix=validate_prefix(prefix) if prefix is not None else None,
            after_version=after_version,
            include_values=include_values,
        )

    def watch(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        after_version: int | None = None,
        timeout: float | None = 30.0,
        include_values: bool = False,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> WatchResult:
        """Block until ``key`` (or any key under ``prefix``) changes past the known
        state, or ``timeout`` seconds pass (then ``result.timed_out``; None: no limit)."""
        if timeout is not None:
            _check_timeout(timeout)
        watcher = self.watcher(
            key,
            prefix=prefix,
            after_version=after_version,
            include_values=include_values,
            scope=scope,
            namespace=namespace,
        )
        events = next(_follow_batches(watcher, timeout), [])
        return WatchResult(watcher.keyspace, watcher.key, watcher.prefix, events)

    def watch_iter(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        after_version: int | None = None,
        timeout: float | None = None,
        include_values: bool = False,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> Iterator[WatchEvent]:
        """Every change, as it happens, until ``timeout`` seconds pass (None: forever).
        The baseline is taken when this is called, not at the first ``next``."""
        if timeout is not None:
            _check_timeout(timeout)
        watcher = self.watcher(
            key,
            prefix=prefix,
            after_version=after_version,
            include_values=include_values,
            scope=scope,
            namespace=namespace,
        )
        return (event for batch in _follow_batches(watcher, timeout) for event in batch)

    # -- keyspaces ----------------------------------------------------------------------

    def keyspaces(
        self, scope: str | Scope | None = None, *, after: str | None = None, limit: int = 0
    ) -> KeyspacesResult:
        """The keyspaces holding live entries (in ``scope`` when given), ascending by
        ``(scope, namespace)`` bytes, each with its number of live entries and its last
        update. Page with ``limit`` and ``after`` (``"scope/namespace"``: the result's
        ``next``, set when more keyspaces follow)."""
        wanted = Scope.parse(scope).value if scope is not None else None
        _check_limit(limit)
        floor = parse_keyspace_cursor(after) if after is not None else None
        found = self.backend.list_keyspaces(
            wanted, after=floor, limit=limit + 1 if limit else 0, now=self.clock.now_ns()
        )
        if limit and len(found) > limit:
            found = found[:limit]
            return KeyspacesResult(wanted, found, found[-1].keyspace)
        return KeyspacesResult(wanted, found)

    def delete_keyspace(
        self, scope: str | Scope | None = None, namespace: str | None = None
    ) -> KeyspaceDeleteResult:
        """Delete every entry of one keyspace at once; ``deleted`` counts the live ones.
        Each key's history records the deletion, as :meth:`delete` does."""
        ks = self.keyspace(scope, namespace)
        return KeyspaceDeleteResult(ks, self.backend.delete_keyspace(ks, self._write_context()))

    # -- expiry (SPEC §5) --------------------------------------------------------------

    def purge_expired(self, limit: int = _PURGE_BATCH) -> int:
        """Delete up to ``limit`` expired entries now (history is kept); how many.

        Expired entries are invisible anyway; the store also purges a batch every
        ``purge_every`` writes. Call this from a maintenance job to purge more eagerly.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidValueError(
                f"invalid limit {quoted(limit)}: must be an integer of 1 or more", param="limit"
            )
        return self.backend.purge_expired(self.clock.now_ns(), limit)


def _lease_result(action: str, lease: Lease, ttl: float) -> LeaseResult:
    return LeaseResult(action, lease.name, lease.holder, lease.token, lease.expires_at, ttl)


def _lease_identity(
    lease: LeaseResult | str, token: int | None, holder: str | None
) -> tuple[str, int, str]:
    """(name, token, holder) from a lease result, or from a name plus both parts."""
    if isinstance(lease, LeaseResult):
        token = lease.token if token is None else token
        return lease.name, token, validate_lease_holder(holder or lease.holder)
    name = validate_lease_name(lease)
    if token is None or holder is None:
        raise InvalidValueError(
            f"lease {quoted(name)}: give the lease that acquiring it returned, or its token "
            "and holder",
            param=("token", "holder"),
        )
    if not isinstance(token, int) or isinstance(token, bool):
        raise InvalidValueError(
            f"invalid lease token {quoted(token)}: must be an integer", param="token"
        )
    return name, token, validate_lease_holder(holder)


def _check_timeout(timeout: Any) -> None:
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout >= 0:
        raise InvalidValueError(
            f"invalid timeout {quoted(timeout)}: must be a number of seconds, 0 or more",
            param="timeout",
        )


def _check_limit(limit: object) -> None:
    """A ``limit`` of list or history: 0 (no limit) or more."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise InvalidValueError(
            f"invalid limit {quoted(limit)}: must be 0 (no limit) or more", param="limit"
        )


def _follow_batches(watcher: Watcher, timeout: float | None) -> Iterator[list[WatchEvent]]:
    """Each non-empty batch of events until ``timeout`` seconds pass (None: forever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = 3600.0 if deadline is None else deadline - time.monotonic()
        events = watcher.poll(max(remaining, 0.0))
        if events:
            yield events
        elif deadline is not None and time.monotonic() >= deadline:
            return


def open_store(
    url: str | None = None,
    *,
    context: RunContext | None = None,
    clock: Clock | None = None,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> StateStore:
    """Open a store: ``url``, else ``STATEBOX_STORE``, else ``$STATEBOX_HOME/state.db``.

    ``options`` are :class:`StateStore`'s: ``json_limit``, ``binary_limit``,
    ``jq_timeout``, ``update_attempts``, ``purge_every``.
    """
    backend = open_backend(resolve_store_url(url, environ))
    return StateStore(
        backend,
        context=context if context is not None else RunContext.from_env(environ),
        clock=clock,
        history_limit=history_limit,
        **options,
    )
