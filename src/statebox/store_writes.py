"""Update and rollback of :class:`~statebox.store.StateStore` (SPEC §5), and the mapping
of every write to the mutation a backend applies.

The writes that read before they write — a transform retried under contention, a past
version written back — are a group of their own, apart from the plain reads and writes
in :mod:`statebox.store` so that module stays readable (transactions are in
:mod:`statebox.store_across`). :class:`StateStore` inherits them from
:class:`WritesMixin`; the sentinel :data:`MISSING` and the result builders they share
with the store live here too. Nothing here imports more than :mod:`statebox.store`
already did (the CLI's ``get`` loads it).
"""

from __future__ import annotations

import enum
import time

from .backends.base import (
    Applied,
    Delete,
    Entry,
    HistoryRecord,
    Mutation,
    Put,
    WriteContext,
)
from .core.errors import (
    ConflictError,
    FencingError,
    InvalidReferenceError,
    InvalidValueError,
    NotFoundError,
    StateboxError,
    ValueTooLargeError,
    quoted,
)
from .core.leases import Fencing, as_fence
from .core.model import Keyspace, Scope, validate_key
from .core.results import SetResult, StoredValue
from .core.values import JSON_CONTENT_TYPE, NormalizedValue, RawJSON
from .core.versions import check_guard
from .store_beyond import _check_expected, _check_version

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported where used: the CLI's `get` must not pay for them
    from typing import Any, Final

    from .backends import Backend
    from .core.secrecy import SecretPolicy
    from .transactions import DeleteOp, SetOp
    from .transforms import Transform


class _Missing(enum.Enum):
    """Sentinel: "no default given" — distinct from a default of JSON ``null``."""

    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING
# update's backoff between attempts (seconds): full jitter up to base * 2**attempt, capped.
_BACKOFF_BASE = 0.001
_BACKOFF_CAP = 0.05


def _stored(entry: Entry | HistoryRecord, secret: bool = False) -> StoredValue:
    return StoredValue(entry.data, entry.content_type, secret)


def _written(
    ks: Keyspace,
    new: Entry,
    operation: str = "set",
    *,
    reported: bool = False,
    retries: int = 0,
    secret: bool = False,
) -> SetResult:
    """The result of a write that left ``new``; ``reported`` adds the value written
    (``secret``: of a secret keyspace, masked when rendered)."""
    stored = _stored(new, secret) if reported else None
    return SetResult(
        ks, new.key, new.version, new.hash, new.version == 1, stored, operation, retries
    )


def _failure(transform: Transform, exc: StateboxError) -> str:
    """The kind of failure of a transform, in words that quote nothing of the value."""
    from .transforms import JqTransform, MergePatch

    what = (
        "the jq expression"
        if isinstance(transform, JqTransform)
        else "the merge patch"
        if isinstance(transform, MergePatch)
        else "the JSON patch"
    )
    if isinstance(exc, ValueTooLargeError):
        return f"{what} made the value too large"
    return f"{what} could not be applied to the value"


