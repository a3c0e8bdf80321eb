"""The engine: the operations of SPEC §4 and §5 over any backend, for every face.

:class:`StateStore` resolves addresses, normalizes values, applies the version rules
through the backend contract, and builds the result objects. The CLI, the server and the
runner call these methods and nothing below them. The logic of SPEC §5 that needs no
storage lives in its own modules — :mod:`statebox.transforms` (update),
:mod:`statebox.transactions`, :mod:`statebox.core.leases`, :mod:`statebox.watch` — so the
methods here stay thin. The operations beyond the plain reads and writes live in the
mixins :class:`StateStore` inherits: :mod:`statebox.store_writes` (update, rollback),
:mod:`statebox.store_across` (transactions), :mod:`statebox.store_history` (history) and
:mod:`statebox.store_beyond` (leases, watch, keyspaces, expiry).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from .backends import Backend, open_backend
from .backends.base import (
    Applied,
    Entry,
    HistoryRecord,
    Mutation,
    Put,
    WriteContext,
)
from .config import resolve_store_url
from .core.clock import Clock, SystemClock
from .core.errors import (
    BackendUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    quoted,
)
from .core.leases import Fencing
from .core.model import (
    Keyspace,
    RunContext,
    Scope,
    UpdatedBy,
    resolve_keyspace,
    validate_key,
    validate_prefix,
)
from .core.results import (
    DeleteResult,
    DiffResult,
    GetResult,
    ListEntry,
    ListResult,
    SetResult,
    StoredValue,
)
from .core.values import (
    DEFAULT_BINARY_LIMIT,
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_JSON_LIMIT,
    NormalizedValue,
    normalize,
)
from .core.versions import check_guard
from .store_across import TransactionsMixin
from .store_beyond import (
    _PURGE_BATCH,
    BeyondMixin,
    _check_expected,
    _check_limit,
    _duration_ns,
)
from .store_beyond import _check_timeout as _check_timeout  # statebox.aio imports these
from .store_beyond import _follow_batches as _follow_batches  # ... from here
from .store_history import HistoryMixin
from .store_writes import MISSING, WritesMixin, _stored, _written

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported where used: the CLI's `get` must not pay for them
    from typing import Any, Final

    from .core.secrecy import SecretPolicy

# DEFAULT_HISTORY_LIMIT lives in .values; still importable from here, as before.
__all__ = ["DEFAULT_HISTORY_LIMIT", "MISSING", "StateStore", "open_store"]

#: ``update`` re-reads and retries this many times at most when another writer wins:
#: with the backoff in :mod:`statebox.store_writes`, about 25 s of trying before a
#: ConflictError.
DEFAULT_UPDATE_ATTEMPTS: Final = 1000
#: Every this many writes through one store, expired entries are purged (0 = never).
DEFAULT_PURGE_EVERY: Final = 256


class StateStore(WritesMixin, TransactionsMixin, HistoryMixin, BeyondMixin):
    """Persistent state over one backend. Thread-safe; close it (or use ``with``).

    The operations beyond the plain reads and writes come from the mixins (update and
    rollback, transactions, history; leases, watch, keyspaces and ``purge_expired``).

    ``secret_policy`` says which keyspaces are secret (:mod:`statebox.core.secrecy`):
    the backend's own (a sealed backend's), else the one of the environment. The
    values the results carry from a secret keyspace are marked
    (``StoredValue.secret``): the library gets them as they are, the renderers mask them.
    """

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
        secret_policy: SecretPolicy | None = None,
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
        if secret_policy is None:
            secret_policy = getattr(backend, "secret_policy", None)
        if secret_policy is None:  # a backend that does not seal: the environment's
            from .core.secrecy import default_policy

            secret_policy = default_policy()
        self.secret_policy: SecretPolicy = secret_policy
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
            secret_policy=self.secret_policy,
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
        return now + _duration_ns(ttl, "ttl")

    def _apply(self, ks: Keyspace, mutations: list[Mutation], ctx: WriteContext) -> list[Applied]:
        """``backend.apply``, purging expired entries every ``purge_every`` writes."""
        applied = self.backend.apply(ks, mutations, ctx)
        if self.purge_every and next(self._writes) % self.purge_every == 0:
            self._purge_quietly(ctx.now)
        return applied

    def _apply_batch(
        self, batches: list[tuple[Keyspace, list[Mutation]]], ctx: WriteContext
    ) -> list[list[Applied]]:
        """``backend.apply_batch``, counted as one write towards ``purge_every``."""
        applied = self.backend.apply_batch(batches, ctx)
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
        entry: Entry | HistoryRecord | None = (
            self.backend.get(ks, key, self.clock.now_ns())
            if version is None
            else self._read_version(ks, key, version)  # store_history.py: checks it
        )
        if entry is not None:
            # Positional arguments: keywords make a NamedTuple noticeably slower to build.
            return GetResult(
                ks,
                key,
                True,
                entry.version,
                entry.hash,
                StoredValue(entry.data, entry.content_type, self.secret_policy.is_secret(ks)),
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
        secret = self.secret_policy.is_secret(ks)  # a default is shown as its keyspace's
        return GetResult(ks, key, False, stored=StoredValue(value.data, value.content_type, secret))

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
        ctx = self._write_context()
        put = self._put_mutation(key, value, expected_version, create_only, ttl, fencing, ctx.now)
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
        """Compare ``value`` with the stored one; write it when changed and ``update``."""
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        _check_expected(expected_version)
        normalized = self.normalize(value)
        current = self.backend.get(ks, key, self.clock.now_ns())
        check_guard(key, current, expected_version)
        # By the bytes, not the hashes: a secret entry's hash is keyed (an HMAC), never
        # the plain SHA-256 of the value that ``normalized`` has. Equal bytes are what
        # equal plain hashes meant (the hash covers the bytes only).
        changed = current is None or current.data != normalized.data
        version = current.version if current is not None else 0
        digest = current.hash if current is not None else ""
        if changed and update:
            # Guarded by what we compared against: a concurrent writer makes this conflict.
            put = Put(key, normalized, expected_version=version)
            written = self._apply(ks, [put], self._write_context())[0].current
            assert written is not None
            version, digest = written.version, written.hash
        secret = self.secret_policy.is_secret(ks)
        return DiffResult(
            ks,
            key,
            changed=changed,
            found_previous=current is not None,
            previous_version=current.version if current is not None else 0,
            version=version,
            hash=digest,
            previous=_stored(current, secret) if current is not None else None,
            current=StoredValue(normalized.data, normalized.content_type, secret),
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
        ctx = self._write_context()
        delete = self._delete_mutation(key, expected_version, fencing)
        applied = self._apply(ks, [delete], ctx)
        return DeleteResult(ks, delete.key, applied[0].previous is not None)

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
        secret = include_values and self.secret_policy.is_secret(ks)
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
                    _stored(e, secret) if include_values else None,
                    e.expires_at,
                )
                for e in entries
            ],
        )


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
