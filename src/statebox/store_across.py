"""Transactions of :class:`~statebox.store.StateStore` (SPEC §5): set/delete operations
on one keyspace, or on several through one :meth:`Backend.apply_batch
<statebox.backends.base.Backend.apply_batch>`, all or nothing.

Apart from :mod:`statebox.store_writes` so that module stays readable;
:class:`StateStore` inherits them from :class:`TransactionsMixin`. It imports nothing of
the engine above it: what it needs of the store (resolving a keyspace, making a
mutation — ``WritesMixin._to_mutation``, shared with ``set`` and ``delete`` — applying
the mutations) it calls on the store it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .backends.base import Put, check_batches
from .core.errors import ConflictError, InvalidReferenceError, InvalidValueError, quoted
from .core.leases import Fencing  # at run time: typing.get_type_hints reads the methods'
from .core.model import Keyspace, Scope
from .core.results import DeleteResult, SetResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    from .backends.base import Applied, Mutation, WriteContext
    from .core.results_beyond import TransactionResult
    from .transactions import DeleteOp, SetOp

    #: One part of a transaction across keyspaces: ``(scope, namespace, operations)``.
    Part: TypeAlias = tuple[
        str | Scope | None, str | None, Iterable[SetOp | DeleteOp | Mapping[str, Any]]
    ]


class TransactionsMixin:
    """``transaction`` and ``transaction_across`` of :class:`~statebox.store.StateStore`."""

    if TYPE_CHECKING:  # what the transactions need of StateStore, which defines them

        def keyspace(
            self, scope: str | Scope | None = None, namespace: str | None = None
        ) -> Keyspace: ...

        def _write_context(self) -> WriteContext: ...

        def _mutation(
            self, op: SetOp | DeleteOp, index: int, now: int, fencing: Fencing | None
        ) -> Mutation: ...

        def _apply(
            self, ks: Keyspace, mutations: list[Mutation], ctx: WriteContext
        ) -> list[Applied]: ...

        def _apply_batch(
            self, batches: list[tuple[Keyspace, list[Mutation]]], ctx: WriteContext
        ) -> list[list[Applied]]: ...

    def transaction(
        self,
        operations: Iterable[SetOp | DeleteOp | Mapping[str, Any]],
        *,
        fencing: Fencing | None = None,
        scope: str | Scope | None = None,
        namespace: str | None = None,
    ) -> TransactionResult:
        """Apply set/delete operations on one scope+namespace, all or nothing.

        Each operation has its own ``expected_version`` / ``create_only`` (and ``ttl``
        for a set); ``fencing`` applies to every operation that has none of its own. On
        a failed guard nothing is written and the :class:`ConflictError` carries the
        failing operation's ``index`` and names it.
        """
        ks = self.keyspace(scope, namespace)
        from .core.results_beyond import TransactionResult
        from .transactions import parse_operation

        ops = [parse_operation(raw, i) for i, raw in enumerate(operations)]
        ctx = self._write_context()
        mutations = [self._mutation(op, i, ctx.now, fencing) for i, op in enumerate(ops)]
        if not mutations:
            return TransactionResult(ks, [])
        try:
            applied = self._apply(ks, mutations, ctx)
        except ConflictError as exc:
            raise named_conflict(exc, mutations[exc.index]) from exc
        return transaction_result(ks, mutations, applied)

    def transaction_across(
        self,
        parts: Iterable[
            tuple[
                str | Scope | None,
                str | None,
                Iterable[SetOp | DeleteOp | Mapping[str, Any]],
            ]
        ],
        *,
        fencing: Fencing | None = None,
    ) -> list[TransactionResult]:
        """Apply set/delete operations on several scope+namespace pairs, all or nothing:
        one transaction across keyspaces.

        Each part is ``(scope, namespace, operations)``, resolved as :meth:`transaction`
        resolves its own; a keyspace appears at most once. All parts are applied through
        one ``backend.apply_batch``: on a failed guard or fence anywhere nothing anywhere
        is written, and the :class:`ConflictError` names the operation, its scope and
        namespace, its ``index`` counting operations across all parts in order. Returns
        one :class:`TransactionResult` per part, in order.
        """
        return _transaction_across(self, parts, fencing)


def _where(ks: Keyspace) -> str:
    return f"in scope {quoted(ks.scope)}, namespace {quoted(ks.namespace)}"


def _transaction_across(
    store: TransactionsMixin, parts: Iterable[Part], fencing: Fencing | None
) -> list[TransactionResult]:
    """See :meth:`TransactionsMixin.transaction_across`."""
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
            raise named_conflict(exc, failed, _where(ks)) from exc
    outcomes = iter(applied)
    return [
        transaction_result(ks, mutations, next(outcomes) if mutations else [])
        for ks, mutations in batches
    ]


def named_conflict(exc: ConflictError, failed: Mutation, where: str = "") -> ConflictError:
    """A transaction's conflict ``exc`` again, naming the operation that failed (and
    ``where`` it is: its keyspace, in a transaction across keyspaces)."""
    from .core.operations import operation_name

    kind = "set" if isinstance(failed, Put) else "delete"
    name = operation_name(f"transaction operation {exc.index}", kind, failed.key)
    return type(exc)(
        f"{name}{' ' if where else ''}{where} failed, nothing was written: {exc.message}",
        index=exc.index,
        current_version=exc.current_version,
    )


def transaction_result(
    ks: Keyspace, mutations: list[Mutation], applied: list[Applied]
) -> TransactionResult:
    """The result of a transaction's ``mutations`` on ``ks``, applied as ``applied``
    (no values: a transaction reports versions, never what it wrote)."""
    from .core.results_beyond import TransactionResult

    results: list[SetResult | DeleteResult] = []
    for mutation, outcome in zip(mutations, applied, strict=True):
        new = outcome.current
        if new is None:
            results.append(DeleteResult(ks, mutation.key, outcome.previous is not None))
        else:
            results.append(SetResult(ks, new.key, new.version, new.hash, new.version == 1))
    return TransactionResult(ks, results)


def _flat_mutation(
    batches: list[tuple[Keyspace, list[Mutation]]], index: int
) -> tuple[Keyspace, Mutation] | None:
    """The keyspace and mutation at flat ``index`` (counted across all batches)."""
    for ks, mutations in batches:
        if index < len(mutations):
            return ks, mutations[index]
        index -= len(mutations)
    return None
