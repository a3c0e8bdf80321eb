"""Run records and step logs, kept in the store itself: every machine that shares the
store (a PostgreSQL database, a server, a ``file://`` directory) sees the same runs.

Where they live — the reserved scope ``statebox`` (on a ``file://`` store under
``<dir>/statebox/v1/statebox/``, where Dagu never reads):

====================  ==============================  ===================================
namespace             key                             value
====================  ==============================  ===================================
``runs``              ``RUN_ID``                      the run's record (:class:`RunRecord`)
``logs``              ``RUN_ID/STEP/stdout|stderr``   ``{"run_id","step","stream","cut","text"}``
====================  ==============================  ===================================

A key segment is the run id or step name with ``%``, ``/``, ``\\``, ``~``, white space
and control characters percent-encoded (``load feed`` → ``load%20feed``), ``.`` and
``..`` as ``%2E`` and ``%2E%2E``; one longer than :data:`MAX_SEGMENT` bytes is cut and
ends with ``~`` and 16 hex digits of its SHA-256, so every key stays within the file
store's name limit. The runner's run ids are UUIDv7s: keys sort by start time.

Bounds. The executor keeps at most ``max_output_size`` of each log; here a log is also
cut to its last :data:`MAX_LOG_BYTES`, behind a marker line saying how much was cut, and
further if its JSON would not fit the store's value limit (1 MiB by default). A record
whose step outputs and errors would not fit is saved with the longest of them cut (the
full stdout stays in the step's log). Records and logs keep no history: a record is
saved many times while its run runs. Times are RFC 3339, UTC.

Retention. Saved with a ``ttl``, a record or log expires that many seconds after each
save of it, and is then gone for every machine sharing the store; the executor gives
the DAG's ``hist_retention_days`` (:func:`retention_ttl`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..core.errors import (
    CorruptEntryError,
    InvalidReferenceError,
    NotFoundError,
    ValueTooLargeError,
    quoted,
)
from ..core.model import Scope
from ._record_fields import (
    corrupt,
    integer_field,
    mapping_field,
    optional_text,
    seconds_between,
    started_ns,
    text_field,
)
from ._record_keys import (
    MAX_SEGMENT,
    SLACK,
    json_size,
    key_segment,
    log_key,
    marked,
    retention_ttl,
    shrunk,
    tail,
)

if TYPE_CHECKING:
    from ..store import StateStore
    from .masking import Masker

__all__ = [
    "LOGS_NAMESPACE",
    "MAX_LOG_BYTES",
    "MAX_SEGMENT",
    "RUNS_NAMESPACE",
    "RUN_STATUSES",
    "STEP_STATUSES",
    "SYSTEM_SCOPE",
    "RunRecord",
    "RunRecords",
    "StepRecord",
    "key_segment",
    "log_key",
    "retention_ttl",
]

STEP_STATUSES: Final = (
    "not_started",
    "running",
    "succeeded",
    "failed",
    "aborted",
    "skipped",
    "partially_succeeded",
    "retrying",
)
RUN_STATUSES: Final = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "aborted",
    "partially_succeeded",
)

SYSTEM_SCOPE: Final = Scope.SYSTEM.value
RUNS_NAMESPACE: Final = "runs"
LOGS_NAMESPACE: Final = "logs"
STREAMS: Final = ("stdout", "stderr")
#: The most of one log kept here (its tail), whatever the DAG's ``max_output_size``.
MAX_LOG_BYTES: Final = 1 << 20
# --- the records ------------------------------------------------------------------------


@dataclass
class StepRecord:
    """One step of a run: its status (:data:`STEP_STATUSES`), attempts, times, exit code,
    output (the captured value of ``output:``, or an action's JSON line) and error."""

    name: str
    id: str | None
    status: str = "not_started"
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    output: str | None = None
    error: str | None = None
    child_run_id: str | None = None

    @property
    def ref(self) -> str:
        """How references and logs name the step: its id, else its name."""
        return self.id or self.name

    def duration(self) -> float | None:
        """Seconds from start to finish, when both are known."""
        return seconds_between(self.started_at, self.finished_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "status": self.status,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "output": self.output,
            "error": self.error,
            "child_run_id": self.child_run_id,
        }

    @classmethod
    def from_json(cls, data: Any) -> StepRecord:
        fields = mapping_field(data, "a step")
        return cls(
            name=text_field(fields, "name", "a step"),
            id=optional_text(fields, "id"),
            status=text_field(fields, "status", "a step", "not_started"),
            attempts=integer_field(fields, "attempts") or 0,
            started_at=optional_text(fields, "started_at"),
            finished_at=optional_text(fields, "finished_at"),
            exit_code=integer_field(fields, "exit_code"),
            output=optional_text(fields, "output"),
            error=optional_text(fields, "error"),
            child_run_id=optional_text(fields, "child_run_id"),
        )


@dataclass
class RunRecord:
    """One run of a DAG: who started it (its root and parent runs), its params, its
    status (:data:`RUN_STATUSES`), times and steps."""

    run_id: str
    dag: str
    root_dag: str
    root_run_id: str
    parent_run_id: str | None
    file: str | None
    params: list[str]
    status: str
    started_at: str
    finished_at: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    error: str | None = None
    #: A Direktiv-form run's instance input and output data (JSON); None for a DAG's.
    input: Any = None
    output: Any = None

    def duration(self) -> float | None:
        """Seconds from start to finish; None while it runs."""
        return seconds_between(self.started_at, self.finished_at)

    def step(self, ref: str) -> StepRecord | None:
        """The step whose id is ``ref``, else the first whose name is."""
        for step in self.steps:
            if step.id == ref:
                return step
        for step in self.steps:
            if step.name == ref:
                return step
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dag": self.dag,
            "root_dag": self.root_dag,
            "root_run_id": self.root_run_id,
            "parent_run_id": self.parent_run_id,
            "file": self.file,
            "params": list(self.params),
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "steps": [step.to_json() for step in self.steps],
            **({"input": self.input, "output": self.output} if self.input is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """The record ``to_json`` gave (unknown fields are ignored); CorruptEntryError
        naming the field when it is not one."""
        fields = mapping_field(data, "a run record")
        run_id = text_field(fields, "run_id", "a run record")
        params = fields.get("params", [])
        steps = fields.get("steps", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise corrupt(f"run {quoted(run_id)}: params must be a list of strings")
        if not isinstance(steps, list):
            raise corrupt(f"run {quoted(run_id)}: steps must be a list")
        dag = text_field(fields, "dag", "a run record")
        return cls(
            run_id=run_id,
            dag=dag,
            root_dag=text_field(fields, "root_dag", "a run record", dag),
            root_run_id=text_field(fields, "root_run_id", "a run record", run_id),
            parent_run_id=optional_text(fields, "parent_run_id"),
            file=optional_text(fields, "file"),
            params=list(params),
            status=text_field(fields, "status", "a run record"),
            started_at=text_field(fields, "started_at", "a run record"),
            finished_at=optional_text(fields, "finished_at"),
            steps=[StepRecord.from_json(step) for step in steps],
            error=optional_text(fields, "error"),
            input=fields.get("input"),
            output=fields.get("output"),
        )


# --- the store --------------------------------------------------------------------------


class RunRecords:
    """Run records and step logs in ``store`` (scope ``statebox``); with ``masker``
    (the run's, :mod:`.masking`) the secrets it registered are masked in what is saved."""

    def __init__(self, store: StateStore, masker: Masker | None = None) -> None:
        from ..store import StateStore

        # The same backend, keeping no history: a record is saved many times per run.
        self._store = StateStore(
            store.backend,
            context=store.context,
            clock=store.clock,
            history_limit=0,
            json_limit=store.json_limit,
            binary_limit=store.binary_limit,
            jq_timeout=store.jq_timeout,
            update_attempts=store.update_attempts,
            purge_every=store.purge_every,
        )
        self._limit = store.json_limit
        self._masker = masker

    def save(self, record: RunRecord, *, ttl: float | None = None) -> None:
        """Save ``record`` (replacing what was saved of that run); with ``ttl`` it
        expires that many seconds from now (None: never)."""
        data = record.to_json()
        if self._masker:
            data = self._masker.mask_record(data)
        key = key_segment(record.run_id)
        try:
            self._store.set(key, data, scope=SYSTEM_SCOPE, namespace=RUNS_NAMESPACE, ttl=ttl)
            return
        except ValueTooLargeError:
            pass
        budget = self._limit - SLACK
        while True:
            data = shrunk(data, budget)
            try:
                self._store.set(key, data, scope=SYSTEM_SCOPE, namespace=RUNS_NAMESPACE, ttl=ttl)
                return
            except ValueTooLargeError:
                if budget < SLACK:  # what is left is no step's text: give up
                    raise
                budget //= 2

    def get(self, run_id: str) -> RunRecord:
        """The record of ``run_id``; NotFoundError naming it when there is none."""
        got = self._store.get(key_segment(run_id), scope=SYSTEM_SCOPE, namespace=RUNS_NAMESPACE)
        if not got.found:
            raise NotFoundError(f"no run {quoted(run_id)} in this store")
        return RunRecord.from_json(got.value)

    def list(self, dag: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first (by start time, then run id), of ``dag`` only when given;
        at most ``limit`` of them. A record that cannot be read is left out."""
        entries = self._store.list(
            scope=SYSTEM_SCOPE, namespace=RUNS_NAMESPACE, include_values=True
        ).entries
        records = []
        for entry in entries:
            try:
                record = RunRecord.from_json(entry.value)
            except (CorruptEntryError, ValueError):
                continue
            if dag is None or record.dag == dag:
                records.append(record)
        records.sort(key=lambda r: (started_ns(r.started_at), r.run_id), reverse=True)
        return records if limit is None else records[: max(limit, 0)]

    def save_log(
        self,
        run_id: str,
        step: str,
        text: str,
        *,
        stream: str = "stdout",
        ttl: float | None = None,
    ) -> None:
        """Keep ``text`` as the ``stream`` log of ``step`` (its name) in run ``run_id``:
        its last :data:`MAX_LOG_BYTES` at most, behind a marker when cut; with ``ttl``
        it expires that many seconds from now (None: never)."""
        _check_stream(stream)
        if self._masker:
            text = self._masker.mask(text)
        key = log_key(run_id, step, stream)
        kept, cut = tail(text, MAX_LOG_BYTES)
        budget = self._limit - SLACK
        while True:
            value = {
                "run_id": run_id,
                "step": step,
                "stream": stream,
                "cut": cut,
                "text": marked(kept, cut),
            }
            size = json_size(value)
            if size > budget and kept:  # mostly escapes: keep proportionally less
                smaller = int(len(kept.encode("utf-8")) * budget / size * 0.95)
                kept, more = tail(kept, smaller)
                cut += more
                continue
            try:
                self._store.set(key, value, scope=SYSTEM_SCOPE, namespace=LOGS_NAMESPACE, ttl=ttl)
                return
            except ValueTooLargeError:
                if budget < SLACK:
                    raise
                budget //= 2

    def log(self, run_id: str, step: str, *, stream: str = "stdout") -> str:
        """The ``stream`` log of ``step`` (its id or name) in run ``run_id``, as kept.
        A step run in-process (an action) keeps no log: its stdout is its output. ""
        when the step printed nothing (or has not run). NotFoundError naming the run,
        or the step, when there is no such."""
        _check_stream(stream)
        record = self.get(run_id)
        found = record.step(step)
        if found is None:
            raise NotFoundError(f"run {quoted(run_id)} ({record.dag}) has no step {quoted(step)}")
        for name in dict.fromkeys(n for n in (found.name, found.id) if n):
            got = self._store.get(
                log_key(run_id, name, stream), scope=SYSTEM_SCOPE, namespace=LOGS_NAMESPACE
            )
            if got.found:
                value = got.value
                if isinstance(value, Mapping) and isinstance(value.get("text"), str):
                    return str(value["text"])
                if isinstance(value, str):
                    return value
        if stream == "stdout" and found.output is not None:
            return found.output
        return ""


def _check_stream(stream: str) -> None:
    if stream not in STREAMS:
        raise InvalidReferenceError(
            f"invalid log stream {quoted(stream)}: must be stdout or stderr"
        )
