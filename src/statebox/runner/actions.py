"""State and lease steps (``action: state.get`` …), run in-process against the store.

Each action is one engine call, mapped as the CLI maps its command (``statebox get``,
``statebox update`` …), and its output is the very line that command prints: the result's
Dagu envelope (:func:`statebox.core.envelope.envelope_json`), without the newline. How
a step's ``with`` fields are read (names, types, rendered text) is :mod:`._action_args`;
this module is the table of actions, each field to its engine argument.

A failed action exits with the code the CLI gives the same error: 4 conflict (a stale
``expected_version``, ``create_only`` on an existing key, a stale fencing token, a lease
another holder has), 3 not found (``required``, a version no longer kept), 2 bad input
(a field's type or value, an unknown field or action), 1 anything else. So
``retry_policy: {exit_code: [4]}`` retries a lost race and nothing else. (Dagu reports
every action error as exit code 1.) Messages name the fields as a DAG file spells them:
``with.expected_version``.

A lease step's holder is the run (``holder``, the run id, set by the executor), so one
step can acquire a lease and a later one renew or release it by name alone; ``token``
is optional for those (the run's current lease on that name is meant).

A value of a secret keyspace (:mod:`statebox.core.secrecy`) is masked in the output line
(``"value":"***","masked":true``), as the CLI prints it without ``--reveal``. With
``with.reveal: true`` (the actions that print values: get, diff, list, update, history,
rollback) the step's references (its output variable, ``${id.output}``) see the line
with the values shown, while its record and log keep the masked one; either way the
values are registered with the run's masker (:mod:`.masking`), and so are the values
a ``state.set`` or ``state.txn`` writes to a secret keyspace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..core import params
from ..core.envelope import envelope_json
from ..core.errors import InvalidRequestError, NotFoundError, StateboxError, quoted
from ..store_writes import MISSING
from ._action_args import With, field_message, json_list, op_fields, with_field
from .action_fields import ACTIONS, DAG_RUN

if TYPE_CHECKING:
    from ..core.envelope import Result
    from ..store import StateStore
    from .masking import Masker

__all__ = ["ActionResult", "run_action"]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What a state step did: its exit code, its output line (``""`` on failure; the
    values of secret keyspaces masked, as the run records it) and, on failure, the
    message in the runner's words. ``revealed``: the line the step's references see
    when ``with.reveal`` is true (secret values shown); None: ``output``."""

    exit_code: int
    output: str
    error: str | None
    revealed: str | None = None


def run_action(
    store: StateStore,
    action: str,
    fields: Mapping[str, Any] | None,
    *,
    holder: str,
    masker: Masker | None = None,
) -> ActionResult:
    """Run one ``state.*`` / ``lease.*`` action with its rendered ``with`` ``fields``.

    ``store`` is bound to the step's run context (its writes record dag, run and step in
    ``updated_by``); ``holder`` holds the leases the step takes (the run id). The secret
    values the result holds are registered with ``masker`` (the run's), whether the step
    reveals them or not: the run's record, logs and display never show them.
    """
    try:
        call = _CALLS.get(action)
        if call is None:
            raise InvalidRequestError(_unknown_action(action))
        given = With(action, {} if fields is None else fields)
        reveal = given.flag("reveal", False)
        result = call(store, given, holder)
        if masker is not None and action in ("state.set", "state.txn"):
            _written_secrets(store, result, given, masker)
        line = envelope_json(result)
        if '"masked":true' not in line:  # no secret value in it (the usual case)
            return ActionResult(0, line, None)
        revealed = envelope_json(result, reveal=True)
        if masker is not None:
            masker.add_envelopes(line, revealed)
        return ActionResult(0, line, None, revealed if reveal else None)
    except StateboxError as exc:
        return ActionResult(exc.exit_code, "", field_message(exc, action, fields))
    except Exception as exc:  # a step fails; the run goes on
        from ._context import describe

        return ActionResult(1, "", f"{action}: {describe(exc)}")


# --- the actions ----------------------------------------------------------------------


def _get(store: StateStore, w: With, holder: str) -> Result:
    return store.get(
        w.key(),
        **w.address(),
        default=w.json("default"),
        required=w.flag("required", False),
        version=w.number("version", params.version),
    )


def _set(store: StateStore, w: With, holder: str) -> Result:
    return store.set(
        w.key(),
        w.fields["value"],
        **w.address(),
        expected_version=w.number("expected_version", params.expected_version),
        create_only=w.flag("create_only", False),
        ttl=w.ttl(),
        fencing=w.fencing(),
    )


def _diff(store: StateStore, w: With, holder: str) -> Result:
    return store.diff(
        w.key(),
        w.fields["value"],
        **w.address(),
        update=w.flag("update", True),
        expected_version=w.number("expected_version", params.expected_version),
    )


def _delete(store: StateStore, w: With, holder: str) -> Result:
    return store.delete(
        w.key(),
        **w.address(),
        expected_version=w.number("expected_version", params.expected_version),
        fencing=w.fencing(),
    )


