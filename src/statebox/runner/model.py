"""A DAG as the runner executes it: the parsed, validated form of a Dagu DAG file.

The loader (:mod:`.loader`) builds these from YAML (snake_case keys, the older camelCase
spellings accepted with a warning) and checks them; the executor (:mod:`.executor`) runs
them. Everything here is plain data: no I/O, no YAML.

Values inside ``with``, ``env``, ``params`` and ``run`` are kept as written (strings with
``${…}`` references unrendered); :mod:`.refs` renders them when a step starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "DAG",
    "ContinueOn",
    "HandlerOn",
    "Precondition",
    "RepeatPolicy",
    "RetryPolicy",
    "Step",
    "Where",
    "DEFAULT_HIST_RETENTION_DAYS",
    "DEFAULT_MAX_OUTPUT_SIZE",
    "DEFAULT_MAX_ACTIVE_STEPS",
]

#: Dagu's default ``max_output_size``: 1 MiB of a step's standard output.
DEFAULT_MAX_OUTPUT_SIZE: Final = 1 << 20
#: How many steps of one run may run at once when the DAG does not say.
DEFAULT_MAX_ACTIVE_STEPS: Final = 8
#: Dagu's default ``hist_retention_days``: run records are kept 30 days.
DEFAULT_HIST_RETENTION_DAYS: Final = 30.0


@dataclass(frozen=True, slots=True)
class Where:
    """A place in a DAG file, for messages: ``file:line:column`` (1-based)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Precondition:
    """A precondition: a shell command (met on exit 0) when ``expected`` is None, else
    ``condition`` (rendered) compared line by line with ``expected`` (``re:`` = an
    unanchored regular expression); ``negate`` inverts the outcome."""

    condition: str
    expected: str | None = None
    negate: bool = False
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    limit: int = 0
    interval_sec: float = 0.0
    #: Exit codes that are retried; empty: any non-zero exit code.
    exit_code: tuple[int, ...] = ()
    #: The factor the interval grows by after each attempt (1.0: constant; Dagu's
    #: ``backoff: true`` is 2.0).
    backoff: float = 1.0
    max_interval_sec: float | None = None

    def wait(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        return _grown(self.interval_sec, self.backoff, self.max_interval_sec, attempt)


@dataclass(frozen=True, slots=True)
class RepeatPolicy:
    """Run the step again: ``while`` the condition holds / exit code matches, or
    ``until`` it does; at most ``limit`` times in all when set."""

    mode: Literal["while", "until"]
    condition: str | None = None
    expected: str | None = None
    exit_code: tuple[int, ...] = ()
    interval_sec: float = 0.0
    limit: int | None = None
    backoff: float = 1.0
    max_interval_sec: float | None = None

    def wait(self, execution: int) -> float:
        """Seconds to wait after execution number ``execution`` (1 after the first)."""
        return _grown(self.interval_sec, self.backoff, self.max_interval_sec, execution)


def _grown(interval: float, backoff: float, cap: float | None, n: int) -> float:
    """The ``n``-th wait (1-based) of a policy: ``interval``, times ``backoff`` for each
    wait before it, at most ``cap``."""
    seconds = interval * backoff ** (n - 1)
    return seconds if cap is None else min(seconds, cap)


@dataclass(frozen=True, slots=True)
class ContinueOn:
    """When a dependant may still run after this step did not succeed."""

    failure: bool = False
    skipped: bool = False
    exit_code: tuple[int, ...] = ()
    #: Output patterns (``re:`` allowed) that let the run continue.
    output: tuple[str, ...] = ()
    #: Record the step as succeeded when it continued.
    mark_success: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    id: str | None
    #: Defaults to ``id`` (the loader fills it; a step has one or the other).
    name: str
    #: A shell command, or a list of them run in order (``command``/``script`` too).
    run: tuple[str, ...] = ()
    #: ``script:``: a script body run by the shell.
    script: str | None = None
    #: ``state.get``, ``lease.acquire``, ``dag.run``, … (``call:`` is ``dag.run``).
    action: str | None = None
    #: The action's fields, as written (references unrendered).
    with_: dict[str, Any] = field(default_factory=dict)
    #: Name of the variable that captures the step's standard output.
    output: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    shell: str | None = None
    timeout_sec: float | None = None
    #: Names (ids or names) of the steps this one depends on, resolved to step names.
    depends: tuple[str, ...] = ()
    preconditions: tuple[Precondition, ...] = ()
    retry_policy: RetryPolicy | None = None
    continue_on: ContinueOn = field(default_factory=ContinueOn)
    repeat_policy: RepeatPolicy | None = None
    where: Where | None = None

    @property
    def ref(self) -> str:
        """How references and records name it: the id, else the name."""
        return self.id or self.name


@dataclass(frozen=True, slots=True)
class HandlerOn:
    success: Step | None = None
    failure: Step | None = None
    abort: Step | None = None
    exit: Step | None = None


@dataclass(frozen=True, slots=True)
class DAG:
    name: str
    #: The DAG file (absolute), or None for a DAG built in code.
    path: str | None
    steps: tuple[Step, ...]
    #: Parameters as declared: (name or None for a positional one, default value).
    params: tuple[tuple[str | None, str], ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    dotenv: tuple[str, ...] = ()
    #: Defaults to the DAG file's directory.
    working_dir: str | None = None
    shell: str | None = None
    type: Literal["graph", "chain"] = "graph"
    preconditions: tuple[Precondition, ...] = ()
    handler_on: HandlerOn = field(default_factory=HandlerOn)
    max_output_size: int = DEFAULT_MAX_OUTPUT_SIZE
    max_active_steps: int = DEFAULT_MAX_ACTIVE_STEPS
    #: Cron expressions (``schedule:``, a string or a list).
    schedule: tuple[str, ...] = ()
    max_active_runs: int = 1
    overlap_policy: Literal["skip", "all", "latest"] = "skip"
    #: Days a run's record and step logs are kept after each save of them (they expire
    #: then, on every machine sharing the store). As in Dagu, 0 means the default.
    hist_retention_days: float = DEFAULT_HIST_RETENTION_DAYS
    #: Seconds after which the whole run is stopped and recorded ``failed`` (None: no limit).
    timeout_sec: float | None = None
    #: statebox's own: a ``with`` value that is exactly one reference keeps its JSON type.
    typed_references: bool = False
    where: Where | None = None

    def step(self, ref: str) -> Step | None:
        """The step with this id or name."""
        for step in self.steps:
            if ref in (step.id, step.name):
                return step
        return None
