"""What one step's execution works with, whatever its kind (a ``run``, a state or lease
action, a sub-DAG): :class:`StepWork`, the base of :class:`._steps._StepRun`, and
:class:`Attempt`, how one attempt of it ended.

A step works with the run's :class:`~._context.RunScope`, the outputs and steps it may
see, its :class:`~._process.Slot` (through which the run's loop stops it), the run's
cancel event, ``emit`` for its progress, and its log files. The environment and the
working directory of its processes are made only when a step starts one. Each kind of
step is a module of its own (:mod:`._run_step`, :mod:`._action_step`) built on this one;
the attempts, retries and repeats around them are :mod:`._steps`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ._context import RunScope, Visible
from ._process import Slot
from .model import Step

__all__ = ["Attempt", "Emit", "StepWork"]

#: ``emit(step, status, attempt, message, child_run_id)``: progress for the run's loop.
Emit = Callable[[Step, str, int, "str | None", "str | None"], None]


@dataclass
class Attempt:
    """How one attempt of a step ended."""

    exit_code: int
    error: str | None = None
    aborted: bool = False
    #: Standard output made in-process (an action's JSON line), also in the log file.
    stdout: str | None = None
    #: An action's line with secret values shown (``with.reveal``), for references.
    revealed: str | None = None


class StepWork:
    """One step's execution: what every kind of step works with."""

    def __init__(
        self,
        scope: RunScope,
        step: Step,
        visible: Visible,
        slot: Slot,
        cancel: threading.Event,
        emit: Emit,
    ) -> None:
        self.scope, self.step, self.visible = scope, step, visible
        self.slot, self.cancel, self.emit = slot, cancel, emit
        self.ctx = scope.context(visible)
        self._env: dict[str, str] | None = None
        self._cwd: str | None = None
        self.attempts = 0
        self.child_run_id: str | None = None
        self.stdout_path, self.stderr_path = scope.log_paths(step)
        #: The last attempt's standard output, read once (at most max_output_size + 1).
        self.stdout = b""
        self._stderr_written = False

    # -- the environment, built only for steps that start processes -------------------

    @property
    def env(self) -> dict[str, str]:
        if self._env is None:
            self._env = self.scope.step_env(self.step, self.visible)
        return self._env

    @property
    def cwd(self) -> str:
        if self._cwd is None:
            self._cwd = self.scope.step_cwd(self.step, self.ctx)
        return self._cwd

    def run_shell(self, command: str) -> int:
        """A precondition's (or a repeat condition's) command, in the step's shell,
        environment and working directory: its exit code."""
        return self.scope.shell_status(self.step.shell, self.env, self.cwd, command)

    # -- what every kind shares -----------------------------------------------------------

    def cancelled(self) -> Attempt:
        """The attempt the slot stopped: timed out (a retry may follow), or stopped."""
        if self.slot.reason == "timeout":
            return Attempt(124, f"timed out after {self.step.timeout_sec:g} s")
        return Attempt(1, "stopped", aborted=True)

    def write_logs(self, stdout: str, stderr: str | None) -> None:
        """The log files of a step that ran in-process (``${id.stdout}`` names one)."""
        with open(self.stdout_path, "wb") as out:
            if stdout:
                out.write(stdout.encode() + b"\n")
        if stderr or self._stderr_written:  # else no file: nothing was written to it
            with open(self.stderr_path, "wb") as err:
                if stderr:
                    err.write(stderr.encode() + b"\n")
            self._stderr_written = True
