"""``transaction_across`` of :class:`~statebox.store.StateStore`: one transaction over
several keyspaces (SPEC §5), applied through one :meth:`Backend.apply_batch
<statebox.backends.base.Backend.apply_batch>`, all or nothing.

Apart from :mod:`statebox.store_writes` so that module stays readable; it is loaded only
when a transaction across keyspaces runs (the CLI's ``get`` never pays for it). It imports
nothing of the engine above it: what it needs of the store (resolving a keyspace, making
a mutation, applying the batches, naming a conflict, building a result — each shared with
``transaction``) it calls on the store it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .backends.base import check_batches
from .core.errors import ConflictError, InvalidReferenceError, InvalidValueError, quoted
from .core.model import Keyspace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeAlias

    from .backends.base import Applied, Mutation, WriteContext
    from .core.leases import Fencing
    from .core.model import Scope
    from .core.results_beyond import TransactionResult
    from .transactions import DeleteOp, SetOp

    #: One part of a transaction across keyspaces: ``(scope, namespace, operations)``.
    Part: TypeAlias = tuple[
        str | Scope | None, str | None, Iterable[SetOp | DeleteOp | Mapping[str, Any]]
    ]

    class Store(Protocol):
        """What :func:`transaction_across` needs of :class:`~statebox.store.StateStore`."""

        def keyspace(
            self, scope: str | Scope | None = None, namespace: str | None = None
        ) -> Keyspace: ...

        def _write_context(self) -> WriteContext: ...

        def _mutation(
            self, op: SetOp | DeleteOp, index: int, now: int, fencing: Fencing | None
        ) -> Mutation: ...

        def _apply_batch(
            self, batches: list[tuple[Keyspace, list[Mutation]]], ctx: WriteContext
        ) -> list[list[Applied]]: ...

        def _named_conflict(
            self, exc: ConflictError, failed: Mutation, where: str = ""
        ) -> ConflictError: ...

        def _transaction_result(
            self, ks: Keyspace, mutations: list[Mutation], applied: list[Applied]
        ) -> TransactionResult: ...


def _where(ks: Keyspace) -> str:
    return f"in scope {quoted(ks.scope)}, namespace {quoted(ks.namespace)}"


def transaction_across(
    store: Store, parts: Iterable[Part], fencing: Fencing | None
) -> list[TransactionResult]:
    """See :meth:`WritesMixin.transaction_across <statebox.store_writes.WritesMixin.
    transaction_across>`."""
    from .transactions import parse_operation

    listed: list[tuple[Keyspace, list[Any]]] = []
    for part in parts:
        try:
            scope, namespace, operations = part
        except (TypeError, ValueError):
            raise InvalidValueError(
                f"invalid transaction part {len(listed)}: must be a (scope, namespace, "
                "operations) triple"
            ) from None
        listed.append((store.keyspace(scope, namespace), list(operations)))
    check_batches(listed)
    ctx = store._write_context()
    # Operations are numbered across all parts in order (flat), as the backend's
    # ConflictError.index counts them.
    flat = 0
    batches: list[tuple[Keyspace, list[Mutation]]] = []
    for ks, raw_ops in listed:
        mutations: list[Mutation] = []
        for raw in raw_ops:
            try:
                mutations.append(
                    store._mutation(parse_operation(raw, flat), flat, ctx.now, fencing)
                )
            except (InvalidReferenceError, InvalidValueError) as exc:
                raise type(exc)(f"{exc.message} ({_where(ks)})", param=exc.params) from exc
            flat += 1
        batches.append((ks, mutations))
    sent = [(ks, mutations) for ks, mutations in batches if mutations]
    applied: Iterable[list[Applied]] = ()
    if sent:
        try:
            applied = store._apply_batch(sent, ctx)
        except ConflictError as exc:
            found = _flat_mutation(batches, exc.index)
            if found is None:
                raise
            ks, failed = found
            raise store._named_conflict(exc, failed, _where(ks)) from exc
    outcomes = iter(applied)
    return [
        store._transaction_result(ks, mutations, next(outcomes) if mutations else [])
        for ks, mutations in batches
    ]


def _flat_mutation(
    batches: list[tuple[Keyspace, list[Mutation]]], index: int
) -> tuple[Keyspace, Mutation] | None:
    """The keyspace and mutation at flat ``index`` (counted across all batches)."""
    for ks, mutations in batches:
        if index < len(mutations):
            return ks, mutations[index]
        index -= len(mutations)
    return None