def _list(store: StateStore, w: With, holder: str) -> Result:
    after = w.fields.get("after")
    return store.list(
        w.text("prefix"),
        **w.address(),
        limit=w.number("limit", params.limit) or 0,
        include_values=w.flag("include_values", False),
        after=None if after is None else params.after_key(after, with_field("after")),
    )


def _update(store: StateStore, w: With, holder: str) -> Result:
    patch = w.json("patch")
    if patch is not MISSING:
        patch = json_list(patch, with_field("patch"), '[{"op": "add", "path": "/n", "value": 1}]')
    return store.update(
        w.key(),
        jq=w.text("jq"),
        merge=w.json("merge"),
        patch=patch,
        default=w.json("default"),
        ttl=w.ttl(),
        expected_version=w.number("expected_version", params.expected_version),
        fencing=w.fencing(),
        **w.address(),
    )


def _history(store: StateStore, w: With, holder: str) -> Result:
    return store.history(
        w.key(),
        **w.address(),
        limit=w.number("limit", params.limit) or 0,
        include_values=w.flag("include_values", False),
    )


def _rollback(store: StateStore, w: With, holder: str) -> Result:
    to_version = w.number("to_version", params.version)
    if to_version is None:
        raise InvalidRequestError(f"invalid {with_field('to_version')} null: must be an integer")
    return store.rollback(
        w.key(),
        to_version,
        expected_version=w.number("expected_version", params.expected_version),
        fencing=w.fencing(),
        **w.address(),
    )


def _txn(store: StateStore, w: With, holder: str) -> Result:
    from ..wire.codec import transaction_operation

    name = with_field("ops")
    items = json_list(w.fields["ops"], name, '[{"op": "set", "key": "a", "value": 1}]')
    operations = []
    for index, item in enumerate(items):
        read = op_fields(item, index)  # its errors name with.ops[i].field already
        try:
            operations.append(transaction_operation(read, index))
        except StateboxError as exc:
            raise type(exc)(f"{name}: {exc.message}") from None
    return store.transaction(operations, fencing=w.fencing(), **w.address())


def _lease_acquire(store: StateStore, w: With, holder: str) -> Result:
    return store.acquire_lease(w.key("name"), w.lease_ttl(), holder=holder)


def _lease_token(store: StateStore, w: With, holder: str) -> tuple[str, int]:
    """The lease's name and the token to renew or release: ``with.token``, else the
    token of the lease on that name (the run's, if it still holds it: another holder's
    makes the renewal fail as a stale token would)."""
    name = w.key("name")
    token = w.number("token", params.token)
    if token is None:
        lease = store.get_lease(name)
        if lease is None:
            raise NotFoundError(f"lease {quoted(name)} was never acquired")
        token = lease.token
    return name, token


def _lease_renew(store: StateStore, w: With, holder: str) -> Result:
    ttl = w.lease_ttl()
    name, token = _lease_token(store, w, holder)
    return store.renew_lease(name, ttl, token=token, holder=holder)


def _lease_release(store: StateStore, w: With, holder: str) -> Result:
    name, token = _lease_token(store, w, holder)
    return store.release_lease(name, token=token, holder=holder)


_CALLS: Final[dict[str, Callable[[StateStore, With, str], Result]]] = {
    "state.get": _get,
    "state.set": _set,
    "state.diff": _diff,
    "state.delete": _delete,
    "state.list": _list,
    "state.update": _update,
    "state.history": _history,
    "state.rollback": _rollback,
    "state.txn": _txn,
    "lease.acquire": _lease_acquire,
    "lease.renew": _lease_renew,
    "lease.release": _lease_release,
}
assert set(_CALLS) == ACTIONS - {DAG_RUN}, "every action of action_fields runs here"


def _written_secrets(store: StateStore, result: Result, given: With, masker: Masker) -> None:
    """The values a ``state.set`` or ``state.txn`` wrote to a secret keyspace are
    secrets from now on (an output a step made and the next one stored there)."""
    keyspace = getattr(result, "keyspace", None)
    if keyspace is None or not store.secret_policy.is_secret(keyspace):
        return
    if given.action == "state.set":
        masker.add_value(given.fields["value"])
        return
    ops = json_list(given.fields["ops"], with_field("ops"), "[]")
    for item in ops:
        if isinstance(item, Mapping) and "value" in item:
            masker.add_value(item["value"])


# --- messages -------------------------------------------------------------------------


def _unknown_action(action: object) -> str:
    if action == DAG_RUN:
        return f"{DAG_RUN} runs a sub-DAG: the executor runs it, not a state action"
    listed = ", ".join(sorted(_CALLS))
    from ._dag_keys import did_you_mean  # only on this error path

    hint = did_you_mean(action, _CALLS, str)
    return f"unknown action {quoted(action)}{hint} (actions: {listed}, {DAG_RUN})"
