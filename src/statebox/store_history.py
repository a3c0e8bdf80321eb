"""History of :class:`~statebox.store.StateStore` (SPEC §5): the versions kept of a key,
and the read of one past version that ``get(version=N)`` makes.

Apart from :mod:`statebox.store_beyond` so that module stays readable;
:class:`StateStore` inherits them from :class:`HistoryMixin`. The argument checks it
shares with the store come from :mod:`statebox.store_beyond`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .backends.base import Entry, HistoryRecord
from .core.clock import Clock
from .core.errors import CorruptEntryError, SecretKeyError
from .core.model import Keyspace, Scope, validate_key
from .core.results import StoredValue
from .store_beyond import _check_limit, _check_version

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported where used: the CLI's `get` must not pay for them
    from .backends import Backend
    from .core.results_beyond import HistoryResult
    from .core.secrecy import SecretPolicy


class HistoryMixin:
    """``history`` of :class:`~statebox.store.StateStore`, and its read of one version."""

    backend: Backend
    clock: Clock
    secret_policy: SecretPolicy

    if TYPE_CHECKING:  # defined by StateStore

        def keyspace(
            self, scope: str | Scope | None = None, namespace: str | None = None
        ) -> Keyspace: ...

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
        from .core.results_beyond import HistoryItem, HistoryResult  # not on a get's path

        secret = include_values and self.secret_policy.is_secret(ks)
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
                    StoredValue(r.data, r.content_type, secret)
                    if include_values and not r.deleted
                    else None,
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

    def _read_version(self, ks: Keyspace, key: str, version: int) -> Entry | HistoryRecord | None:
        """Version ``version`` of ``key`` (``get(version=N)``), read itself first: a
        current entry that cannot be opened (sealed under a lost key, altered) does not
        block reading an intact older version. The live entry is the answer when it is
        that version (it carries the TTL a history record does not keep, and is there
        when history is off)."""
        _check_version(version)
        record = self.backend.get_version(ks, key, version)
        try:
            current = self.backend.get(ks, key, self.clock.now_ns())
        except (SecretKeyError, CorruptEntryError):
            if record is None:  # the version asked is the one that cannot be opened
                raise
            return record
        if current is not None and current.version == version:
            return current
        return record
