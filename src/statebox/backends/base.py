"""The backend contract: what every storage backend must do, and nothing more.

A backend stores entries of one shape (:class:`Entry`) grouped by :class:`Keyspace`, and
keeps their history. All policy — validation, normalization, the version rules, TTL
arithmetic, output objects — lives in the engine (``statebox.store``) and in the pure
planner (``statebox._plan``); a backend only has to make :meth:`Backend.apply`
atomic. The rules, method by method:

``get(keyspace, key, now)``
    The live entry, or ``None`` when it is missing *or expired* (``expires_at <= now``).
``scan(keyspace, prefix, after=, limit=, include_values=, now=)``
    Live entries whose UTF-8 key bytes start with ``prefix`` and sort after ``after``,
    ascending by byte order, at most ``limit`` (0 = all). Cost must grow with the
    result, not the keyspace. ``data`` may be ``b""`` when ``include_values`` is false.
``apply(keyspace, mutations, ctx)``
    All-or-nothing, atomic against every other writer the backend can have (threads,
    processes, and for shared backends other machines). For each mutation in order it
    reads the live current entry, calls :func:`statebox._plan.plan` (which raises
    :class:`~statebox.errors.ConflictError` carrying the mutation's index), writes the
    result, and appends a history record unless ``ctx.history_limit`` is 0, keeping
    only the newest ``ctx.history_limit`` records of that key. On any error nothing of
    the batch is visible. Returns one :class:`Applied` per mutation.
``history(keyspace, key, limit)``
    History records of the key, newest first (deletions included), at most ``limit``
    (0 = all kept).
``get_version(keyspace, key, version)``
    The newest non-deletion history record with that version, or ``None``.
``close()``
    Release connections; idempotent.

Errors: a backend raises only :class:`~statebox.errors.StateboxError` subclasses —
driver errors are translated where they happen (busy or unreachable storage is
:class:`~statebox.errors.BackendUnavailableError`, an unreadable record is
:class:`~statebox.errors.CorruptEntryError`).

Fencing (SPEC §5): a mutation may carry a :class:`Fence`. Inside the same atomic section
``apply`` reads the lease's latest token and calls :func:`statebox._plan.check_fence`,
which refuses the write (:class:`~statebox.errors.FencingError`) unless the fence's
token is the latest one issued for that lease.

``acquire_lease(name, holder, ttl_ns, now)``
    Atomically: if a live lease (``expires_at > now``) is held by another holder, raise
    :class:`~statebox.errors.ConflictError`; else issue the next token (the lease's
    previous token + 1, starting at 1, never reused — not after release, not after
    expiry) to ``holder`` until ``now + ttl_ns``.
``renew_lease(name, holder, token, ttl_ns, now)``
    Extend a live lease whose latest token is ``token`` and holder ``holder``; else raise
    :class:`~statebox.errors.FencingError`.
``release_lease(name, holder, token, now)``
    End the lease if ``token`` is its latest token and it is held by ``holder`` (the
    token stays used). ``True`` when released, ``False`` when it was not ours.
``get_lease(name, now)``
    The latest lease (live or not) or ``None`` when never acquired.
``change_token(keyspace)`` / ``wait_for_change(keyspace, token, timeout)``
    Watch support. ``change_token`` is a cheap number that changes whenever a write
    to the keyspace commits (it may also change for other keyspaces). ``wait_for_change``
    blocks until the token differs from ``token`` or ``timeout`` seconds pass, and
    returns the token it saw last. It must not re-read entries to find out: SQLite polls
    ``PRAGMA data_version``, PostgreSQL uses LISTEN/NOTIFY, memory a condition variable.
``purge_expired(now, limit)``
    Delete up to ``limit`` entries whose ``expires_at <= now`` (history is kept);
    return how many.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from ..model import Keyspace, UpdatedBy
from ..values import NormalizedValue

#: Any keyspace, for backends whose change token is the same for all of them.
_ANY_KEYSPACE = Keyspace("global", "_")

__all__ = [
    "Applied",
    "Backend",
    "Capabilities",
    "Delete",
    "Entry",
    "Fence",
    "HistoryRecord",
    "Lease",
    "Mutation",
    "Put",
    "WriteContext",
]


class Entry(NamedTuple):
    """One stored entry: the current version of a key."""

    key: str
    version: int
    hash: str
    data: bytes
    content_type: str
    created_at: int  # ns since the epoch, UTC
    updated_at: int
    updated_by: UpdatedBy = UpdatedBy()
    expires_at: int | None = None

    def is_live(self, now: int) -> bool:
        return self.expires_at is None or self.expires_at > now


class HistoryRecord(NamedTuple):
    """One past (or the current) version of a key, or the deletion of one."""

    key: str
    version: int
    hash: str
    data: bytes
    content_type: str
    created_at: int
    updated_at: int
    updated_by: UpdatedBy
    deleted: bool = False


class Fence(NamedTuple):
    """A lease's fencing token carried by a write (SPEC §5, leases)."""

    lease: str
    token: int


