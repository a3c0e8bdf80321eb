"""Run one Direktiv workflow instance: :func:`run_workflow`.

The instance's data starts as its input wrapped as Direktiv wraps it (an object as is,
any other JSON value as ``{"input": value}`` — engine.go ``unmarshalInstanceInputData``)
and flows from state to state. Each visit of a state, in Direktiv's order (engine.go
``runState``): its ``log`` (kept as the state's log and shown as the step's message),
its logic (:mod:`._states`, :mod:`._actions`), its ``transform`` (which replaces the
data), then its transition; no transition ends the instance.

Errors. A catchable error puts ``.error = {"code", "msg"}`` in the data and moves to
the first ``catch`` entry whose pattern (a lone ``*`` matches any code; else an
unanchored regular expression) matches the code — to its ``transition``, or, with
none, to the end of an instance that then *succeeds* (tests/engine/catch.test.js). No match, or an
uncatchable error, ends the instance ``failed`` with ``error`` = ``code: message``. An
``error`` state does not stop the instance: it marks it failed with its code and
message and goes on to its transition (status.go ``InstanceRaise``); a second one is
the catchable ``direktiv.workflow.multipleErrors``.

No lost updates. A getter's read of a variable guards this instance's later writes of
it (:class:`.variables.Variables` keeps the version read). When a setter's guarded
write fails (:class:`.errors.VarConflict`: another instance wrote first, nothing was
written), the engine takes, for each conflicting variable, the latest getter visit
that read it, and the earliest of those. If every state visited since that getter
(itself included) is in :data:`.model.PURE_STATE_TYPES` — no function was called — and
no setter committed a write since, the instance data is put back as it was when that
getter was entered and the instance jumps back to it, after a short random wait
(exponential from 2 ms, capped at 100 ms, full jitter), at most
:data:`MAX_SEGMENT_RERUNS` times in a row; the setter's step record says ``retrying``
and why. A setter that committed is a barrier: running the states before it again
would repeat its writes. Otherwise (an action ran or a setter wrote in between, or the
attempts ran out) the conflict is the catchable error ``statebox.var.conflict``.

Timeouts. ``timeouts.interrupt`` is delivered to the running state as the catchable
``direktiv.cancels.timeout.soft`` ("operation timed out"); ``timeouts.kill`` (default:
five minutes after ``interrupt``, as engine.go schedules it) ends the instance
``failed`` with ``direktiv.cancels.timeout.hard``. Both stop a running function. Unlike
Direktiv, no timeout applies when the file sets none. ``stop`` (SIGTERM / SIGINT to
``statebox run``) stops the running function and ends the instance ``aborted``.

The run record (``dag`` = the workflow's name, ``input``, ``output`` = the final data)
has one step per state *visit*; it is saved at the start, after visits (at most every
:data:`._instance.SAVE_INTERVAL`), and at the end, with the workflow's retention. An
input or output whose JSON is over :data:`._instance.RECORD_DATA_MAX` bytes is kept as
a string saying so, and a record with too many visits to fit the store's value limit
is saved with its latest ones (:class:`._instance.RecordSaver`): a record never stays
``running`` for its size. The instance scope (statebox's ``run`` scope, namespace = the
instance id) is deleted at the end. A variable of a secret keyspace reaches the data as
it is (Direktiv has no masking: variables are data); the instance's masker
(:mod:`..masking`) keeps it out of the record, the logs and the display.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from ...core.errors import quoted
from ...core.model import RunContext
from .._context import (
    check_run_id,
    describe,
    end_run_scope,
    new_run_id,
    now_iso,
    refuse_taken_run_id,
)
from ..masking import Masker, masked_display
from ..records import RunRecord, RunRecords, StepRecord, retention_ttl
from . import _states
from ._instance import (
    RECORD_DATA_MAX,
    Halt,
    RecordSaver,
    Screen,
    StepLog,
    function_env,
    record_data,
    short_json,
    wrap_input,
)
from ._segments import Segments
from .errors import (
    CANCELLED,
    HARD_TIMEOUT,
    INTERNAL,
    MULTIPLE_ERRORS,
    TIMEOUT,
    DirektivError,
    VarConflict,
    code_matches,
)
from .variables import Variables

if TYPE_CHECKING:
    from ...store import StateStore
    from ..executor import RunOptions
    from .model import State, Workflow

__all__ = ["MAX_SEGMENT_RERUNS", "run_workflow"]

#: How many times in a row a getter→setter segment is run again after a conflict.
MAX_SEGMENT_RERUNS: Final = 100


def run_workflow(
    wf: Workflow,
    store: StateStore,
    options: RunOptions,
    *,
    stop: threading.Event | None = None,
) -> RunRecord:
    """Run one instance of ``wf`` to its end; its run record (see the module's text)."""
    return _Instance(wf, store, options, stop).execute()


class _Finished(Exception):
    def __init__(self, status: str, error: str | None) -> None:
        super().__init__(error)
        self.status, self.error = status, error


class _Instance:
    def __init__(
        self,
        wf: Workflow,
        store: StateStore,
        options: RunOptions,
        stop: threading.Event | None,
    ) -> None:
        self.wf, self.store, self.options = wf, store, options
        self.run_id = check_run_id(options.run_id) if options.run_id else new_run_id()
        #: The secrets the instance read or wrote (:mod:`..masking`): the instance's data
        #: holds them as they are, its record, logs and display never.
        self.masker = Masker()
        self.records = RunRecords(store, self.masker)
        self.ttl = retention_ttl(wf.hist_retention_days)
        self.data = wrap_input(copy.deepcopy(options.input))
        self.data_limit = min(RECORD_DATA_MAX, store.json_limit // 4)
        self.saver = RecordSaver(self.records, self.ttl)
        self.record = RunRecord(
            run_id=self.run_id,
            dag=wf.name,
            root_dag=wf.name,
            root_run_id=self.run_id,
            parent_run_id=None,
            file=wf.path,
            params=[],
            status="running",
            started_at=now_iso(),
            input=record_data(self.data, "input", self.data_limit),
        )
        self.show = Screen(masked_display(options.display, self.masker))
        self.halt = Halt(stop)
        self.logs = StepLog(self.records, self.run_id, self.ttl)
        self.variables = Variables(
            store, workflow=wf.name, instance_id=self.run_id, masker=self.masker
        )
        self.env = function_env(wf, self.run_id, options.store_url)
        #: The error an ``error`` state raised (the instance ends failed with it).
        self.raised: DirektivError | None = None
        self.segments = Segments()
        self.async_calls: list[threading.Thread] = []

    # -- the instance, start to end ----------------------------------------------------

    def execute(self) -> RunRecord:
        clock = time.monotonic()
        record = self.record
        if self.options.run_id:
            refuse_taken_run_id(self.records, self.run_id)
        self.saver.save(record)
        self.show("run_started", self.wf.name, self.run_id)
        self.halt.start(self.wf.interrupt_sec, self.wf.kill_sec)
        try:
            self._run_states()
            if self.raised is not None:
                record.status = "failed"
                record.error = f"{self.raised.code}: {self.raised.message}"
            else:
                record.status = "succeeded"
        except _Finished as end:
            record.status, record.error = end.status, end.error
        except Exception as exc:  # a defect: still a finished record
            record.status, record.error = "failed", describe(exc)
        finally:
            self.halt.close()
            for thread in self.async_calls:
                thread.join()
            context = RunContext(dag=self.wf.name, root_dag=self.wf.name, run_id=self.run_id)
            end_run_scope(self.store, context, record)
            if record.status == "running":  # BaseException (KeyboardInterrupt) passing
                record.status = "aborted"
            record.output = record_data(self.data, "output", self.data_limit)
            record.finished_at = now_iso()
            self.saver.save(record)
            self.show(
                "run_finished", self.wf.name, self.run_id, record.status, time.monotonic() - clock
            )
        return record

    def _run_states(self) -> None:
        state_id: str | None = self.wf.start
        while state_id is not None:
            self._check_halt()
            state = self.wf.state(state_id)
            if state is None:
                raise _Finished(
                    "failed",
                    f"{INTERNAL}: workflow {self.wf.name} cannot resolve state: {state_id}",
                )
            state_id = self._visit(state)

    def _check_halt(self) -> None:
        if self.halt.stopped:
            raise _Finished("aborted", None)
        if self.halt.killed:
            raise _Finished("failed", f"{HARD_TIMEOUT}: workflow timed out")

    # -- one visit ---------------------------------------------------------------------

    def _visit(self, state: State) -> str | None:
        number = self.segments.enter(state.type)
        entered = copy.deepcopy(self.data) if state.type == "getter" else None
        step = StepRecord(
            name=state.id, id=state.id, status="running", attempts=1, started_at=now_iso()
        )
        self.record.steps.append(step)
        clock = time.monotonic()
        self.show("step_changed", state.id, "running")
        scope = self.halt.new_scope()
        try:
            nxt = self._logic(state, step, scope, number, entered)
            if self.halt.take_soft():
                raise DirektivError(TIMEOUT, "operation timed out")
        except VarConflict as conflict:
            target = self.segments.target(conflict.keys, MAX_SEGMENT_RERUNS)
            if target is not None and not self.halt.soft_pending:
                return self._rerun(step, conflict, target, clock)
            error: DirektivError = self._exhausted(conflict, target)
        except DirektivError as exc:
            error = exc
        except Exception as exc:
            error = DirektivError(INTERNAL, describe(exc), catchable=False)
        else:
            if not (self.halt.stopped or self.halt.killed):
                if state.type == "setter":
                    self.segments.wrote()
                self._end_step(step, "failed" if step.error else "succeeded", clock)
                return nxt.transition
            error = DirektivError(CANCELLED, "cancelled: the instance is stopping")
        return self._failed(state, step, clock, self._halt_error(error))

    def _logic(
        self,
        state: State,
        step: StepRecord,
        scope: _states.CancelScope,
        number: int,
        entered: dict[str, Any] | None,
    ) -> _states.Next:
        data = self.data
        if state.log is not None:
            text = _states.render_log(state.log, data)
            self.logs.add(state.id, text)
            self.show("step_changed", state.id, "running", message=text)
        kind = state.type
        if kind == "noop":
            nxt = _states.Next(state.transform, state.transition)
        elif kind == "getter":
            nxt, reads = _states.run_getter(state, data, self.variables)
            if entered is not None:
                self.segments.read(reads, number, state.id, entered)
        elif kind == "setter":
            nxt = _states.run_setter(state, data, self.variables)
        elif kind == "switch":
            nxt = _states.run_switch(state, data)
        elif kind == "delay":
            nxt = _states.run_delay(state, scope.event())
        elif kind == "validate":
            nxt = _states.run_validate(state, data)
        elif kind == "error":
            nxt, raised = _states.run_error(state, data)
            if self.raised is not None:
                raise DirektivError(
                    MULTIPLE_ERRORS, "the workflow instance tried to throw multiple errors"
                )
            self.raised = raised
            step.error = f"{raised.code}: {raised.message}"
        elif kind in ("action", "foreach", "parallel"):
            from . import _actions  # files, /var and functions: only when a state calls one

            services = _actions.ActionServices(
                self.wf, self.variables, {**self.env, "STATEBOX_STEP": state.id}, self.logs.add
            )
            nxt = _states.Next(state.transform, state.transition)
            if kind == "action":
                assert state.action is not None
                if state.async_:
                    data_copy = copy.deepcopy(data)
                    stop = self.halt.async_stop
                    self.async_calls.append(_actions.start_async(services, state, data_copy, stop))
                    result: Any = None
                else:
                    result = _actions.call_action(
                        services, state, state.action, data, scope.event()
                    )
                    data["return"] = result
            elif kind == "foreach":
                result = _actions.run_foreach(services, state, data, scope)
                if result is not None:
                    data["return"] = result
            else:
                result = data["return"] = _actions.run_parallel(services, state, data, scope)
            if not state.async_:
                step.output = short_json(result)
        else:
            raise DirektivError(INTERNAL, f"cannot resolve state type: {kind}", catchable=False)
        self.data = _states.apply_transform(nxt.transform, self.data)
        return nxt

    def _failed(
        self, state: State, step: StepRecord, clock: float, error: DirektivError
    ) -> str | None:
        text = f"{error.code}: {error.message}"
        if self.halt.stopped:
            self._end_step(step, "aborted", clock, text)
            raise _Finished("aborted", None)
        if error.catchable:
            self.data["error"] = error.as_data()
            for catch in state.catch:
                if code_matches(catch.error, error.code):
                    self._end_step(step, "failed", clock, text)
                    self._check_halt()
                    return catch.transition
        self._end_step(step, "failed", clock, text)
        raise _Finished("failed", text)

    def _halt_error(self, error: DirektivError) -> DirektivError:
        """What a cancelled visit failed with: the reason it was cancelled, not the
        error its stopped function gave."""
        if self.halt.killed:
            return DirektivError(HARD_TIMEOUT, "workflow timed out", catchable=False)
        if self.halt.take_soft():
            return DirektivError(TIMEOUT, "operation timed out")
        return error

    # -- no lost updates ---------------------------------------------------------------

    def _rerun(self, step: StepRecord, conflict: VarConflict, target: int, clock: float) -> str:
        getter, data, delay = self.segments.rewind(target)
        self._end_step(
            step,
            "retrying",
            clock,
            f"conflict on {_key_list(conflict.keys)}: running the states from getter "
            f"{getter} again (attempt {self.segments.reruns} of {MAX_SEGMENT_RERUNS})",
        )
        self.data = data
        self.halt.sleep(delay)
        self._check_halt()
        return getter

    def _exhausted(self, conflict: VarConflict, target: int | None) -> DirektivError:
        reruns, self.segments.reruns = self.segments.reruns, 0
        if target is None and reruns >= MAX_SEGMENT_RERUNS:
            message = (
                f"{conflict.message} (the states since the getter were run "
                f"{MAX_SEGMENT_RERUNS} times)"
            )
            return VarConflict(conflict.keys, message)
        return conflict

    # -- what a visit shares -----------------------------------------------------------

    def _end_step(
        self, step: StepRecord, status: str, clock: float, error: str | None = None
    ) -> None:
        step.status, step.finished_at = status, now_iso()
        if error is not None:
            step.error = error
        self.saver.save_due(self.record)
        self.show(
            "step_changed",
            step.name,
            status,
            duration=time.monotonic() - clock,
            message=step.error,
        )


def _key_list(keys: list[tuple[str, str]]) -> str:
    return ", ".join(f"{scope} variable {quoted(key)}" for scope, key in keys)
