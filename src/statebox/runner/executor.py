"""Run one DAG: :func:`run_dag`.

A run has an id (:func:`new_run_id`, time-ordered, UUIDv7 form), a root DAG and a root
run id (a sub-DAG's are its parent's). Its steps run as a graph: a step starts when every
step it depends on has finished, independent steps in parallel (worker threads, at most
``max_active_steps`` at once; the store is thread-safe). A step whose dependency failed
is ``aborted``, one whose dependency was skipped ``skipped``, unless that dependency's
``continue_on`` lets it run. Outputs reach transitive dependants only (and handlers,
which see them all).

Every ``run`` step's environment: ``os.environ``, the ``dotenv`` files, the DAG's
``env`` (rendered in order, so a later entry may reference an earlier one), the named
params (as Dagu does), the outputs of the step's transitive dependencies, the step's own
``env``, then ``STATEBOX_DAG``, ``STATEBOX_ROOT_DAG``, ``STATEBOX_RUN_ID``,
``STATEBOX_STEP``, ``STATEBOX_STORE``, ``DAG_NAME``, ``DAG_RUN_ID``,
``DAG_RUN_STEP_NAME``, ``DAG_PARAMS_JSON`` (and Dagu's ``DAG_RUN_STEP_STDOUT_FILE`` /
``DAG_RUN_STEP_STDERR_FILE``), so a step that calls the ``statebox`` CLI needs no flags.

The run ends ``succeeded``, ``failed`` (a step failed and its ``continue_on`` did not let
the run go on), ``partially_succeeded`` (a step failed, ``continue_on`` let the run go
on, nothing else failed) or ``aborted`` (``stop`` was set — SIGTERM / SIGINT to
``statebox run`` — or the DAG's preconditions were not met). Then ``handler_on``:
``success`` / ``failure`` / ``abort`` by the outcome, then ``exit`` always; a failing
handler makes the run ``failed``. The ``run`` scope of the run (namespace = the run id)
is deleted when the run ends, whatever the outcome.

The run record (:class:`.records.RunRecord`) is saved when the run starts, after each
step finishes, and at the end; it and the step logs expire ``hist_retention_days`` after
each save of them. ``options.display`` hears of every change.

This module is the run's life, start to end; the steps' graph is :mod:`._step_graph`,
what the run knows as it goes and its record :mod:`._run_book`, one step
:mod:`._steps`, and what every step shares :mod:`._context`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..core.errors import InvalidRequestError, StateboxError, quoted
from ..core.model import RunContext
from . import conditions
from ._context import (
    ChildResult,
    RunScope,
    Visible,
    check_run_id,
    describe,
    end_run_scope,
    new_run_id,
    now_iso,
    prepare_scope,
    refuse_taken_run_id,
    resolve_params,
)
from ._process import Cancelled
from ._run_book import RunBook
from ._step_graph import drive
from .masking import Masker, masked_display
from .records import RunRecord, RunRecords, StepRecord, retention_ttl

if TYPE_CHECKING:
    from ..store import StateStore
    from .display import Display
    from .model import DAG, Step

__all__ = [
    "MAX_SUB_DAG_DEPTH",
    "ParentRun",
    "RunOptions",
    "new_run_id",
    "resolve_params",
    "run_dag",
]

#: How deep sub-DAGs may nest (a root run's child is at depth 1).
MAX_SUB_DAG_DEPTH: Final = 32


@dataclass
class RunOptions:
    """How to run: the store's URL (for the steps' ``STATEBOX_STORE``), the params as on
    the command line (``A B KEY=V``), the run id (else a new one), where sub-DAGs are
    looked for, the display, and where step logs go (else
    ``$STATEBOX_HOME/runs/<run_id>/``)."""

    store_url: str
    params: Sequence[str] = ()
    run_id: str | None = None
    dags_dir: str | None = None
    display: Display | None = None
    log_dir: str | None = None
    #: A Direktiv-form run's instance input (JSON data; None: ``{}``). A DAG has params.
    input: Any = None


@dataclass(frozen=True)
class ParentRun:
    """The run (and step) that started a sub-DAG's run. ``chain``: the DAGs from the
    root run's to this parent's, each as ``(name, file)`` (the file: its real path, or
    the name of a DAG that has none), so that a sub-DAG that calls itself is refused."""

    dag: str
    run_id: str
    root_dag: str
    root_run_id: str
    step: str | None = None
    chain: tuple[tuple[str, str], ...] = ()


def run_dag(
    dag: DAG,
    store: StateStore,
    options: RunOptions,
    *,
    parent: ParentRun | None = None,
    stop: threading.Event | None = None,
) -> RunRecord:
    """Run ``dag`` to its end; its run record. ``stop`` (set from a signal handler, or
    by a parent run) stops it: running steps are stopped, the abort and exit handlers
    run, the run is recorded ``aborted``. The record returned is the run's own (its
    steps' outputs as they saw them); what was saved has the secrets the run read
    masked (:mod:`.masking`)."""
    return _Run(dag, store, options, parent, stop).execute()


class _Run:
    def __init__(
        self,
        dag: DAG,
        store: StateStore,
        options: RunOptions,
        parent: ParentRun | None,
        stop: threading.Event | None,
        halt: threading.Event | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.dag, self.store, self.options = dag, store, options
        #: The secrets the run read, shared with its sub-DAGs' runs (:mod:`.masking`).
        self.masker = Masker() if masker is None else masker
        self.stop = stop if stop is not None else threading.Event()
        #: The root run's stop, which stops every run of the tree at once.
        self.halt = halt if halt is not None else self.stop
        #: This run's DAG and its ancestors' (see :class:`ParentRun`).
        self.chain = (*(parent.chain if parent else ()), (dag.name, _dag_file(dag)))
        self.run_id = check_run_id(options.run_id) if options.run_id else new_run_id()
        self.root_dag = parent.root_dag if parent else dag.name
        self.root_run_id = parent.root_run_id if parent else self.run_id
        self.records = RunRecords(store, self.masker)
        record = RunRecord(
            run_id=self.run_id,
            dag=dag.name,
            root_dag=self.root_dag,
            root_run_id=self.root_run_id,
            parent_run_id=parent.run_id if parent else None,
            file=dag.path,
            params=list(options.params),
            status="running",
            started_at=now_iso(),
            steps=[StepRecord(name=s.name, id=s.id) for s in dag.steps],
        )
        #: How long the run's record and logs are kept after each save (seconds).
        self.ttl = retention_ttl(dag.hist_retention_days)
        display = masked_display(options.display, self.masker)
        self.book = RunBook(record, self.records, display, ttl=self.ttl)
        self.record = record
        self.stopped = False
        #: The DAG's ``timeout_sec`` passed (and stopped the run).
        self.timed_out = False
        self.scope: RunScope | None = None

    # -- the run -----------------------------------------------------------------------

    def execute(self) -> RunRecord:
        clock = time.monotonic()
        record, book = self.record, self.book
        if self.options.run_id:
            refuse_taken_run_id(self.records, self.run_id)
        timer = None
        if self.dag.timeout_sec:
            timer = threading.Timer(self.dag.timeout_sec, self._time_out)
            timer.daemon = True
            timer.start()
        try:
            book.save(final=True)
            book.show("run_started", self.dag.name, self.run_id)
            try:
                self.scope = self._prepare()
            except (StateboxError, OSError) as exc:
                record.status, record.error = "failed", describe(exc)
            else:
                record.status = self._run_all()
        finally:
            if timer is not None:
                timer.cancel()
            context = RunContext(dag=self.dag.name, root_dag=self.root_dag, run_id=self.run_id)
            leases = self.scope.leases if self.scope is not None else ()
            end_run_scope(self.store, context, record, leases)
            if record.status == "running":  # an unexpected error escaped
                record.status = "failed"
            record.finished_at = now_iso()
            book.save(final=True)
            book.show(
                "run_finished", self.dag.name, self.run_id, record.status, time.monotonic() - clock
            )
        return record

    def _run_all(self) -> str:
        scope = self.scope
        assert scope is not None
        dag, book = self.dag, self.book
        if dag.preconditions:
            try:
                met = conditions.preconditions_met(
                    dag.preconditions,
                    scope.context(Visible({}, {})),
                    run_shell=self._dag_shell,
                )
            except Exception as exc:
                self.record.error = (
                    f"the DAG's preconditions could not be evaluated: {describe(exc)}"
                )
                return "failed"
            if not met:
                self.record.error = "the DAG's preconditions were not met"
                return "aborted"
        self.stopped = drive(book, scope, dag.steps, self.stop, handlers=False, halt=self.halt)
        status = book.status(dag.steps, self.stopped)
        if self.stopped and self.timed_out:  # as in Dagu: a timed-out run failed
            status = "failed"
            self.record.error = f"the run timed out after {dag.timeout_sec:g} s"
        handlers = dag.handler_on
        first = {
            "succeeded": handlers.success,
            "partially_succeeded": handlers.success,
            "failed": handlers.failure,
            "aborted": handlers.abort,
        }[status]
        for handler in (first, handlers.exit):
            if handler is None:
                continue
            book.add_handler(handler)
            drive(book, scope, (handler,), threading.Event(), handlers=True)
            if book.results[handler.name].status == "failed" and status != "aborted":
                status = "failed"
        return status

    def _time_out(self) -> None:
        self.timed_out = True
        self.stop.set()

    # -- what every step shares --------------------------------------------------------

    def _prepare(self) -> RunScope:
        return prepare_scope(
            self.dag,
            self.store,
            run_id=self.run_id,
            root_dag=self.root_dag,
            root_run_id=self.root_run_id,
            given_params=self.options.params,
            store_url=self.options.store_url,
            log_dir=self.options.log_dir,
            run_child=self._run_child,
            save_log=self._save_log,
            masker=self.masker,
        )

    def _save_log(self, step: str, text: str, stream: str) -> None:
        self.records.save_log(self.run_id, step, text, stream=stream, ttl=self.ttl)

    def _dag_shell(self, command: str) -> int:
        assert self.scope is not None
        return self.scope.shell_status(None, self.scope.base_env, self.scope.cwd, command)

    def _is_handler(self, step: Step) -> bool:
        h = self.dag.handler_on
        return any(step is handler for handler in (h.success, h.failure, h.abort, h.exit))

    def _run_child(
        self,
        step: Step,
        name: str,
        params: list[str],
        stop: threading.Event,
        started: Callable[[str], None],
    ) -> ChildResult:
        from . import loader

        if stop.is_set() or (self.halt.is_set() and not self._is_handler(step)):
            raise Cancelled("stop")
        path = loader.find_sub_dag(name, self.dag.path, self.options.dags_dir)
        names = [n for n, _ in self.chain]
        if os.path.realpath(path) in (f for _, f in self.chain):
            called = names[[f for _, f in self.chain].index(os.path.realpath(path))]
            raise InvalidRequestError(
                f"sub-DAG {quoted(called)} calls itself: {' → '.join([*names, called])}"
            )
        if len(self.chain) > MAX_SUB_DAG_DEPTH:
            raise InvalidRequestError(
                f"sub-DAGs nest deeper than {MAX_SUB_DAG_DEPTH} levels: "
                f"{' → '.join([*names, name])}"
            )
        child = loader.load_dag(path)  # warnings to standard error
        run_id = new_run_id()
        started(run_id)
        log_dir = os.path.join(self.options.log_dir, run_id) if self.options.log_dir else None
        options = RunOptions(
            store_url=self.options.store_url,
            params=params,
            run_id=run_id,
            dags_dir=self.options.dags_dir,
            log_dir=log_dir,
        )
        parent = ParentRun(
            self.dag.name, self.run_id, self.root_dag, self.root_run_id, step.name, self.chain
        )
        # A handler runs even when the run was stopped: its sub-DAG's run is not halted.
        halt = None if self._is_handler(step) else self.halt
        run = _Run(child, self.store, options, parent, stop, halt, self.masker)
        record = run.execute()
        return ChildResult(child.name, run_id, record.status, dict(run.book.outputs))


def _dag_file(dag: DAG) -> str:
    """What tells one DAG from another in a chain of sub-DAGs: its file's real path."""
    return os.path.realpath(dag.path) if dag.path else dag.name
