"""Writing a setter's variables all or nothing across statebox keyspaces.

The rule is told in :mod:`.variables`' docstring; this is its machinery: read every
variable's entry, check the instance's guards against them, then one transaction per
keyspace (instance, workflow, namespace, in that order), each operation guarded by the
entry read — and when a later transaction fails, the earlier ones undone, each variable
put back as it was read, guarded by the version just written.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

from ...core.errors import ConflictError, StateboxError, quoted
from ...core.results import DeleteResult, SetResult
from ...core.values import JSON_CONTENT_TYPE, Blob, RawJSON
from ...store import StateStore
from ...transactions import DeleteOp, SetOp
from .errors import VarConflict

if TYPE_CHECKING:
    from .variables import VarWrite

__all__ = ["ORDER", "RACE_ATTEMPTS", "SCOPES", "Current", "apply_writes"]

#: Direktiv's scopes and statebox's scope each maps to.
SCOPES: Final = {"instance": "run", "workflow": "dag", "namespace": "global"}
#: The order in which keyspaces are written (and undone in reverse).
ORDER: Final = ("instance", "workflow", "namespace")
#: How many times a write is tried again when an *unguarded* variable changed between
#: reading it and writing it (a race, not a conflict: the last writer wins).
RACE_ATTEMPTS: Final = 50
_BACKOFF_BASE: Final = 0.001
_BACKOFF_CAP: Final = 0.05

ScopeKey = tuple[str, str]


class Current(NamedTuple):
    """A variable's entry as read before a write (``version`` 0: missing)."""

    found: bool
    version: int
    data: bytes = b""
    content_type: str = ""


class _Raced(Exception):
    """A transaction found a newer version of ``scope_key`` than the one read."""

    def __init__(self, scope_key: ScopeKey, version: int) -> None:
        super().__init__(scope_key)
        self.scope_key = scope_key
        self.version = version


def _read(store: StateStore, scope: str, key: str) -> Current:
    result = store.get(key, scope=SCOPES[scope])
    if not result.found or result.stored is None:
        return Current(False, 0)
    return Current(True, result.version, result.stored.data, result.stored.content_type)


def _conflict(
    keys: Sequence[ScopeKey], read: dict[ScopeKey, int], now: dict[ScopeKey, int]
) -> VarConflict:
    parts = []
    for scope, key in keys:
        seen, found = read[(scope, key)], now[(scope, key)]
        was = f"version {seen}" if seen else "it missing"
        is_ = f"it is at version {found}" if found else "it is now deleted"
        parts.append(f"{scope} variable {quoted(key)}: this instance read {was}, {is_}")
    return VarConflict(
        list(keys),
        "conflict on " + "; ".join(parts) + " (another instance wrote it); nothing was written",
    )


def apply_writes(
    store: StateStore, writes: Sequence[VarWrite], guards: dict[ScopeKey, int]
) -> dict[ScopeKey, int]:
    """Write ``writes`` (one per variable) all or nothing; ``guards`` holds the version
    the instance read of each guarded one. Returns each variable's new version (0 when
    deleted). Raises :class:`VarConflict` with nothing written."""
    for attempt in range(RACE_ATTEMPTS):
        current = {(w.scope, w.key): _read(store, w.scope, w.key) for w in writes}
        stale = [sk for sk, version in guards.items() if current[sk].version != version]
        if stale:
            raise _conflict(stale, guards, {sk: current[sk].version for sk in stale})
        try:
            return _commit(store, writes, current)
        except _Raced as raced:
            if raced.scope_key in guards:
                raise _conflict(
                    [raced.scope_key], guards, {raced.scope_key: raced.version}
                ) from None
        time.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))
    keys = [(w.scope, w.key) for w in writes]
    raise VarConflict(
        keys,
        f"variables kept changing while this instance wrote them ({RACE_ATTEMPTS} attempts); "
        "nothing was written",
    )


_Done = list[tuple[str, list["VarWrite"], Sequence[SetResult | DeleteResult]]]


def _commit(
    store: StateStore, writes: Sequence[VarWrite], current: dict[ScopeKey, Current]
) -> dict[ScopeKey, int]:
    done: _Done = []
    for scope in ORDER:
        group = [w for w in writes if w.scope == scope]
        if not group:
            continue
        ops: list[SetOp | DeleteOp] = []
        for w in group:
            expected = current[(w.scope, w.key)].version
            if w.delete:
                ops.append(DeleteOp(w.key, expected_version=expected))
            else:
                ops.append(SetOp(w.key, w.value, expected_version=expected))
        try:
            result = store.transaction(ops, scope=SCOPES[scope])
        except ConflictError as exc:
            _undo(store, done, current)
            failed = group[exc.index]
            raise _Raced((failed.scope, failed.key), exc.current_version) from None
        except Exception:
            _undo(store, done, current)
            raise
        done.append((scope, group, result.results))
    versions: dict[ScopeKey, int] = {}
    for _scope, group, results in done:
        for w, outcome in zip(group, results, strict=True):
            versions[(w.scope, w.key)] = outcome.version if isinstance(outcome, SetResult) else 0
    return versions


def _undo(store: StateStore, done: _Done, current: dict[ScopeKey, Current]) -> None:
    """Put back what ``done`` replaced, newest keyspace first; a variable written again
    since (its version is no longer ours) is left as the newer writer left it."""
    for scope, group, results in reversed(done):
        ops: list[SetOp | DeleteOp] = []
        for w, outcome in zip(group, results, strict=True):
            before = current[(w.scope, w.key)]
            ours = outcome.version if isinstance(outcome, SetResult) else 0
            if isinstance(outcome, DeleteResult) and not before.found:
                continue  # deleting a missing variable changed nothing
            if before.found:
                value = (
                    RawJSON(before.data)
                    if before.content_type == JSON_CONTENT_TYPE
                    else Blob(before.data, before.content_type)
                )
                ops.append(SetOp(w.key, value, expected_version=ours))
            else:
                ops.append(DeleteOp(w.key, expected_version=ours))
        if not ops:
            continue
        try:
            store.transaction(ops, scope=SCOPES[scope])
        except StateboxError:
            # One of them moved on: undo the others one by one (best effort: the
            # caller raises the write's own failure either way).
            for op in ops:
                with contextlib.suppress(StateboxError):
                    store.transaction([op], scope=SCOPES[scope])
