"""A ``run`` step: its shell commands (one after the other, stopping at the first that
fails) or its ``script``, each a process of its own in the step's environment and
working directory, its standard output and error in the step's log files.

A command is rendered as a shell runs it (:func:`.refs.render_text` with
``shell=True``); a ``script`` is written next to the logs and given to the shell, or to
the step's ``command`` (``command: python`` + ``script:``). A process that cannot start
exits 127, as a shell's would; a failure's message ends with the last line of its
standard error.
"""

from __future__ import annotations

import os
import shlex

from . import refs
from ._context import SAFE_NAME
from ._process import exit_status, script_argv, shell_argv
from ._step_work import Attempt, StepWork

__all__ = ["ShellStep"]


class ShellStep(StepWork):
    """Runs the processes of a ``run`` step (:meth:`run_commands`)."""

    def run_commands(self) -> Attempt:
        step, scope = self.step, self.scope
        shell = step.shell or scope.dag.shell
        if step.script is not None:
            argvs = [self._script_argv(shell)]
        else:
            argvs = [shell_argv(shell, refs.render_text(c, self.ctx, shell=True)) for c in step.run]
        env, cwd = self.env, self.cwd
        returncode = 0
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            for argv in argvs:
                try:
                    process = self.slot.start(argv, cwd=cwd, env=env, stdout=out, stderr=err)
                except OSError as exc:
                    return Attempt(127, f"cannot start {argv[0]!s} in {cwd}: {exc.strerror}")
                try:
                    returncode = exit_status(process.wait())
                finally:
                    self.slot.finished()
                if self.slot.reason is not None:
                    return self.cancelled()
                if returncode != 0:
                    break
        if returncode == 0:
            return Attempt(0)
        return Attempt(returncode, _failure_message(returncode, self.stderr_path))

    def _script_argv(self, shell: str | None) -> list[str]:
        path = os.path.join(self.scope.log_dir, SAFE_NAME.sub("_", self.step.name) + ".script")
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.step.script or "")
        if self.step.run:  # `command: python` + `script:`: the command reads the script
            command = refs.render_text(self.step.run[0], self.ctx, shell=True)
            return shell_argv(shell, f"{command} {shlex.quote(path)}")
        return script_argv(shell, path)


def _failure_message(code: int, stderr_path: str) -> str:
    message = f"exit code {code}"
    try:
        with open(stderr_path, "rb") as file:
            file.seek(max(0, os.path.getsize(stderr_path) - 400))
            tail = file.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        tail = []
    return f"{message}: {tail[-1].strip()}" if tail else message
