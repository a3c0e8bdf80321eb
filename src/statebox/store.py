"""The engine: the operations of SPEC §4 over any backend, for every face.

:class:`StateStore` resolves addresses, normalizes values, applies the version rules
through the backend contract, and builds the result objects. The CLI, the server and the
runner call these methods and nothing below them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

from ._plan import check_guard
from .backends import Backend, open_backend
from .backends.base import Delete, Entry, HistoryRecord, Put, WriteContext
from .clock import NS_PER_SECOND, Clock, SystemClock
from .config import resolve_store_url
from .errors import InvalidValueError, NotFoundError
from .model import (
    Keyspace,
    RunContext,
    Scope,
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
    ListEntry,
    ListResult,
    SetResult,
    StoredValue,
)
from .values import DEFAULT_BINARY_LIMIT, DEFAULT_JSON_LIMIT, NormalizedValue, normalize

__all__ = ["MISSING", "StateStore", "open_store"]


class _Missing(enum.Enum):
    """Sentinel: "no default given" — distinct from a default of JSON ``null``."""

    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING
DEFAULT_HISTORY_LIMIT: Final = 10


def _stored(entry: Entry | HistoryRecord) -> StoredValue:
    return StoredValue(entry.data, entry.content_type)


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
    ) -> None:
        if history_limit < 0:
            raise ValueError("history_limit must be >= 0")
        self.backend = backend
        self.context = context if context is not None else RunContext.from_env()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.history_limit = history_limit
        self.json_limit = json_limit
        self.binary_limit = binary_limit

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
        )

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers shared by the operations ---------------------------------------------

    def keyspace(self, scope: str | Scope | None = None, namespace: str | None = None) -> Keyspace:
        return resolve_keyspace(scope, namespace, self.context)

    def normalize(self, value: Any) -> NormalizedValue:
        """Normalize a value with this store's limits (JSON or :class:`Blob`)."""
        return normalize(value, limit=self.json_limit, binary_limit=self.binary_limit)

    def _write_context(self) -> WriteContext:
        return WriteContext(
            now=self.clock.now_ns(),
            updated_by=self.context.updated_by(),
            history_limit=self.history_limit,
        )

    def _expires_at(self, ttl: float | None, now: int) -> int | None:
        if ttl is None:
            return None
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl <= 0:
            raise InvalidValueError(f"invalid ttl {ttl!r}: must be a positive number of seconds")
        return now + int(ttl * NS_PER_SECOND)

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
            return GetResult(
                ks,
                key,
                True,
                entry.version,
                entry.hash,
                _stored(entry),
                created_at=entry.created_at,
                updated_at=entry.updated_at,
                updated_by=entry.updated_by,
                expires_at=entry.expires_at if isinstance(entry, Entry) else None,
            )
        if required:
            what = f"version {version} of key" if version is not None else "key"
            raise NotFoundError(
                f"{what} {key!r} not found in scope {ks.scope!r}, namespace {ks.namespace!r}"
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
    ) -> SetResult:
        """Write one entry; ``value`` is Python JSON data, :class:`RawJSON` or :class:`Blob`."""
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        normalized = self.normalize(value)
        ctx = self._write_context()
        put = Put(key, normalized, expected_version, create_only, self._expires_at(ttl, ctx.now))
        new = self.backend.apply(ks, [put], ctx)[0].current
        assert new is not None
        return SetResult(ks, key, new.version, new.hash, new.version == 1)

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
            written = self.backend.apply(ks, [put], self._write_context())[0].current
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
    ) -> DeleteResult:
        """Delete one entry; deleting a missing key is not an error (``deleted: false``)."""
        ks = self.keyspace(scope, namespace)
        key = validate_key(key)
        applied = self.backend.apply(ks, [Delete(key, expected_version)], self._write_context())
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
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise InvalidValueError(f"invalid limit {limit!r}: must be 0 (no limit) or more")
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
        records = self.backend.history(ks, key, limit)
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
                )
                for r in records
            ],
        )


def open_store(
    url: str | None = None,
    *,
    context: RunContext | None = None,
    clock: Clock | None = None,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    environ: Mapping[str, str] | None = None,
    **limits: int,
) -> StateStore:
    """Open a store: ``url``, else ``STATEBOX_STORE``, else ``$STATEBOX_HOME/state.db``."""
    backend = open_backend(resolve_store_url(url, environ))
    return StateStore(
        backend,
        context=context if context is not None else RunContext.from_env(environ),
        clock=clock,
        history_limit=history_limit,
        **limits,
    )
