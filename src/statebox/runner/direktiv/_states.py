"""The logic of the states that call no function: ``noop``, ``getter``, ``setter``,
``switch``, ``delay``, ``error``, ``validate`` — and what every state shares: its
``log``, its ``transform`` and the way a visit is cancelled.

Each function takes the instance data (a dict the state may change in place: ``.var``
for a getter) and returns the state's :class:`Next` (the transform and transition the
engine applies after it), or raises :class:`.errors.DirektivError`. The wording and
codes of the errors are Direktiv v0.10's (``pkg/flow/states/*.go``,
``pkg/flow/states/helpers.go``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from . import expressions
from ._gofmt import go_sprint
from .errors import INTERNAL, NOT_STRING, SCHEMA_FAILED, DirektivError
from .variables import check_key

if TYPE_CHECKING:
    from .model import GetVar, SetVar, State
    from .variables import Variables

__all__ = [
    "CancelScope",
    "Next",
    "apply_transform",
    "go_sprintf",
    "render_log",
    "run_delay",
    "run_error",
    "run_getter",
    "run_setter",
    "run_switch",
    "run_validate",
]


@dataclass(frozen=True, slots=True)
class Next:
    """What a state's logic decided: the transform to apply (None: none) and the next
    state (None: the instance ends)."""

    transform: Any
    transition: str | None


class CancelScope:
    """The events of one state visit's running work (a delay, each function call): all
    set at once when the instance is stopped or times out. An event made after the
    scope was cancelled is born set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[threading.Event] = []
        self._cancelled = False

    def event(self) -> threading.Event:
        event = threading.Event()
        with self._lock:
            if self._cancelled:
                event.set()
            self._events.append(event)
        return event

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            events = list(self._events)
        for event in events:
            event.set()


