"""One step, start to finish, in a worker thread: its preconditions, its attempts
(retries), its repeats, what ``continue_on`` makes of a failure, and its logs kept with
the run record.

What each attempt does depends on the step's kind: a ``run`` (:mod:`._run_step`), a
state or lease action or a sub-DAG (:mod:`._action_step`); what they share is
:mod:`._step_work`. What the whole run shares (names, params, environment, the store,
where logs go) is a :class:`~._context.RunScope`; the step reports its progress through
``emit`` and returns an :class:`Outcome`. It never touches the run record: the run's
loop (:mod:`.executor`) owns that, in one thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass

from ..core.errors import StateboxError
from . import conditions
from ._action_step import ActionStep, child_params
from ._context import RunScope, Visible, describe, now_iso
from ._process import Cancelled, Slot
from ._run_step import ShellStep
from ._step_work import Attempt, Emit
from .action_fields import DAG_RUN
from .model import Precondition, RepeatPolicy, RetryPolicy, Step

__all__ = ["Emit", "Outcome", "child_params", "execute_step"]


@dataclass
class Outcome:
    """How a step ended."""

    status: str
    attempts: int = 0
    exit_code: int | None = None
    #: The captured standard output, whitespace-trimmed (None: over max_output_size):
    #: what the run records (an action's line with its secret values masked).
    output: str | None = None
    #: An action's line with secret values shown (``with.reveal``), trimmed: what the
    #: step's references see instead of ``output``. None: they see ``output``.
    revealed: str | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration: float | None = None
    child_run_id: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    #: It failed (or was skipped) and its ``continue_on`` lets its dependants run.
    continued: bool = False

    @property
    def seen(self) -> str | None:
        """The output as the step's references see it."""
        return self.output if self.revealed is None or self.output is None else self.revealed


def execute_step(
    scope: RunScope,
    step: Step,
    visible: Visible,
    slot: Slot,
    cancel: threading.Event,
    emit: Emit,
) -> Outcome:
    """Run one step to its end (in a worker thread)."""
    return _StepRun(scope, step, visible, slot, cancel, emit).execute()


