"""An action's ``with`` fields read into the engine's arguments (:class:`With`), and
the engine's refusals worded as those fields (:func:`field_message`): the coercion
between what a DAG file gives and what :class:`~statebox.StateStore` takes, apart from
the table of actions (:mod:`.actions`).

A step's ``with`` fields are named as the CLI's options (``--expected-version`` →
``expected_version``; Dagu's five actions keep the seed's names), checked by the rules
every face uses (:mod:`statebox.core.params`); an unknown field is refused with a
did-you-mean, and so is a missing one the action needs (:mod:`.action_fields`).

Field values arrive rendered (:mod:`.refs`). As in Dagu, a string stays a string, so the
integer fields (``expected_version``, ``version``, ``to_version``, ``limit``, ``token``)
take an integer or its decimal text (``"7"``, what ``${STATE.version}`` renders to),
``ttl`` a number or its text (``"1.5"``), and the yes/no fields (``required``,
``create_only``, ``update``, ``include_values``) a boolean or ``"true"`` / ``"false"``.
``value``, ``default`` and ``merge`` are JSON values as YAML gave them (a string stays
a string: ``value: "${X}"`` stores a JSON string, as Dagu does); ``patch`` and ``ops``
are lists, or JSON text of one (a string can be no patch and no operation list).
``fencing`` is ``LEASE:TOKEN`` (as the CLI's ``--fencing``) or ``{lease, token}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from ..core import params
from ..core.errors import (
    InvalidRequestError,
    InvalidValueError,
    StateboxError,
    json_kind,
    quoted,
    worded,
)
from ..core.operations import ALIASES
from ..core.records import Fence
from ..store_writes import MISSING
from .action_fields import ACTION_FIELDS, REQUIRED_FIELDS

if TYPE_CHECKING:
    from ..core.leases import Fencing

__all__ = [
    "With",
    "boolean",
    "field_message",
    "fencing_of",
    "json_list",
    "kind_of",
    "op_fields",
    "with_field",
]


def with_field(name: str) -> str:
    return f"with.{name}"


class With:
    """An action's ``with`` fields, checked against what the action takes."""

    __slots__ = ("action", "fields")

    def __init__(self, action: str, fields: Mapping[str, Any]) -> None:
        if not isinstance(fields, Mapping):
            raise InvalidRequestError(
                f"invalid with for {action}: must be a mapping of fields, not {json_kind(fields)}"
            )
        allowed = ACTION_FIELDS[action]
        for name in fields:
            if name not in allowed:
                raise InvalidRequestError(_unknown_field(action, name, allowed))
        for name in REQUIRED_FIELDS[action]:
            if name not in fields:
                raise InvalidRequestError(f"{action} needs {with_field(name)}")
        self.action = action
        self.fields = fields

    def json(self, name: str) -> Any:
        """A JSON value (``null`` included), or ``MISSING`` when not given."""
        return self.fields.get(name, MISSING)

    def text(self, name: str) -> str | None:
        """A string field; None when not given (or null)."""
        raw = self.fields.get(name)
        if raw is None or isinstance(raw, str):
            return raw
        raise InvalidRequestError(
            f"invalid {with_field(name)} {quoted(raw)}: must be a string, not {kind_of(raw)}"
        )

    def key(self, name: str = "key") -> str:
        raw = self.fields.get(name)
        if isinstance(raw, str):
            return raw
        raise InvalidRequestError(
            f"invalid {with_field(name)} {quoted(raw)}: must be a string, not {kind_of(raw)}"
        )

    def number(self, name: str, rule: Callable[[object, str], int]) -> int | None:
        """An integer field by a :mod:`~statebox.core.params` rule; None when not given."""
        raw = self.fields.get(name)
        return None if raw is None else rule(raw, with_field(name))

    def ttl(self) -> float | None:
        raw = self.fields.get("ttl")
        return None if raw is None else params.ttl(raw, with_field("ttl"))

    def lease_ttl(self) -> float:
        """A lease's ``ttl``, which cannot be null."""
        ttl = self.ttl()
        if ttl is None:
            raise InvalidRequestError(
                f"invalid {with_field('ttl')} null: must be a number of seconds"
            )
        return ttl

    def flag(self, name: str, default: bool) -> bool:
        raw = self.fields.get(name)
        return default if raw is None else boolean(raw, with_field(name))

    def fencing(self) -> Fencing | None:
        raw = self.fields.get("fencing")
        return None if raw is None else fencing_of(raw, with_field("fencing"))

    def address(self) -> dict[str, Any]:
        return {"scope": self.text("scope"), "namespace": self.text("namespace")}


def kind_of(raw: object) -> str:
    """What ``raw`` is, in JSON's words, or the YAML type JSON lacks (an unquoted date)."""
    kind = json_kind(raw)
    if kind == "not a JSON value":
        return f"a YAML {_yaml_type(raw)}"
    return kind


def _yaml_type(raw: object) -> str:
    import datetime  # only on an error path

    if isinstance(raw, datetime.datetime):
        return "timestamp"
    if isinstance(raw, datetime.date):
        return "date"
    return "value JSON has no type for"


