"""The backend contract: what every storage backend must do, and nothing more.

A backend stores entries of one shape (:class:`Entry`) grouped by :class:`Keyspace`, and
keeps their history. All policy — validation, normalization, the version rules, TTL
arithmetic, output objects — lives in the engine (``statebox.store``) and in the pure
planner (``statebox.core.versions``); a backend only has to make :meth:`Backend.apply`
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
    reads the live current entry, calls :func:`statebox.core.versions.plan` (which raises
    :class:`~statebox.core.errors.ConflictError` carrying the mutation's index), writes the
    result, and appends a history record unless ``ctx.history_limit`` is 0, keeping
    only the newest ``ctx.history_limit`` records of that key. On any error nothing of
    the batch is visible. Returns one :class:`Applied` per mutation.
``apply_batch(batches, ctx)``
    :meth:`apply` across keyspaces: ``batches`` is a sequence of ``(keyspace,
    mutations)`` pairs, applied all-or-nothing as one atomic section — all of them or, on
    a failed guard or fence anywhere, none. Each keyspace appears at most once (else
    :class:`~statebox.core.errors.InvalidRequestError`, nothing applied). A
    :class:`~statebox.core.errors.ConflictError`'s ``index`` is the failing mutation's
    position counted across all batches in order (flat). History, expiry and change
    tokens are kept per keyspace exactly as ``apply`` keeps them. Returns one list of
    :class:`Applied` per batch, in order. ``apply(ks, m, ctx)`` is
    ``apply_batch([(ks, m)], ctx)[0]``; a backend may keep a faster path for it.
``history(keyspace, key, limit)``
    History records of the key, newest first (deletions included), at most ``limit``
    (0 = all kept).
``get_version(keyspace, key, version)``
    The newest non-deletion history record with that version, or ``None``.
``import_keys(keyspace, items, *, replace, now)``
    Write whole keys as a dump carries them (:class:`~statebox.core.records.KeyImport`:
    the live entry or None, and the kept history newest first), verbatim — versions,
    hashes, values, timestamps, writers and expiry as given — for ``statebox load`` and
    ``copy``. One atomic section for the whole batch, against every other writer, and
    across crashes: a key is left as it was or fully imported, never torn. First the
    batch is validated (:class:`~statebox.core.errors.InvalidRequestError`, nothing
    written): each record is of its item's key, versions are 1 or more, a history's
    versions never increase, a key appears once. Then per item, with D the key's stored
    entry row (expired or not) and H its kept history: ``"same"`` when D is live with the
    item's version and hash, or when the item's entry is None, D is missing or expired
    and H's ``(version, hash, deleted)`` list equals the item's — nothing written;
    ``"created"`` when D is missing or expired and H is empty — the entry (if any) and
    every history record are written as given (no trimming: a later write trims as
    usual); otherwise ``"conflict"``, nothing written for that key — or with
    ``replace=True`` D and H are dropped and the item written as for created,
    ``"replaced"``. The change token moves when anything was written. Returns one
    outcome per item, in order (``IMPORT_*`` in :mod:`statebox.core.records`).
``close()``
    Release connections; idempotent.

Errors: a backend raises only :class:`~statebox.core.errors.StateboxError` subclasses —
driver errors are translated where they happen (busy or unreachable storage is
:class:`~statebox.core.errors.BackendUnavailableError`, an unreadable record is
:class:`~statebox.core.errors.CorruptEntryError`).

Fencing (SPEC §5): a mutation may carry a :class:`Fence`. Inside the same atomic section
``apply`` reads the lease's latest token and calls :func:`statebox.core.versions.check_fence`,
which refuses the write (:class:`~statebox.core.errors.FencingError`) unless the fence's
token is the latest one issued for that lease.

``acquire_lease(name, holder, ttl_ns, now)``
    Atomically: if a live lease (``expires_at > now``) is held by another holder, raise
    :class:`~statebox.core.errors.ConflictError`; else issue the next token (the lease's
    previous token + 1, starting at 1, never reused — not after release, not after
    expiry) to ``holder`` until ``now + ttl_ns``.
``renew_lease(name, holder, token, ttl_ns, now)``
    Extend a live lease whose latest token is ``token`` and holder ``holder``; else raise
    :class:`~statebox.core.errors.FencingError`.
``release_lease(name, holder, token, now)``
    End the lease if ``token`` is its latest token and it is held by ``holder`` (the
    token stays used). ``True`` when released, ``False`` when it was not ours.
``get_lease(name, now)``
    The latest lease (live or not) or ``None`` when never acquired.
``list_leases(now, after, limit)``
    The live leases (``expires_at > now``: neither expired nor released), ascending by
    the UTF-8 bytes of their names, only names after ``after`` (exclusive; ``None``: from
    the first), at most ``limit`` (0 = all).
``change_token(keyspace)`` / ``wait_for_change(keyspace, token, timeout)``
    Watch support. ``change_token`` is a cheap number that changes whenever a write
    to the keyspace commits (it may also change for other keyspaces). ``wait_for_change``
    blocks until the token differs from ``token`` or ``timeout`` seconds pass, and
    returns the token it saw last. It must not re-read entries to find out: SQLite and
    the file backend sleep until their files are written (inotify,
    ``backends/_fswait.py``) and then re-read ``PRAGMA data_version`` / the counter,
    PostgreSQL uses LISTEN/NOTIFY, memory a condition variable.
``purge_expired(now, limit)``
    Delete up to ``limit`` entries whose ``expires_at <= now`` (history is kept);
    return how many.
``list_keyspaces(scope, after=, limit=, now=)``
    One :class:`KeyspaceInfo` per keyspace holding at least one live entry (in
    ``scope`` when given), ascending by the UTF-8 bytes of ``(scope, namespace)``, after
    ``after`` (exclusive), at most ``limit`` (0 = all). ``entries`` counts live entries
    only; ``updated_at`` is the newest ``updated_at`` among them.
``delete_keyspace(keyspace, ctx)``
    Delete every live entry of the keyspace in one atomic ``apply`` (expired ones go
    too), each deletion recorded in its key's history as ``delete`` records it (etcd
    records a range delete the same way: one delete event per key). Returns how many
    live entries were deleted. The default lists the keys, then applies one batch of
    deletes: a key created between the two survives (the deletion is ordered before its
    write); SQL backends and memory do both inside one transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence

from ..core.errors import BackendUnavailableError, ConfigurationError, InvalidRequestError, quoted
from ..core.model import Keyspace, KeyspaceInfo, keyspace_sort_key
from ..core.records import (
    Applied,
    Delete,
    Entry,
    Fence,
    HistoryRecord,
    KeyImport,
    Lease,
    Mutation,
    Put,
    WriteContext,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

    T = TypeVar("T")
else:  # typing is not imported at CLI start-up: typing.NamedTuple's class, built faster,
    # and Protocol a plain base class
    from ..core._tuples import NamedTuple

    Protocol = object

#: Any keyspace, for backends whose change token is the same for all of them.
_ANY_KEYSPACE = Keyspace("global", "_")

__all__ = [
    "Applied",
    "Backend",
    "Capabilities",
    "Delete",
    "Entry",
    "Fence",
    "GroupCommit",
    "HistoryRecord",
    "KeyImport",
    "KeyspaceInfo",
    "Lease",
    "Mutation",
    "Put",
    "WriteContext",
    "check_batches",
    "group_commit_of",
    "keyspace_sort_key",
    "live_leases",
]


class Capabilities(NamedTuple):
    """What a backend can do beyond the contract. A face (the server) chooses how to run
    work from these alone, never from the backend's class; each defaults to the answer
    that is safe for a backend that says nothing. Build it with keywords. (A NamedTuple,
    not a dataclass: ``dataclasses`` would load ``inspect`` on the CLI's ``get``.)"""

    #: Check-and-write is atomic across processes on one machine.
    cross_process: bool = True
    #: Check-and-write is atomic across machines (PostgreSQL, the remote store).
    cross_machine: bool = False
    #: The data outlives the process.
    durable: bool = True
    #: A read answers in microseconds and never waits on a lock (embedded storage), so a
    #: server calls it on its event loop: a hop to a worker thread would cost more.
    inline_reads: bool = False
    #: The backend has the :class:`GroupCommit` methods: a server commits the writes of
    #: concurrent requests in one transaction (``server/writer.py``).
    group_commit: bool = False
    #: :meth:`Backend.reset` empties the store (a test-mode server's ``/v1/_test/reset``).
    test_reset: bool = False
    #: :meth:`Backend.store_change_token` covers every keyspace, so a server watches the
    #: whole store with one waiter (``server/changes_hub.py``).
    store_wide_changes: bool = False
    #: The storage keeps history to a limit of its own (the remote store: its server's
    #: ``--history-limit``): ``WriteContext.history_limit`` is not used.
    own_history_limit: bool = False
    #: The storage seals secret keyspaces' values itself (the remote store: its server
    #: holds the key), so ``open_backend`` does not wrap it in ``SealedBackend``.
    seals_secrets: bool = False


class GroupCommit(Protocol):
    """The methods a backend with ``Capabilities.group_commit`` has: several callers'
    writes in one transaction, each with its own outcome (an exception is an outcome)."""

    #: Seconds a write waits for the write lock before it is refused.
    timeout: float

    def write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Run ``calls`` in one transaction, waiting for the write lock."""
        ...

    def try_write_together(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception] | None:
        """:meth:`write_together`, or ``None`` at once (nothing ran) when another
        connection holds the write lock."""
        ...

    def locked_error(self) -> BackendUnavailableError:
        """The error for writes that waited ``timeout`` seconds for the lock in vain."""
        ...


_GROUP_COMMIT_METHODS = ("write_together", "try_write_together", "locked_error")


def group_commit_of(backend: Backend) -> GroupCommit | None:
    """``backend`` as a :class:`GroupCommit` when its capabilities say it is one."""
    if not backend.capabilities.group_commit:
        return None
    # Checked when the class was defined (Backend.__init_subclass__).
    return backend  # type: ignore[return-value]


def live_leases(leases: Iterable[Lease], now: int, after: str | None, limit: int) -> list[Lease]:
    """:meth:`Backend.list_leases` over leases already read (memory, the file store): the
    live ones named after ``after``, by name — Python orders ``str`` by code point, which
    is the order of their UTF-8 bytes — at most ``limit`` (0 = all)."""
    found = sorted(
        (lease for lease in leases if lease.is_live(now) and (after is None or lease.name > after)),
        key=lambda lease: lease.name,
    )
    return found[:limit] if limit else found


def check_batches(batches: Sequence[tuple[Keyspace, object]]) -> None:
    """Refuse ``apply_batch``'s ``batches`` when a keyspace appears twice
    (:class:`~statebox.core.errors.InvalidRequestError`), before anything is applied.

    The one check of a repeated keyspace: the backends, the engine's
    ``transaction_across`` and the server's ``POST /v1/apply`` all refuse it with this
    message (the batches' second items are not looked at)."""
    if len(batches) < 2:
        return
    seen: set[Keyspace] = set()
    for keyspace, _ in batches:
        if keyspace in seen:
            raise InvalidRequestError(
                f"a transaction across keyspaces names each keyspace once: scope "
                f"{quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)} appears "
                "twice (put all of its operations in one batch)"
            )
        seen.add(keyspace)


class Backend(ABC):
    """Abstract base of every backend; an incomplete one fails at construction."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The URL the backend was opened from, for messages.
    url: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A capability is a promise the server acts on: one the class cannot keep fails
        # here, when it is defined, not in the middle of serving.
        if cls.capabilities.group_commit:
            missing = [
                name for name in _GROUP_COMMIT_METHODS if not callable(getattr(cls, name, None))
            ]
            if missing:
                raise TypeError(
                    f"{cls.__name__} declares group_commit but lacks {', '.join(missing)}"
                )
        if cls.capabilities.test_reset and cls.reset is Backend.reset:
            raise TypeError(f"{cls.__name__} declares test_reset but has no reset()")

    def reset(self) -> Backend:
        """Test mode: close this backend and return an empty store of the same URL in its
        place. Only for a backend whose ``capabilities.test_reset`` is true."""
        raise ConfigurationError(f"a {type(self).__name__} store cannot be reset")

    def declare_secret(self, keyspace: Keyspace, ctx: WriteContext) -> None:
        """Seal ``keyspace``'s values from now on, and record that in the store, so that
        every process on it seals and masks them. Only the sealing layer
        (``backends/sealing``) can: any other backend refuses."""
        where = f"scope {quoted(keyspace.scope)}, namespace {quoted(keyspace.namespace)}"
        if self.capabilities.seals_secrets:
            raise ConfigurationError(
                f"cannot declare {where} secret through a remote store: the server behind "
                "it seals its secret keyspaces, so declare it there"
            )
        raise ConfigurationError(
            f"cannot declare {where} secret: this {type(self).__name__} does not seal values "
            "(open the store with StateStore.open or open_backend, which seal)"
        )

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
    def apply_batch(
        self, batches: Sequence[tuple[Keyspace, Sequence[Mutation]]], ctx: WriteContext
    ) -> list[list[Applied]]:
        """Apply every batch's mutations all-or-nothing across keyspaces: all of them or,
        on a failed guard or fence anywhere, none. Each keyspace appears at most once
        (else :class:`~statebox.core.errors.InvalidRequestError`). A ``ConflictError``'s
        ``index`` is the failing mutation's position counted across all batches in order
        (flat). Returns each batch's :class:`Applied` list."""

    @abstractmethod
    def history(self, keyspace: Keyspace, key: str, limit: int) -> list[HistoryRecord]: ...

    @abstractmethod
    def get_version(self, keyspace: Keyspace, key: str, version: int) -> HistoryRecord | None: ...

    @abstractmethod
    def import_keys(
        self, keyspace: Keyspace, items: Sequence[KeyImport], *, replace: bool, now: int
    ) -> list[str]:
        """Write whole keys verbatim, all or nothing; one outcome per item (see the
        contract: ``"created"``, ``"same"``, ``"conflict"`` or ``"replaced"``)."""

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

    @abstractmethod
    def list_leases(self, now: int, after: str | None, limit: int) -> list[Lease]: ...

    # -- watch and expiry (SPEC §5) ------------------------------------------------------

    @abstractmethod
    def change_token(self, keyspace: Keyspace) -> int: ...

    @abstractmethod
    def wait_for_change(self, keyspace: Keyspace, token: int, timeout: float) -> int: ...

    def store_change_token(self) -> int | None:
        """A token that changes whenever a write to *any* keyspace commits, or ``None``
        when the backend has per-keyspace tokens only (``capabilities.store_wide_changes``
        says which). The server watches it with one waiter for all its clients
        (``server/changes_hub.py``). This default serves a backend whose ``change_token``
        ignores its keyspace; one with per-keyspace tokens and a total overrides it."""
        return self.change_token(_ANY_KEYSPACE) if self.capabilities.store_wide_changes else None

    def wait_for_store_change(self, token: int, timeout: float) -> int:
        """:meth:`wait_for_change` for the token of :meth:`store_change_token`."""
        return self.wait_for_change(_ANY_KEYSPACE, token, timeout)

    @abstractmethod
    def purge_expired(self, now: int, limit: int = 1000) -> int: ...

    # -- keyspaces -------------------------------------------------------------------------

    @abstractmethod
    def list_keyspaces(
        self, scope: str | None, *, after: Keyspace | None, limit: int, now: int
    ) -> list[KeyspaceInfo]: ...

    def delete_keyspace(self, keyspace: Keyspace, ctx: WriteContext) -> int:
        """List the live keys, then delete them in one ``apply`` (see the contract)."""
        live = self.scan(keyspace, "", after=None, limit=0, include_values=False, now=ctx.now)
        if not live:
            return 0
        applied = self.apply(keyspace, [Delete(entry.key) for entry in live], ctx)
        return sum(1 for a in applied if a.previous is not None)
