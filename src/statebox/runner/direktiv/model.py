"""A Direktiv workflow as the runner executes it: the parsed, validated form of a
workflow file written for Direktiv v0.10 (``states:``, not Dagu's ``steps:``).

The loader (:mod:`.loader`) builds these from YAML and checks them; the engine
(:mod:`.engine`) runs them. Everything here is plain data: no I/O, no YAML. Expressions
(``jq(...)`` in strings, maps and lists) are kept as written; :mod:`.expressions`
evaluates them when a state runs.

Scopes are kept in Direktiv's words (``instance``, ``workflow``, ``namespace``,
``system``); :mod:`.variables` maps them to statebox's (``run``, ``dag``, ``global``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..model import DEFAULT_HIST_RETENTION_DAYS, Where

__all__ = [
    "DEFAULT_ACTION_TIMEOUT_SEC",
    "PURE_STATE_TYPES",
    "STATE_TYPES",
    "Action",
    "Catch",
    "Condition",
    "FileSpec",
    "Function",
    "GetVar",
    "Retries",
    "SetVar",
    "State",
    "Workflow",
]

#: The state types statebox runs.
STATE_TYPES: Final = (
    "noop",
    "getter",
    "setter",
    "switch",
    "action",
    "delay",
    "error",
    "validate",
    "foreach",
    "parallel",
)
#: States with no side effect outside the instance's variables: a segment of them from
#: a getter to a setter may be run again when the setter's version guard fails.
PURE_STATE_TYPES: Final = frozenset({"getter", "setter", "noop", "switch", "validate", "delay"})
#: Direktiv's default action timeout (15 minutes).
DEFAULT_ACTION_TIMEOUT_SEC: Final = 15 * 60.0


@dataclass(frozen=True, slots=True)
class Catch:
    """``catch: [{error, transition}]``: ``error`` is the pattern as written (a lone
    ``*`` matches any code, else an unanchored regular expression, as Direktiv reads it:
    :func:`.errors.code_matches`)."""

    error: str
    transition: str | None = None
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class Retries:
    """An action's ``retries``: ``codes`` are patterns (as in :class:`Catch`) of the
    error codes retried; ``max_attempts`` retries at most; ``delay_sec`` before the
    first, times ``multiplier`` for each one after."""

    max_attempts: int
    codes: tuple[str, ...]
    delay_sec: float = 0.0
    multiplier: float = 1.0


@dataclass(frozen=True, slots=True)
class FileSpec:
    """An action's ``files`` entry: the variable ``key`` of ``scope`` written in the
    action's temp directory as ``as_`` (default: ``key``), of ``type`` ``plain``,
    ``base64``, ``tar`` or ``tar.gz``, with ``permissions`` (octal, as written: ``"0755"``)."""

    key: str
    scope: str = "instance"
    as_: str | None = None
    type: Literal["plain", "base64", "tar", "tar.gz"] = "plain"
    permissions: int | None = None
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """``action:`` (and each of a ``parallel`` state's ``actions``): the function called
    with ``input`` (an expression tree; None: the whole instance data)."""

    function: str
    input: Any = None
    secrets: tuple[str, ...] = ()
    retries: Retries | None = None
    files: tuple[FileSpec, ...] = ()
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class Function:
    """A ``functions:`` entry. statebox runs ``cmd`` (a shell command line, ``sh -c``)
    or calls ``url`` (Direktiv's function protocol over HTTP); ``type`` and ``image``,
    Direktiv's own, may stand beside them and are kept for messages."""

    id: str
    cmd: str | None = None
    url: str | None = None
    type: str | None = None
    image: str | None = None
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class GetVar:
    """A getter's ``variables`` entry: ``key`` (a name, or an expression that yields
    one), ``scope``, and ``as_`` (the name under ``.var``; default: the key)."""

    key: Any
    scope: str
    as_: str | None = None
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class SetVar:
    """A setter's ``variables`` entry: ``key`` and ``value`` (expressions; a literal
    ``value: null`` deletes), ``scope``, and ``mime_type`` (an expression; None: JSON)."""

    key: Any
    scope: str
    value: Any = None
    mime_type: Any = None
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """A switch state's ``conditions`` entry."""

    condition: Any
    transform: Any = None
    transition: str | None = None
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class State:
    """One state. The common fields first; then each type's own (left at their defaults
    by the other types)."""

    id: str
    type: str
    log: Any = None
    #: ``transform``: an expression tree whose result (an object) replaces the data;
    #: None, ``""`` or ``"."``: none.
    transform: Any = None
    #: The next state's id; None: the instance ends here.
    transition: str | None = None
    catch: tuple[Catch, ...] = ()
    metadata: Any = None
    where: Where | None = None
    # getter / setter
    variables: tuple[GetVar, ...] | tuple[SetVar, ...] = ()
    # switch
    conditions: tuple[Condition, ...] = ()
    default_transform: Any = None
    default_transition: str | None = None
    # action / foreach (``action``), parallel (``actions``, ``mode``)
    action: Action | None = None
    actions: tuple[Action, ...] = ()
    mode: Literal["and", "or"] = "and"
    #: foreach: the expression yielding the array.
    array: Any = None
    #: action / foreach / parallel: seconds before the state's actions are stopped.
    timeout_sec: float = DEFAULT_ACTION_TIMEOUT_SEC
    async_: bool = False
    # delay
    duration_sec: float = 0.0
    # error
    error: str = ""
    message: str = ""
    args: tuple[Any, ...] = ()
    # validate
    subject: Any = None
    schema: Any = None


@dataclass(frozen=True, slots=True)
class Workflow:
    """A Direktiv workflow file. ``name`` is the file's name without its extension (the
    ``workflow`` scope's namespace); ``start`` the first state's id (``start.state``,
    else the first state). ``schedule`` holds ``start.cron`` of a ``scheduled`` start.

    ``max_active_runs``, ``overlap_policy`` and ``hist_retention_days`` are what
    ``statebox schedule`` asks of any workflow: Direktiv starts every occurrence
    (no limit, none skipped)."""

    name: str
    path: str | None
    states: tuple[State, ...]
    start: str
    functions: dict[str, Function] = field(default_factory=dict)
    description: str | None = None
    direktiv_api: str | None = None
    schedule: tuple[str, ...] = ()
    #: ``timeouts.interrupt`` / ``timeouts.kill`` in seconds (None: none).
    interrupt_sec: float | None = None
    kill_sec: float | None = None
    max_active_runs: int = 0
    overlap_policy: Literal["skip", "all", "latest"] = "all"
    hist_retention_days: float = DEFAULT_HIST_RETENTION_DAYS
    where: Where | None = None

    def state(self, state_id: str) -> State | None:
        for state in self.states:
            if state.id == state_id:
                return state
        return None
