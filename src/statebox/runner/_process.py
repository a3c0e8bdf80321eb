"""The processes of ``run`` steps: the shell's argument vector, the step's environment,
dotenv files, and a slot through which another thread stops what a step is running.

Every process starts in a new session (``start_new_session=True``), so stopping a step
signals its whole process group: SIGTERM first, SIGKILL after :data:`GRACE_SEC` for
whatever is left (a grandchild that ignores SIGTERM included). A slot remembers the
groups it signalled, and the run's loop waits for them before the run ends
(:func:`reap_groups`): what is still there when their grace has passed is killed then,
so no process of a step outlives ``statebox run``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Final

__all__ = [
    "GRACE_SEC",
    "Cancelled",
    "Slot",
    "exit_status",
    "kill_group",
    "read_dotenv",
    "reap_groups",
    "run_quiet",
    "script_argv",
    "shell_argv",
]

#: Seconds between SIGTERM and SIGKILL when a step's process group is stopped.
GRACE_SEC: Final = 5.0


class Cancelled(Exception):
    """The step was stopped (the run's stop, or its timeout) before a process started."""


def shell_argv(shell: str | None, command: str) -> list[str]:
    """``sh -c COMMAND`` — or the step's / DAG's ``shell`` (which may carry options,
    ``bash -e``) with ``-c COMMAND``."""
    return [*_shell_words(shell), "-c", command]


def script_argv(shell: str | None, path: str) -> list[str]:
    """The shell reading a script file: ``sh FILE``."""
    return [*_shell_words(shell), path]


def _shell_words(shell: str | None) -> list[str]:
    words = shlex.split(shell) if shell and shell.strip() else []
    return words or ["sh"]


def exit_status(returncode: int) -> int:
    """A process's exit code as a shell reports it: 128 + N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def run_quiet(argv: Sequence[str], *, cwd: str, env: Mapping[str, str]) -> int:
    """Run a command to its end in a new session, its input empty and its output
    discarded (a precondition's check); its exit code as :func:`exit_status` gives it."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        check=False,
    )
    return exit_status(done.returncode)


def read_dotenv(path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export KEY=VALUE`` too; ``#`` comments, blank lines and
    matching quotes around a value are dropped)."""
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith("export "):
                text = text[len("export ") :].lstrip()
            name, sep, value = text.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not name:
                continue
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[name] = value
    return values


def kill_group(pid: int, grace: float = GRACE_SEC) -> bool:
    """SIGTERM to the process group ``pid`` leads, then SIGKILL after ``grace`` seconds
    to whatever of the group is still there (in a background thread, which dies with
    the process: :func:`reap_groups` makes sure of it before a run ends). Whether the
    group was signalled (False: it was already gone)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    threading.Thread(
        target=_kill_later, args=(pid, grace), name=f"statebox-kill-{pid}", daemon=True
    ).start()
    return True


def _kill_later(pgid: int, grace: float) -> None:
    reap_groups({pgid: time.monotonic() + grace})


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False  # the whole group is gone
    return _live_member(pgid)


def _live_member(pgid: int) -> bool:
    """Whether a process of the group is not a zombie (dead, awaiting its reaper, which
    may be slow to come); where there is no ``/proc`` to tell, True."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    if "self" not in names:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[-1].split()
        except OSError:
            continue  # gone meanwhile
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] != b"Z":
            return True
    return False


def reap_groups(groups: Mapping[int, float]) -> None:
    """Wait for each process group (pgid → its ``time.monotonic()`` deadline) to be
    gone; SIGKILL to what of a group is still there at its deadline. Returns when every
    group is gone or killed."""
    pending = dict(groups)
    while pending:
        now = time.monotonic()
        for pgid, deadline in list(pending.items()):
            if not _group_alive(pgid):
                del pending[pgid]
            elif now >= deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                del pending[pgid]
        if pending:
            time.sleep(0.05)


class Slot:
    """What one step is running now, so the run's loop can stop it from another thread:
    its process (a process group), or the stop event of the sub-DAG it runs.

    ``reason`` says why it was stopped: ``"stop"`` (the run is stopping; final) or
    ``"timeout"`` (this attempt ran past ``timeout_sec``; a retry starts afresh).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._child_stop: threading.Event | None = None
        #: The process groups this slot signalled → when their grace ends (monotonic).
        self.signalled: dict[int, float] = {}
        self.reason: str | None = None
        #: ``time.monotonic()`` past which the current attempt is stopped, if any.
        self.deadline: float | None = None

    def begin_attempt(self, timeout: float | None) -> None:
        with self._lock:
            if self.reason == "timeout":
                self.reason = None
            self.deadline = time.monotonic() + timeout if timeout else None

    def end_attempt(self) -> None:
        self.deadline = None

    def start(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        stdout: IO[bytes],
        stderr: IO[bytes],
    ) -> subprocess.Popen[bytes]:
        """Start a process in a new session; :class:`Cancelled` when already stopped."""
        with self._lock:
            if self.reason is not None:
                raise Cancelled(self.reason)
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            self._pid = process.pid
            return process

    def finished(self) -> None:
        with self._lock:
            self._pid = None

    def attach_child(self, stop: threading.Event) -> None:
        """The stop event of the sub-DAG the step runs (set at once if already stopped)."""
        with self._lock:
            self._child_stop = stop
            if self.reason is not None:
                stop.set()

    def cancel(self, reason: str) -> None:
        """Stop what the step runs now; a ``"stop"`` wins over a ``"timeout"``."""
        with self._lock:
            if self.reason == "stop" or self.reason == reason:
                return
            self.reason = reason
            self.deadline = None
            pid, child_stop = self._pid, self._child_stop
        if pid is not None and kill_group(pid):
            self.signalled[pid] = time.monotonic() + GRACE_SEC
        if child_stop is not None:
            child_stop.set()
