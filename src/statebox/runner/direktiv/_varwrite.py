"""Writing a setter's variables all or nothing across statebox keyspaces.

The rule is told in :mod:`.variables`' docstring; this is its machinery: every variable
of one write, whatever its scope, goes into ONE :meth:`StateStore.transaction_across`
— one part per keyspace (instance, workflow, namespace) — each variable this instance
read guarded by the version it read, the others unguarded. A failed guard anywhere
writes nothing anywhere; the conflict then names every guarded variable found changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ...core.errors import ConflictError, quoted
from ...core.results import SetResult
from ...store import StateStore
from ...transactions import DeleteOp, SetOp
from .errors import VarConflict

if TYPE_CHECKING:
    from .variables import VarWrite

__all__ = ["ORDER", "SCOPES", "apply_writes"]

#: Direktiv's scopes and statebox's scope each maps to.
SCOPES: Final = {"instance": "run", "workflow": "dag", "namespace": "global"}
#: The order of the transaction's parts (one per keyspace written).
ORDER: Final = ("instance", "workflow", "namespace")

ScopeKey = tuple[str, str]


def _operation(write: VarWrite, guard: int | None) -> SetOp | DeleteOp:
    if write.delete:
        return DeleteOp(write.key, expected_version=guard)
    return SetOp(write.key, write.value, expected_version=guard)


def _version_now(store: StateStore, scope_key: ScopeKey) -> int:
    scope, key = scope_key
    result = store.get(key, scope=SCOPES[scope])
    return result.version if result.found else 0


def _conflict(
    store: StateStore, failed: ScopeKey, failed_now: int, guards: dict[ScopeKey, int]
) -> VarConflict:
    """The conflict of a write whose guard on ``failed`` found version ``failed_now``
    (0: missing): it names that variable and every other guarded one of the write found
    changed too (read now: nothing was written), so the engine re-runs from the earliest
    getter that read any of them."""
    now = {sk: failed_now if sk == failed else _version_now(store, sk) for sk in guards}
    stale = [sk for sk, seen in guards.items() if now[sk] != seen or sk == failed]
    parts = []
    for scope, key in stale:
        seen, found = guards[(scope, key)], now[(scope, key)]
        was = f"version {seen}" if seen else "it missing"
        is_ = f"it is at version {found}" if found else "it is now deleted"
        parts.append(f"{scope} variable {quoted(key)}: this instance read {was}, {is_}")
    return VarConflict(
        stale,
        "conflict on " + "; ".join(parts) + " (another instance wrote it); nothing was written",
    )


def apply_writes(
    store: StateStore, writes: Sequence[VarWrite], guards: dict[ScopeKey, int]
) -> dict[ScopeKey, int]:
    """Write ``writes`` (one per variable) all or nothing, in one transaction across
    their keyspaces; ``guards`` holds the version the instance read of each guarded one
    (only those of ``writes``). Returns each variable's new version (0 when deleted).
    Raises :class:`VarConflict` with nothing written."""
    ordered = [w for scope in ORDER for w in writes if w.scope == scope]
    parts = []
    for scope in ORDER:
        ops = [_operation(w, guards.get((w.scope, w.key))) for w in ordered if w.scope == scope]
        if ops:
            parts.append((SCOPES[scope], None, ops))
    try:
        results = store.transaction_across(parts)
    except ConflictError as exc:
        # Only a guarded operation can fail (the others have no guard, no fence).
        failed = ordered[exc.index]
        raise _conflict(store, (failed.scope, failed.key), exc.current_version, guards) from None
    outcomes = [outcome for result in results for outcome in result.results]
    return {
        (w.scope, w.key): outcome.version if isinstance(outcome, SetResult) else 0
        for w, outcome in zip(ordered, outcomes, strict=True)
    }