class Lease(NamedTuple):
    """A lease on a name: who holds it, until when, and its fencing token."""

    name: str
    holder: str
    token: int
    expires_at: int  # ns since the epoch, UTC

    def is_live(self, now: int) -> bool:
        return self.expires_at > now


class Put(NamedTuple):
    key: str
    value: NormalizedValue
    expected_version: int | None = None
    create_only: bool = False
    expires_at: int | None = None
    fence: Fence | None = None


class Delete(NamedTuple):
    key: str
    expected_version: int | None = None
    fence: Fence | None = None


Mutation = Put | Delete


class WriteContext(NamedTuple):
    now: int
    updated_by: UpdatedBy
    history_limit: int = 10


class Applied(NamedTuple):
    """What one mutation did: the live entry before it and the entry after it."""

    previous: Entry | None
    current: Entry | None  # None after a delete


class Capabilities(NamedTuple):
    #: Check-and-write is atomic across processes on one machine.
    cross_process: bool = True
    #: Check-and-write is atomic across machines (PostgreSQL, the remote store).
    cross_machine: bool = False
    #: The data outlives the process.
    durable: bool = True


class Backend(ABC):
    """Abstract base of every backend; an incomplete one fails at construction."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The URL the backend was opened from, for messages.
    url: str = ""

    @abstractmethod
    def get(self, keyspace: Keyspace, key: str, now: int) -> Entry | None: ...

    @abstractmethod
    def scan(
        self,
        keyspace: Keyspace,
        prefix: str,
        *,
        after: str | None,
        limit: int,
        include_values: bool,
        now: int,
    ) -> list[Entry]: ...

    @abstractmethod
    def apply(
        self, keyspace: Keyspace, mutations: Sequence[Mutation], ctx: WriteContext
    ) -> list[Applied]: ...

    @abstractmethod
    def history(self, keyspace: Keyspace, key: str, limit: int) -> list[HistoryRecord]: ...

    @abstractmethod
    def get_version(self, keyspace: Keyspace, key: str, version: int) -> HistoryRecord | None: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- leases (SPEC §5) ----------------------------------------------------------------

    @abstractmethod
    def acquire_lease(self, name: str, holder: str, ttl_ns: int, now: int) -> Lease: ...

    @abstractmethod
    def renew_lease(self, name: str, holder: str, token: int, ttl_ns: int, now: int) -> Lease: ...

    @abstractmethod
    def release_lease(self, name: str, holder: str, token: int, now: int) -> bool: ...

    @abstractmethod
    def get_lease(self, name: str, now: int) -> Lease | None: ...

    # -- watch and expiry (SPEC §5) ------------------------------------------------------

    @abstractmethod
    def change_token(self, keyspace: Keyspace) -> int: ...

    @abstractmethod
    def wait_for_change(self, keyspace: Keyspace, token: int, timeout: float) -> int: ...

    #: ``change_token`` ignores its keyspace: one token covers the whole store.
    store_wide_changes: ClassVar[bool] = False

    def store_change_token(self) -> int | None:
        """A token that changes whenever a write to *any* keyspace commits, or ``None``
        when the backend has per-keyspace tokens only. The server watches it with one
        waiter for all its clients (``server/changes_hub.py``)."""
        return self.change_token(_ANY_KEYSPACE) if self.store_wide_changes else None

    def wait_for_store_change(self, token: int, timeout: float) -> int:
        """:meth:`wait_for_change` for the token of :meth:`store_change_token`."""
        return self.wait_for_change(_ANY_KEYSPACE, token, timeout)

    @abstractmethod
    def purge_expired(self, now: int, limit: int = 1000) -> int: ...