def render_log(tree: Any, data: Any) -> str:
    """A state's ``log`` as the instance log shows it: a string as is, anything else as
    indented JSON (engine.go runState: ``json.MarshalIndent`` then ``"`` trimmed)."""
    value = expressions.evaluate(tree, data)
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def apply_transform(tree: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The data after ``transform`` (None, ``""`` and ``"."`` are none); its errors
    keep their code, the message prefixed as engine.go's transformState words it."""
    if tree is None or (isinstance(tree, str) and tree.strip() in ("", ".")):
        return data
    try:
        return expressions.evaluate_object(tree, data)
    except DirektivError as exc:
        raise DirektivError(
            exc.code, f"unable to apply transform: {exc.message}", catchable=exc.catchable
        ) from exc


def _key(tree: Any, data: Any, index: int, *, check: bool = True) -> str:
    key = expressions.evaluate(tree, data)
    if not isinstance(key, str) or not key:
        raise DirektivError(
            NOT_STRING, f"failed to evaluate key as a string for variable at index [{index}]"
        )
    return check_key(key) if check else key


def run_getter(
    state: State, data: dict[str, Any], variables: Variables
) -> tuple[Next, list[tuple[str, str]]]:
    """Read the state's variables into a new ``.var`` (getter.go); also the
    ``(scope, key)`` pairs read from the store (not ``system``), whose versions now
    guard this instance's later writes of them."""
    values: dict[str, Any] = {}
    reads: list[tuple[str, str]] = []
    entries: Sequence[GetVar] = state.variables  # type: ignore[assignment]
    for index, entry in enumerate(entries):
        key = _key(entry.key, data, index, check=entry.scope != "system")
        values[entry.as_ or key] = variables.get(entry.scope, key)
        if entry.scope != "system":
            reads.append((entry.scope, key))
    data["var"] = values
    return Next(state.transform, state.transition), reads


def run_setter(state: State, data: dict[str, Any], variables: Variables) -> Next:
    """Evaluate every key, mimeType and value first, then write them all at once
    (setter.go; one transaction in ``SetVariables``). A failed version guard raises
    :class:`.errors.VarConflict` with nothing written: the engine decides what then."""
    writes = []
    entries: Sequence[SetVar] = state.variables  # type: ignore[assignment]
    for index, entry in enumerate(entries):
        key = _key(entry.key, data, index)
        mime = ""
        if entry.mime_type is not None:
            evaluated = expressions.evaluate(entry.mime_type, data)
            mime = evaluated if isinstance(evaluated, str) else ""
        value = expressions.evaluate(entry.value, data)
        # The literal mimeType (as written) picks the encoding, as setter.go does.
        writes.append(
            variables.plan_set(entry.scope, key, value, mime, mime_literal=entry.mime_type)
        )
    variables.write(writes)
    return Next(state.transform, state.transition)


def run_switch(state: State, data: dict[str, Any]) -> Next:
    """The first condition that is true picks the transform and transition, else the
    defaults (switch.go). A condition that cannot be evaluated is not catchable
    (switch.go wraps it as an internal error)."""
    for index, condition in enumerate(state.conditions):
        try:
            value = expressions.evaluate(condition.condition, data)
        except DirektivError as exc:
            raise DirektivError(
                INTERNAL,
                f"switch condition {index} condition failed to run: {exc.message}",
                catchable=False,
            ) from exc
        if expressions.truthy(value):
            return Next(condition.transform, condition.transition)
    return Next(state.default_transform, state.default_transition)


def run_delay(state: State, cancel: threading.Event) -> Next:
    """Wait ``duration`` (cut short when the visit is cancelled; the engine then says
    why)."""
    cancel.wait(max(0.0, state.duration_sec))
    return Next(state.transform, state.transition)


def run_error(state: State, data: dict[str, Any]) -> tuple[Next, DirektivError]:
    """The error an ``error`` state raises: its ``message`` (evaluated; a non-string as
    Go's ``%v``) formatted with its evaluated ``args`` as Go's ``fmt.Sprintf`` does
    (error.go). The engine marks the instance failed with it and goes on to the
    transition — Direktiv's error state does not stop the instance (status.go
    ``InstanceRaise``; tests/engine/error-state.test.js)."""
    args = [expressions.evaluate(arg, data) for arg in state.args]
    value = expressions.evaluate(state.message, data)
    message = value if isinstance(value, str) else go_sprint(value)
    error = DirektivError(state.error, go_sprintf(message, args))
    return Next(state.transform, state.transition), error


def run_validate(state: State, data: dict[str, Any]) -> Next:
    """Check ``subject`` (default: the whole data) against ``schema`` (validate.go),
    failing with ``direktiv.schema.failed`` and the first problem's path."""
    import jsonschema  # type: ignore[import-untyped]

    subject = data if state.subject is None else expressions.evaluate(state.subject, data)
    try:
        cls = jsonschema.validators.validator_for(state.schema)
        validator = cls(state.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(subject))
    except jsonschema.exceptions.SchemaError as exc:
        raise DirektivError(INTERNAL, f"invalid schema: {exc.message}", catchable=False) from exc
    if error is not None:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise DirektivError(
            SCHEMA_FAILED,
            f"subject failed its JSONSchema validation: {path or '.'}: {error.message}",
        )
    return Next(state.transform, state.transition)


# --- Go's fmt.Sprintf, as far as an error state's message needs it ------------------

_VERB: Final = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")


def go_sprintf(template: str, args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprintf`` for the verbs an error message uses: ``%v`` ``%s`` ``%d``
    ``%f`` ``%q`` ``%%``; a missing argument is ``%!v(MISSING)``, extra ones are
    appended as ``%!(EXTRA …)``, as Go does."""
    out: list[str] = []
    used = 0
    pos = 0
    for match in _VERB.finditer(template):
        out.append(template[pos : match.start()])
        pos = match.end()
        verb = match.group(4)
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[used]
        used += 1
        out.append(_go_verb(verb, arg, match.group(3)))
    out.append(template[pos:])
    if used < len(args):
        extra = ", ".join(f"{_go_type(a)}={go_sprint(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _go_type(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _go_verb(verb: str, arg: Any, precision: str | None) -> str:
    number = isinstance(arg, int | float) and not isinstance(arg, bool)
    if verb == "d" and number and float(arg).is_integer():
        return str(int(arg))
    if verb == "f" and number:
        return f"{float(arg):.{int(precision) if precision else 6}f}"
    if verb == "q" and isinstance(arg, str):
        return json.dumps(arg, ensure_ascii=False)
    if verb in ("v", "s") and (verb == "v" or isinstance(arg, str) or not number):
        return go_sprint(arg)
    return f"%!{verb}({_go_type(arg)}={go_sprint(arg)})"
