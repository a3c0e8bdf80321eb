"""Leases, watch, keyspaces and expiry of :class:`~statebox.store.StateStore` (SPEC §5).

These operations work beside the entries rather than on one of them — a lease, a wait
for changes, the list or deletion of whole keyspaces, the purge of expired entries — so
they are kept apart from the reads and writes in :mod:`statebox.store`, which inherits
them from :class:`BeyondMixin` (and history from :mod:`statebox.store_history`). The
argument checks they share with the store (``_check_limit``, ``_check_version``,
``_duration_ns`` …) and the watch loop the async face reuses (``_follow_batches``) live
here too; :mod:`statebox.store` still exports them. Nothing here imports more than
:mod:`statebox.store` already did (the CLI's ``get`` loads it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from .backends.base import Lease, WriteContext
from .core import params
from .core.clock import NS_PER_SECOND, Clock
from .core.errors import InvalidRequestError, InvalidValueError, quoted
from .core.leases import (
    default_holder,
    validate_lease_holder,
    validate_lease_name,
)
from .core.model import (
    Keyspace,
    RunContext,
    Scope,
    parse_keyspace_cursor,
    validate_key,
    validate_namespace,
    validate_prefix,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported where used: the CLI's `get` must not pay for them
    from typing import Any, Final

    from .backends import Backend
    from .core.records import KeyImport
    from .core.results_beyond import (
        KeyspaceDeleteResult,
        KeyspacesResult,
        LeaseResult,
        WatchEvent,
        WatchResult,
    )
    from .core.secrecy import SecretPolicy
    from .watch import Watcher

#: How many expired entries one purge deletes at most.
_PURGE_BATCH: Final = 1000


class BeyondMixin:
    """Leases, watch, keyspaces and expiry of :class:`~statebox.store.StateStore`."""

    backend: Backend
    context: RunContext
    clock: Clock
    secret_policy: SecretPolicy
    json_limit: int
    binary_limit: int

    if TYPE_CHECKING:  # defined by StateStore

        def keyspace(
            self, scope: str | Scope | None = None, namespace: str | None = None
        ) -> Keyspace: ...

        def _write_context(self) -> WriteContext: ...

    # -- leases (SPEC §5) --------------------------------------------------------------

    def acquire_lease(self, name: str, ttl: float, *, holder: str | None = None) -> LeaseResult:
        """Take the lease ``name`` for ``ttl`` seconds; its token outgrows every earlier
        one. Raises :class:`ConflictError` while another holder's lease is live."""
        name = validate_lease_name(name)
        ttl_ns = _duration_ns(ttl, "lease ttl")
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
            ttl = lease.ttl if not isinstance(lease, str) and lease.ttl else None
        if ttl is None:
            raise InvalidValueError("renewing a lease needs a ttl (seconds)", param="ttl")
        ttl_ns = _duration_ns(ttl, "lease ttl")
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
        from .core.results_beyond import LeaseResult

        return LeaseResult("release", name, holder, token, now, released=released)

    def get_lease(self, name: str) -> LeaseResult | None:
        """The latest lease on ``name`` (perhaps expired), or None when never acquired."""
        lease = self.backend.get_lease(validate_lease_name(name), self.clock.now_ns())
        return None if lease is None else _lease_result("get", lease, 0.0)

    def list_leases(self, *, after: str | None = None, limit: int = 0) -> list[LeaseResult]:
        """The live leases (neither expired nor released), ascending by the UTF-8 bytes
        of their names, each as :meth:`get_lease` gives it. Page with ``limit`` (0: all)
        and ``after`` (the last name of the previous page)."""
        _check_limit(limit)
        floor = validate_lease_name(after) if after is not None else None
        leases = self.backend.list_leases(self.clock.now_ns(), floor, limit)
        return [_lease_result("get", lease, 0.0) for lease in leases]

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
        if after_version is not None:
            _library_int(_at_least_0, after_version, "version to watch after", "after_version")
        from .watch import Watcher

        return Watcher(
            self.backend,
            ks,
            self.clock,
            key=validate_key(key) if key is not None else None,
            prefix=validate_prefix(prefix) if prefix is not None else None,
            after_version=after_version,
            include_values=include_values,
            secret=self.secret_policy.is_secret(ks),
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
        from .core.results_beyond import WatchResult

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
        from .core.results_beyond import KeyspacesResult

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
        from .core.results_beyond import KeyspaceDeleteResult

        ks = self.keyspace(scope, namespace)
        return KeyspaceDeleteResult(ks, self.backend.delete_keyspace(ks, self._write_context()))

    # -- import (statebox load and copy) ------------------------------------------------

    def import_keys(
        self, keyspace: Keyspace, items: Sequence[KeyImport], *, replace: bool = False
    ) -> list[str]:
        """Write whole keys as a dump carries them — entry and history, versions,
        timestamps and writers kept — all or nothing, at the clock's now. One outcome
        per item: ``"created"`` (the key had nothing), ``"same"`` (it holds this
        already), ``"conflict"`` (it holds something else: left alone) or, with
        ``replace``, ``"replaced"``. Hashes are recomputed from the values
        (:mod:`statebox.store_import`); a malformed item raises
        :class:`InvalidRequestError` and nothing is written."""
        from .store_import import prepared

        ks = Keyspace(Scope.parse(keyspace.scope).value, validate_namespace(keyspace.namespace))
        ready = prepared(items, json_limit=self.json_limit, binary_limit=self.binary_limit)
        return self.backend.import_keys(ks, ready, replace=replace, now=self.clock.now_ns())

    # -- secret keyspaces ----------------------------------------------------------------

    def declare_secret_keyspace(
        self, scope: str | Scope | None = None, namespace: str | None = None
    ) -> Keyspace:
        """Make one keyspace secret from now on, as ``STATEBOX_SECRET_NAMESPACES`` would
        for this process, but kept in the store: its values are sealed at rest and
        masked in statebox's outputs here and in every other process on the store (the
        sealing layer's registry). Idempotent; returns the keyspace. Entries already
        there in clear stay so until ``statebox secrets rotate`` seals them.

        A store whose backend does not seal (one built on a bare backend), or a remote
        store (its server seals), raises :class:`ConfigurationError`."""
        ks = self.keyspace(scope, namespace)
        self.backend.declare_secret(ks, self._write_context())
        self.secret_policy.learn(ks)  # when the store's policy is not the backend's
        return ks

    # -- expiry (SPEC §5) --------------------------------------------------------------

    def purge_expired(self, limit: int = _PURGE_BATCH) -> int:
        """Delete up to ``limit`` expired entries now (history is kept); how many.

        Expired entries are invisible anyway; the store also purges a batch every
        ``purge_every`` writes. Call this from a maintenance job to purge more eagerly.
        """
        _library_int(_at_least_1, limit, "limit", "limit")
        return self.backend.purge_expired(self.clock.now_ns(), limit)


def _lease_result(action: str, lease: Lease, ttl: float) -> LeaseResult:
    from .core.results_beyond import LeaseResult

    return LeaseResult(action, lease.name, lease.holder, lease.token, lease.expires_at, ttl)


def _lease_identity(
    lease: LeaseResult | str, token: int | None, holder: str | None
) -> tuple[str, int, str]:
    """(name, token, holder) from a lease result, or from a name plus both parts."""
    if not isinstance(lease, str):  # a LeaseResult
        token = lease.token if token is None else token
        return lease.name, token, validate_lease_holder(holder or lease.holder)
    name = validate_lease_name(lease)
    if token is None or holder is None:
        raise InvalidValueError(
            f"lease {quoted(name)}: give the lease that acquiring it returned, or its token "
            "and holder",
            param=("token", "holder"),
        )
    _library_int(params.token, token, "lease token", "token")
    return name, token, validate_lease_holder(holder)


def _check_timeout(timeout: Any) -> None:
    """A library ``timeout`` (float seconds; None, checked by the caller, waits forever)
    by the faces' rule (:func:`params.wait`: 0 or more, finite, up to 100 years)."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise InvalidValueError(
            f"invalid timeout {quoted(timeout)}: must be a number of seconds, 0 or more",
            param="timeout",
        )
    try:
        params.wait(timeout, "timeout")
    except InvalidRequestError as exc:
        raise params.as_value_error(exc, "timeout") from None


def _check_limit(limit: object) -> None:
    """A ``limit`` of list, history or keyspaces: 0 (no limit) or more, in 64 bits."""
    _library_int(params.limit, limit, "limit", "limit")


def _check_version(version: object, what: str = "version", param: str = "version") -> None:
    """A version of a key: 1 or more, in 64 bits (``get(version=)``, ``to_version``)."""
    _library_int(params.version, version, what, param)


def _check_expected(expected_version: object) -> None:
    """An ``expected_version`` (None: no guard) of a library call: an integer. The faces
    refuse one below 0 (:func:`params.expected_version`); the library keeps its meaning
    of one: a version no key is at, so a conflict (``core.versions.check_guard``), as
    the conformance tests pin for every backend."""
    if expected_version is not None:
        _library_int(_any_integer, expected_version, "expected version", "expected_version")


def _library_int(rule: Callable[[object, str], int], raw: object, what: str, param: str) -> int:
    """A library argument checked by the rule every face shares (:mod:`statebox.core.params`):
    the engine's backstop behind each face's own check. An ``int`` only (a face reads text;
    the library takes Python values), refused as the library's kind of error,
    :class:`InvalidValueError` about ``param``, in the engine's words (``what``)."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidValueError(f"invalid {what} {quoted(raw)}: must be an integer", param=param)
    try:
        return rule(raw, what)
    except InvalidRequestError as exc:
        raise params.as_value_error(exc, param) from None


def _any_integer(raw: object, name: str) -> int:
    assert isinstance(raw, int)  # _library_int lets only an int through
    return raw  # no bound: an expected version no key is at is a conflict


def _at_least_0(raw: object, name: str) -> int:
    return params.integer(raw, name, minimum=0)


def _at_least_1(raw: object, name: str) -> int:
    return params.integer(raw, name, minimum=1)


def _duration_ns(seconds: Any, what: str) -> int:
    """A library ``ttl`` (float seconds) as ns, by the faces' rule (:func:`params.ttl`:
    more than 0, finite, up to 100 years) and the engine's arithmetic (``int(t * 1e9)``,
    which the faces' :func:`params.float_seconds` is chosen to give back exactly)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidValueError(
            f"invalid {what} {quoted(seconds)}: must be a positive number of seconds",
            param="ttl",
        )
    try:
        params.ttl(seconds, what)
    except InvalidRequestError as exc:
        raise params.as_value_error(exc, "ttl") from None
    return int(seconds * NS_PER_SECOND)


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
