"""The version rules of SPEC §3 as one pure function, shared by every backend.

A backend reads the live current entry inside its atomic section, asks :func:`plan` what
to write, and writes exactly that. Nothing here does I/O.
"""

from __future__ import annotations

from .errors import ConflictError, FencingError, quoted
from .records import (
    Delete,
    Entry,
    Fence,
    HistoryRecord,
    Lease,
    Mutation,
    Put,
    WriteContext,
)

__all__ = [
    "check_fence",
    "check_guard",
    "fence_refusal",
    "history_record",
    "plan",
    "plan_acquire",
    "plan_release",
    "plan_renew",
]


def check_guard(
    key: str,
    current: Entry | None,
    expected_version: int | None,
    create_only: bool = False,
    *,
    index: int = 0,
) -> None:
    """Raise :class:`ConflictError` unless the guards hold against ``current``."""
    found = current.version if current is not None else 0
    if create_only and current is not None:
        raise ConflictError(
            f"conflict on key {quoted(key)}: it already exists at version {found}, and the write "
            "was to create it only",
            index=index,
            current_version=found,
        )
    if expected_version is None:
        return
    if expected_version != found or expected_version < 0:
        state = f"its version is {found}" if current is not None else "it does not exist"
        raise ConflictError(
            f"conflict on key {quoted(key)}: expected version {expected_version} but {state}",
            index=index,
            current_version=found,
        )


def check_fence(fence: Fence | None, latest: Lease | None, *, index: int = 0) -> None:
    """Refuse a fenced write unless its token is the lease's latest token."""
    if fence is None:
        return
    if latest is None or latest.token != fence.token:
        newest = latest.token if latest is not None else 0
        raise FencingError(fence_refusal(fence.lease, fence.token, newest), index=index)


def fence_refusal(lease: str, token: int, latest: int) -> str:
    """Why a write fenced with ``token`` of ``lease`` is refused, ``latest`` being the
    lease's latest issued token (0: never acquired). A token below it is stale: someone
    acquired the lease since. A token above it was never issued, so it is not called
    stale: the caller made it up or fenced with another store's lease."""
    if token < latest:
        return (
            f"fenced write refused: token {token} of lease {quoted(lease)} is stale "
            f"(a newer holder has token {latest})"
        )
    issued = f"its latest is {latest}" if latest else "it was never acquired"
    return (
        f"fenced write refused: token {token} of lease {quoted(lease)} was never issued ({issued})"
    )


def plan_acquire(latest: Lease | None, name: str, holder: str, ttl_ns: int, now: int) -> Lease:
    """The lease to store for an acquisition, or :class:`ConflictError` when held."""
    if latest is not None and latest.is_live(now) and latest.holder != holder:
        remaining = (latest.expires_at - now) / 1e9
        raise ConflictError(
            f"lease {quoted(name)} is held by {quoted(latest.holder)} for another {remaining:.3f}s"
        )
    return Lease(name, holder, (latest.token if latest else 0) + 1, now + ttl_ns)


def _check_holder(latest: Lease | None, name: str, holder: str, token: int, now: int) -> Lease:
    if latest is None or latest.token != token or latest.holder != holder:
        raise FencingError(
            f"lease {quoted(name)}: token {token} held by {quoted(holder)} is not the current lease"
        )
    if not latest.is_live(now):
        raise FencingError(f"lease {quoted(name)}: token {token} has expired")
    return latest


def plan_renew(
    latest: Lease | None, name: str, holder: str, token: int, ttl_ns: int, now: int
) -> Lease:
    lease = _check_holder(latest, name, holder, token, now)
    return Lease(name, holder, lease.token, now + ttl_ns)


def plan_release(
    latest: Lease | None, name: str, holder: str, token: int, now: int
) -> Lease | None:
    """The ended lease to store, or ``None`` when ``token`` is not the live lease."""
    try:
        lease = _check_holder(latest, name, holder, token, now)
    except FencingError:
        return None
    return Lease(name, holder, lease.token, now)


def plan(
    current: Entry | None, mutation: Mutation, ctx: WriteContext, *, index: int = 0
) -> Entry | None:
    """The entry to store after ``mutation`` (``None``: remove it). ``current`` is live."""
    if isinstance(mutation, Delete):
        check_guard(mutation.key, current, mutation.expected_version, index=index)
        return None
    assert isinstance(mutation, Put)
    check_guard(mutation.key, current, mutation.expected_version, mutation.create_only, index=index)
    value = mutation.value
    # Positional (key, version, hash, data, content_type, created_at, updated_at,
    # updated_by, expires_at): keywords make a NamedTuple slower to build, on every write.
    if current is None:
        return Entry(
            mutation.key,
            1,
            value.hash,
            value.data,
            value.content_type,
            ctx.now,
            ctx.now,
            ctx.updated_by,
            mutation.expires_at,
        )
    return Entry(
        mutation.key,
        current.version + 1,
        value.hash,
        value.data,
        value.content_type,
        current.created_at,
        ctx.now,
        ctx.updated_by,
        mutation.expires_at,
    )


def history_record(
    previous: Entry | None, new: Entry | None, ctx: WriteContext
) -> HistoryRecord | None:
    """The history record a write leaves: the new version, or a deletion marker."""
    if new is not None:  # positional, as in plan: the same fields in the same order
        return HistoryRecord(
            new.key,
            new.version,
            new.hash,
            new.data,
            new.content_type,
            new.created_at,
            new.updated_at,
            new.updated_by,
        )
    if previous is None:
        return None  # deleting a missing key changes nothing
    return HistoryRecord(
        key=previous.key,
        version=previous.version,
        hash=previous.hash,
        data=b"",
        content_type=previous.content_type,
        created_at=previous.created_at,
        updated_at=ctx.now,
        updated_by=ctx.updated_by,
        deleted=True,
    )