class WritesMixin:
    """``update``, ``rollback`` and ``transaction`` of :class:`~statebox.store.StateStore`."""

    backend: Backend
    history_limit: int
    json_limit: int
    jq_timeout: float | None
    update_attempts: int
    purge_every: int
    secret_policy: SecretPolicy

    if TYPE_CHECKING:  # defined by StateStore
        from collections.abc import Iterator

        _writes: Iterator[int]

        def _purge_quietly(self, now: int) -> None: ...

        def keyspace(
            self, scope: str | Scope | None = None, namespace: str | None = None
        ) -> Keyspace: ...

        def normalize(self, value: Any) -> NormalizedValue: ...

        def _write_context(self) -> WriteContext: ...

        def _expires_at(self, ttl: float | None, now: int) -> int | None: ...

        def _apply(
            self, ks: Keyspace, mutations: list[Mutation], ctx: WriteContext
        ) -> list[Applied]: ...

        def _apply_batch(
            self, batches: list[tuple[Keyspace, list[Mutation]]], ctx: WriteContext
        ) -> list[list[Applied]]: ...

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
        _check_expected(expected_version)
        transform = make_transform(
            jq=jq,
            merge_text=None if merge is MISSING else self._json_text(merge, "merge patch"),
            patch_text=None if patch is MISSING else self._json_text(patch, "JSON patch"),
            jq_timeout=self.jq_timeout if self.jq_timeout is not None else DEFAULT_JQ_TIMEOUT,
            limit=self.json_limit,
        )
        start = "null" if default is MISSING else self._json_text(default, "default")
        secret = self.secret_policy.is_secret(ks)
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
            value = self._transformed(transform, before, key, secret)
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
            return _written(ks, new, "update", reported=True, retries=attempt, secret=secret)
        assert conflict is not None
        raise ConflictError(
            f"update of key {quoted(key)} gave up after {self.update_attempts} attempts: other "
            f"writers kept changing it (last: {conflict.message})",
            current_version=conflict.current_version,
        ) from conflict

    def _transformed(
        self, transform: Transform, before: str, key: str, secret: bool
    ) -> NormalizedValue:
        """``transform`` applied to ``before``, normalized. On a secret keyspace a
        failure says what failed but not how: jq's messages, a patch's, and the
        printed result of a jq program may all quote the value (``error(.)``)."""
        try:
            return self.normalize(RawJSON(transform.apply(before)))
        except StateboxError as exc:
            if not secret:
                raise
            hidden = type(exc)(
                f"update of secret key {quoted(key)} failed: {_failure(transform, exc)}; "
                "the value is not shown"
            )
            hidden.params = exc.params
            raise hidden from None

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
        _check_version(to_version, "version", "to_version")
        _check_expected(expected_version)
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
        secret = self.secret_policy.is_secret(ks)
        return _written(ks, new, "rollback", reported=True, secret=secret)

    def _mutation(
        self, op: SetOp | DeleteOp, index: int, now: int, fencing: Fencing | None
    ) -> Mutation:
        """:meth:`_to_mutation` of a transaction's operation, its refusal naming it: about
        the operation, not about a parameter of the call (a face would spell one as its
        own ``--ttl``), so it carries none."""
        from .core.operations import operation_name
        from .transactions import SetOp

        try:
            return self._to_mutation(op, now, fencing)
        except (InvalidReferenceError, InvalidValueError) as exc:
            kind = "set" if isinstance(op, SetOp) else "delete"
            name = operation_name(f"transaction operation {index}", kind, op.key)
            raise type(exc)(f"{name}: {exc.message}") from exc

    def _to_mutation(
        self, op: SetOp | DeleteOp, now: int, fencing: Fencing | None = None
    ) -> Mutation:
        """The mutation a backend applies for one operation — the one mapping of the
        engine's writes (``set``, ``delete``, ``transaction``) to mutations: the key and
        the guard checked, the value normalized with this store's limits, the ttl made an
        expiry from ``now``, the fencing checked (the operation's own, else
        ``fencing``). The ``http://`` backend's mutations, already made here on the
        client, travel by :mod:`statebox.wire.mutations`."""
        from .transactions import DeleteOp

        own = op.fencing if op.fencing is not None else fencing
        if isinstance(op, DeleteOp):
            return self._delete_mutation(op.key, op.expected_version, own)
        return self._put_mutation(
            op.key, op.value, op.expected_version, op.create_only, op.ttl, own, now
        )

    def _put_mutation(
        self,
        key: str,
        value: Any,
        expected_version: int | None,
        create_only: bool,
        ttl: float | None,
        fencing: Fencing | None,
        now: int,
    ) -> Put:
        """:meth:`_to_mutation` of a set, field by field (``set`` calls it without
        building an operation first: it is the hot path)."""
        key = validate_key(key)
        _check_expected(expected_version)
        expires_at = self._expires_at(ttl, now)
        return Put(
            key, self.normalize(value), expected_version, create_only, expires_at,
            as_fence(fencing),
        )  # fmt: skip

    def _delete_mutation(
        self, key: str, expected_version: int | None, fencing: Fencing | None
    ) -> Delete:
        """:meth:`_to_mutation` of a delete, field by field."""
        key = validate_key(key)
        _check_expected(expected_version)
        return Delete(key, expected_version, as_fence(fencing))