def boolean(raw: object, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise InvalidRequestError(f"invalid {name} {quoted(raw)}: must be true or false")


def fencing_of(raw: object, name: str) -> Fence:
    """``LEASE:TOKEN`` (the lease name may hold ':'), or ``{lease: NAME, token: N}``;
    the token an integer or its text."""
    if isinstance(raw, str):
        fence: object = params.fencing_text(
            raw, name, "nightly-import:3 (the token lease.acquire printed: ${LEASE.token})"
        )
    elif isinstance(raw, Mapping) and set(raw) == {"lease", "token"}:
        fence = params.fencing_parts(raw["lease"], raw["token"], f"{name}.lease", f"{name}.token")
    else:
        raise InvalidRequestError(
            f"invalid {name} {quoted(raw)}: must be LEASE:TOKEN or {{lease: NAME, token: N}}"
        )
    if not isinstance(fence, Fence):  # a null lease and token
        raise InvalidRequestError(f"invalid {name}: needs a lease and a token")
    return fence


def json_list(raw: object, name: str, example: str) -> Any:
    """A list field given as a list or as JSON text of one (a rendered output)."""
    if isinstance(raw, str):
        from ..core.errors import NestingTooDeepError
        from ..core.exactjson import loads_exact

        try:
            raw = loads_exact(raw, name)
        except NestingTooDeepError:
            raise
        except ValueError as exc:
            raise InvalidValueError(f"invalid {name}: not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise InvalidValueError(
            f"invalid {name}: must be a list like {example}, not {json_kind(raw)}"
        )
    return raw


# --- the operations of state.txn -------------------------------------------------------


def op_fields(item: object, index: int) -> object:
    """One operation of ``with.ops`` with its integer, yes/no and fencing fields read as
    the action's own are (``"7"``, ``"true"``, ``LEASE:TOKEN``): then it goes to the
    reader every face's ``txn`` uses (:func:`statebox.core.operations.operation_fields`,
    whose aliases are resolved here first)."""
    if not isinstance(item, Mapping):
        return item  # the reader refuses it, naming the operation
    out = {ALIASES.get(str(name), str(name)): value for name, value in item.items()}
    where = f"{with_field('ops')}[{index}]"
    if isinstance(out.get("expected_version"), str):
        out["expected_version"] = params.expected_version(
            out["expected_version"], f"{where}.expected_version"
        )
    if isinstance(out.get("create_only"), str):
        out["create_only"] = boolean(out["create_only"], f"{where}.create_only")
    fence = out.get("fencing")
    if isinstance(fence, str) or (
        isinstance(fence, Mapping) and isinstance(fence.get("token"), str)
    ):
        lease, token = fencing_of(fence, f"{where}.fencing")
        out["fencing"] = {"lease": lease, "token": token}
    return out


# --- messages -------------------------------------------------------------------------


def _unknown_field(action: str, name: object, allowed: frozenset[str]) -> str:
    shown = with_field(name) if isinstance(name, str) else f"with field {quoted(name)}"
    from ._dag_keys import did_you_mean  # only on this error path

    hint = did_you_mean(name, allowed, with_field)
    listed = ", ".join(sorted(allowed))
    return f"unknown field {shown} for {action}{hint} (it takes: {listed})"


#: The engine's refusals of an address, as the field that carried it: ``invalid key
#: "a//b": …`` → ``invalid with.key "a//b": …``.
_RENAMED: Final = (
    ("invalid key ", "key"),
    ("invalid prefix ", "prefix"),
    ("invalid namespace ", "namespace"),
    ("invalid scope ", "scope"),
    ("invalid lease name ", "name"),
)


#: The JSON values of a ``with``: where a YAML value JSON has no type for can hide.
_JSON_FIELDS: Final = ("value", "default", "merge", "patch", "ops")


def _not_json(value: object, path: str) -> tuple[str, object] | None:
    """The first leaf of ``value`` that is no JSON value, and its path
    (``with.value.day``); None when there is none."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return None
    if isinstance(value, Mapping):
        for name, item in value.items():
            found = _not_json(item, f"{path}.{name}")
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _not_json(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return path, value


def field_message(exc: StateboxError, action: str, fields_given: Mapping[str, Any] | None) -> str:
    """``exc``'s message in the runner's words: the parameters it names as the action's
    ``with`` fields (those that are not fields — the run context's — left out)."""
    if "JSON-serializable" in exc.message and isinstance(fields_given, Mapping):
        for name in _JSON_FIELDS:
            found = _not_json(fields_given.get(name), with_field(name))
            if found is not None:
                path, leaf = found
                return (
                    f"invalid {path} {quoted(leaf)}: {kind_of(leaf)}, which JSON has no type "
                    "for (quote it in the DAG file to store it as a string)"
                )
    fields = ACTION_FIELDS.get(action, frozenset())
    message = exc.message
    for head, name in _RENAMED:
        if message.startswith(head) and name in fields:
            message = f"invalid {with_field(name)} {message[len(head) :]}"
            break
    named = tuple(param for param in exc.params if param in fields)
    return worded(StateboxError(message, param=named), with_field)
