"""Leases and fencing (SPEC §5): the engine-side rules that need no storage.

A lease names a piece of work ("the nightly import"); whoever acquires it gets a fencing
token one greater than any token issued for that name before. A write that carries the
token (``fencing=``) is refused with :class:`~statebox.core.errors.FencingError` once anyone
has acquired the lease after it, so a stale retry of a step cannot clobber the work of
the run that took over. The atomic parts live in the backends (``acquire_lease`` …,
checked inside ``apply``) and in :mod:`statebox.core.versions`.
"""

from __future__ import annotations

import os

from .errors import InvalidRequestError, InvalidValueError, quoted
from .model import RunContext
from .records import Fence, Lease
from .results import LeaseResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeAlias

__all__ = [
    "Fencing",
    "as_fence",
    "default_holder",
    "validate_lease_holder",
    "validate_lease_name",
]

#: What a write accepts as ``fencing=``: a lease (as returned by ``acquire_lease``) or a
#: ``(lease_name, token)`` pair.
Fencing: TypeAlias = LeaseResult | Lease | Fence | tuple[str, int]


def validate_lease_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidValueError(f"invalid lease name {quoted(name)}: must be a non-empty string")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(
            f"invalid lease name {quoted(name)}: must be valid Unicode"
        ) from None
    if "\x00" in name:  # PostgreSQL text cannot hold it; no name needs it
        raise InvalidValueError(f"invalid lease name {quoted(name)}: must not contain NUL")
    return name.strip()


def validate_lease_holder(holder: Any) -> str:
    """A holder as every backend can store it: PostgreSQL text holds no NUL and no lone
    surrogate, so neither is accepted anywhere (one rule for all backends)."""
    if not isinstance(holder, str) or not holder.strip():
        raise InvalidValueError(
            f"invalid lease holder {quoted(holder)}: must be a non-empty string"
        )
    try:
        holder.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(
            f"invalid lease holder {quoted(holder)}: must be valid Unicode"
        ) from None
    if "\x00" in holder:
        raise InvalidValueError(f"invalid lease holder {quoted(holder)}: must not contain NUL")
    return holder


def as_fence(fencing: Fencing | None) -> Fence | None:
    """The :class:`Fence` a write carries, from any accepted form: the one place every
    fencing passes on its way to a backend (the faces read theirs with
    :func:`statebox.core.params.fencing`, which gives a :class:`Fence`), so every one is
    checked alike: a valid lease name, and a token that is an integer (never a bool)
    from 1 to the 64-bit limit the backends store."""
    if fencing is None:
        return None
    if isinstance(fencing, (LeaseResult, Lease)):
        lease, token = fencing.name, fencing.token
    elif isinstance(fencing, (tuple, list)) and len(fencing) == 2:
        lease, token = fencing
    else:
        raise InvalidValueError(
            f"invalid fencing {quoted(fencing)}: give a lease that acquiring one returned, or "
            "a lease name and a token",
            param="fencing",
        )
    if not isinstance(token, int) or isinstance(token, bool):
        # Python data: "3" is no token here (reading text is the faces' part, in params).
        raise InvalidValueError(
            f"invalid fencing token {quoted(token)} for lease {quoted(lease)}: must be an "
            "integer of 1 or more",
            param="fencing",
        )
    from .params import as_value_error, fencing_parts

    try:
        fence = fencing_parts(lease, token, "fencing lease", "fencing token")
    except InvalidRequestError as exc:
        raise as_value_error(exc, "fencing") from None
    assert isinstance(fence, Fence)  # both parts given: never None
    return fence


def default_holder(context: RunContext) -> str:
    """Who holds a lease when the caller does not say: the run, or this host and process,
    plus a random suffix so two attempts of the same step are different holders."""
    import secrets  # not at import time: the CLI starts with the engine, rarely leases
    import socket

    parts = [p for p in (context.dag, context.run_id, context.step) if p]
    if not parts:
        parts = [socket.gethostname(), str(os.getpid())]
    return "/".join(parts) + "#" + secrets.token_hex(4)
