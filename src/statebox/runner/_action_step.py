"""The steps that run in-process: a state or lease action (``action: state.get`` …,
:mod:`.actions`) and a sub-DAG (``action: dag.run``, or the legacy ``call:``).

Their ``with`` fields are rendered when the attempt starts (an action's with the DAG's
``typed_references``; a sub-DAG's always as text). Each writes one JSON line as its
standard output, into its log file too, so that ``${id.stdout}`` names a file as it does
for a ``run`` step: an action the line its CLI command prints (secret values masked; with
``with.reveal: true`` the step's references see them shown), a sub-DAG
``{"name", "run_id", "status", "outputs"}``. A sub-DAG runs through the run's
``run_child`` (the executor's), with its own stop event, which the step's slot sets when
the step is stopped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from . import actions, refs
from ._step_work import Attempt, StepWork

__all__ = ["ActionStep", "child_params"]


class ActionStep(StepWork):
    """Runs a step's action (:meth:`run_action`) or sub-DAG (:meth:`run_child`)."""

    def run_action(self) -> Attempt:
        step = self.step
        assert step.action is not None
        fields = refs.render_with(step.with_, self.ctx, typed=self.scope.dag.typed_references)
        result = actions.run_action(
            self.scope.step_store(step),
            step.action,
            fields,
            holder=self.scope.run_id,
            masker=self.scope.masker,
        )
        self.write_logs(result.output, result.error)  # masked: ${id.stdout} is a log
        name = fields.get("name")
        if step.action == "lease.acquire" and not result.exit_code and isinstance(name, str):
            self.scope.leases.add(name)
        error = result.error if result.exit_code else None
        return Attempt(result.exit_code, error, stdout=result.output, revealed=result.revealed)

    def run_child(self) -> Attempt:
        fields = refs.render_with(self.step.with_, self.ctx, typed=False)
        name = fields.get("dag")
        if not isinstance(name, str) or not name.strip():
            return Attempt(2, "with.dag: must name the DAG to run")
        params = child_params(fields.get("params"))
        stop = threading.Event()
        self.slot.attach_child(stop)

        def started(run_id: str) -> None:
            self.child_run_id = run_id
            self.emit(self.step, "running", self.attempts, None, run_id)

        child = self.scope.run_child(self.step, name.strip(), params, stop, started)
        line = json.dumps(
            {
                "name": child.name,
                "run_id": child.run_id,
                "status": child.status,
                "outputs": child.outputs,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        self.write_logs(line, None)
        if self.slot.reason is not None:
            cancelled = self.cancelled()
            cancelled.stdout = line
            return cancelled
        if child.status in ("succeeded", "partially_succeeded"):
            return Attempt(0, stdout=line)
        error = f"sub-DAG {child.name} (run {child.run_id}) {child.status}"
        return Attempt(1, error, stdout=line)


def child_params(value: Any) -> list[str]:
    """``with.params`` of a sub-DAG as command-line params: a map (``K=V`` each, values
    rendered as references render), a ``"K=V …"`` string (read as Dagu reads a params
    string), a list."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [f"{k}={v if isinstance(v, str) else refs.render_json(v)}" for k, v in value.items()]
    if isinstance(value, str):
        from ._dag_fields import parse_param_string

        return [v if name is None else f"{name}={v}" for name, v in parse_param_string(value)]
    if isinstance(value, Sequence):
        return [v if isinstance(v, str) else refs.render_json(v) for v in value]
    return [refs.render_json(value)]