class _StepRun(ShellStep, ActionStep):
    """One step's execution, whatever its kind; :func:`execute_step` is its entry point."""

    # -- the whole step ----------------------------------------------------------------

    def execute(self) -> Outcome:
        step = self.step
        started, clock = now_iso(), time.monotonic()
        outcome = Outcome(status="failed", started_at=started)
        try:
            if step.preconditions and not self._preconditions_met(outcome):
                pass  # skipped, or failed evaluating them: outcome says which
            else:
                self._run_with_repeats(outcome)
        except Exception as exc:  # a defect must not leave the run waiting for this step
            outcome.status = "failed"
            outcome.error = describe(exc)
        outcome.attempts = self.attempts
        outcome.child_run_id = self.child_run_id
        outcome.finished_at = now_iso()
        outcome.duration = time.monotonic() - clock
        if self.attempts:
            outcome.stdout_path, outcome.stderr_path = self.stdout_path, self.stderr_path
            self._save_logs()
        if outcome.status == "failed":
            self._apply_continue_on(outcome)
        elif outcome.status == "skipped":
            outcome.continued = step.continue_on.skipped
        return outcome

    def _preconditions_met(self, outcome: Outcome) -> bool:
        try:
            met = conditions.preconditions_met(
                self.step.preconditions, self.ctx, run_shell=self.run_shell
            )
        except Exception as exc:  # an evaluation error: the step fails (Dagu)
            outcome.status = "failed"
            outcome.error = f"preconditions could not be evaluated: {describe(exc)}"
            return False
        if not met:
            outcome.status = "skipped"
            outcome.error = "preconditions not met"
        return met

    # -- repeats and retries -----------------------------------------------------------

    def _run_with_repeats(self, outcome: Outcome) -> None:
        policy = self.step.repeat_policy
        executions = 0
        while True:
            attempt = self._run_with_retries()
            executions += 1
            outcome.exit_code = attempt.exit_code
            outcome.error = attempt.error
            outcome.output = self._read_output(attempt, outcome)
            outcome.revealed = None if attempt.revealed is None else attempt.revealed.strip()
            if attempt.aborted:
                outcome.status = "aborted"
                return
            outcome.status = "succeeded" if attempt.exit_code == 0 else "failed"
            if policy is None or not self._repeat_again(policy, attempt, outcome, executions):
                return
            if self.cancel.wait(policy.wait(executions)):
                outcome.status = "aborted"
                outcome.error = "stopped"
                return

    def _repeat_again(
        self, policy: RepeatPolicy, attempt: Attempt, outcome: Outcome, executions: int
    ) -> bool:
        if self.cancel.is_set() or (policy.limit is not None and executions >= policy.limit):
            return False
        if attempt.exit_code != 0 and not policy.exit_code:
            return False  # a failure ends the repeats unless they are about exit codes
        if policy.condition is not None:
            own = dict(self.visible.outputs)
            if self.step.output and outcome.seen is not None:
                own[self.step.output] = outcome.seen
            ctx = self.scope.context(Visible(own, self.visible.steps))
            condition = Precondition(policy.condition, policy.expected)
            matched = conditions.preconditions_met((condition,), ctx, run_shell=self.run_shell)
        elif policy.exit_code:
            matched = attempt.exit_code in policy.exit_code
        else:
            matched = attempt.exit_code == 0
        return matched if policy.mode == "while" else not matched

    def _run_with_retries(self) -> Attempt:
        policy = self.step.retry_policy
        retries = 0
        while True:
            if self.cancel.is_set():
                return Attempt(1, "stopped", aborted=True)
            self.attempts += 1
            self.emit(self.step, "running", self.attempts, None, None)
            self.slot.begin_attempt(self.step.timeout_sec)
            try:
                attempt = self._attempt()
            finally:
                self.slot.end_attempt()
            if self.slot.reason == "stop" or (attempt.exit_code != 0 and self.cancel.is_set()):
                return Attempt(attempt.exit_code, "stopped", aborted=True)
            if attempt.exit_code == 0 or attempt.aborted or not _retry(policy, attempt, retries):
                return attempt
            assert policy is not None
            retries += 1
            self.emit(self.step, "retrying", self.attempts, attempt.error, None)
            if self.cancel.wait(policy.wait(retries)):
                return Attempt(attempt.exit_code, "stopped", aborted=True)

    def _attempt(self) -> Attempt:
        """One attempt, by the step's kind."""
        step = self.step
        try:
            if step.action == DAG_RUN:
                return self.run_child()
            if step.action is not None:
                return self.run_action()
            return self.run_commands()
        except Cancelled:
            return self.cancelled()
        except StateboxError as exc:
            return Attempt(exc.exit_code, str(exc))

    # -- output, logs, continue_on -----------------------------------------------------

    def _read_output(self, attempt: Attempt, outcome: Outcome) -> str | None:
        """The attempt's standard output, whitespace-trimmed; None when it is larger than
        ``max_output_size`` (then a step with ``output:`` fails)."""
        limit = self.scope.dag.max_output_size
        if attempt.stdout is not None:
            data = attempt.stdout.encode()[: limit + 1]
        else:
            try:
                with open(self.stdout_path, "rb") as file:
                    data = file.read(limit + 1)
            except FileNotFoundError:
                data = b""
        self.stdout = data
        if len(data) > limit:
            if self.step.output and attempt.exit_code == 0 and not attempt.aborted:
                attempt.exit_code = 1
                attempt.error = (
                    f"output is larger than max_output_size ({limit} bytes); "
                    f"{self.step.output} was not set"
                )
                outcome.exit_code, outcome.error = attempt.exit_code, attempt.error
            return None
        return data.decode("utf-8", errors="replace").strip()

    def _save_logs(self) -> None:
        """Keep the logs with the run record, bounded by ``max_output_size``, the
        secrets the run read masked in them and in the log files. A step run in-process
        (an action, a sub-DAG) has its output in the record: no copy."""
        if self.step.action is not None:
            return
        for path in (self.stdout_path, self.stderr_path):
            with contextlib.suppress(OSError):  # the secrets the run read: masked there too
                self.scope.masker.mask_file(path)
        limit = self.scope.dag.max_output_size
        logs = [("stdout", self.stdout[:limit])]
        try:
            if os.path.getsize(self.stderr_path):
                with open(self.stderr_path, "rb") as file:
                    logs.append(("stderr", file.read(limit)))
        except OSError:
            pass
        for stream, data in logs:
            if data:
                # The step's own result matters more than a copy of its log.
                with contextlib.suppress(StateboxError):
                    self.scope.save_log(self.step.name, data.decode("utf-8", "replace"), stream)

    def _apply_continue_on(self, outcome: Outcome) -> None:
        rule = self.step.continue_on
        allowed = rule.failure or (
            outcome.exit_code is not None and outcome.exit_code in rule.exit_code
        )
        if not allowed and rule.output:
            text = self.stdout[: self.scope.dag.max_output_size].decode("utf-8", "replace")
            allowed = conditions.output_matches(text, rule.output)
        if allowed:
            outcome.continued = True
            if rule.mark_success:
                outcome.status = "succeeded"


def _retry(policy: RetryPolicy | None, attempt: Attempt, retries: int) -> bool:
    if policy is None or retries >= policy.limit:
        return False
    if policy.exit_code:
        return attempt.exit_code in policy.exit_code
    return attempt.exit_code != 0
