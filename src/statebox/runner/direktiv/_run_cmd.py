"""One ``cmd`` function call as a process: ``sh -c CMD`` in a new session, its input on
standard input, its standard output and error read as it runs, every bound kept.

This module reports what happened (:class:`CmdResult`); :mod:`.functions` decides what
it means for the workflow (a result, or which error).

- Standard input is a temporary file holding the input, not a pipe: a command that
  never reads it cannot block on it, and a large input cannot deadlock against output
  the command writes before reading.
- Standard output and error are pipes read in the calling thread (a selector, no
  threads), so the bounds are exact: output past ``stdout_limit`` stops the command at
  once; standard error keeps its last ``stderr_limit`` bytes (the end is what explains
  a failure).
- The process group is the call: when the shell exits, what it left running in its
  group (a ``cmd &`` that would hold the output pipes open) is stopped too; on a
  timeout or a stop the whole group is. Stopping is :func:`.._process.kill_group`'s
  SIGTERM, then SIGKILL after :data:`.._process.GRACE_SEC`, and the call returns only
  when the group is gone (:func:`.._process.reap_groups`): no process of a call
  outlives it, except one that left the session on purpose (``setsid``).
"""

from __future__ import annotations

import os
import selectors
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .._process import GRACE_SEC, exit_status, kill_group, reap_groups

__all__ = ["CmdResult", "run_cmd"]

#: How often the loop looks at the stop event and the deadline when no output comes.
_POLL: Final = 0.05
#: How long, after the shell exits, its output pipes may stay open (held by what it
#: left running, which is being stopped meanwhile) before they are read no more.
_DRAIN_SEC: Final = GRACE_SEC + 1.0
_CHUNK: Final = 65536

End = Literal["exited", "timeout", "stopped", "too_large"]


@dataclass(frozen=True, slots=True)
class CmdResult:
    """How the call ended: ``exited`` (``status`` is its exit status, a death by signal
    N being 128 + N as a shell reports it), ``timeout``, ``stopped`` (the stop event)
    or ``too_large`` (standard output passed its limit); what it wrote."""

    end: End
    status: int
    stdout: bytes
    stderr: bytes
    #: Bytes of standard error dropped from its start to keep the limit.
    stderr_dropped: int = 0


class _Output:
    """The two pipes of one process, read as data arrives."""

    def __init__(
        self, process: subprocess.Popen[bytes], stdout_limit: int, stderr_limit: int
    ) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stderr_dropped = 0
        self._stdout_limit = stdout_limit
        self._stderr_limit = stderr_limit
        self._selector = selectors.DefaultSelector()
        assert process.stdout is not None and process.stderr is not None
        self._selector.register(process.stdout, selectors.EVENT_READ, self._add_stdout)
        self._selector.register(process.stderr, selectors.EVENT_READ, self._add_stderr)

    @property
    def open(self) -> bool:
        return bool(self._selector.get_map())

    @property
    def stdout_over(self) -> bool:
        return len(self.stdout) > self._stdout_limit

    def pump(self, wait: float, stop: threading.Event) -> None:
        """Read what is there, waiting at most ``wait`` seconds for something."""
        if not self.open:
            stop.wait(wait)  # wakes at once on a stop
            return
        for key, _ in self._selector.select(wait):
            data = os.read(key.fd, _CHUNK)
            if not data:
                self._selector.unregister(key.fileobj)
                continue
            add: Callable[[bytes], None] = key.data
            add(data)

    def close(self) -> None:
        self._selector.close()

    def _add_stdout(self, data: bytes) -> None:
        room = self._stdout_limit + 1 - len(self.stdout)  # one byte past: "over"
        if room > 0:
            self.stdout += data[:room]

    def _add_stderr(self, data: bytes) -> None:
        self.stderr += data
        over = len(self.stderr) - self._stderr_limit
        if over > 0:
            del self.stderr[:over]
            self.stderr_dropped += over


def run_cmd(
    argv: Sequence[str],
    *,
    stdin_data: bytes,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    stop: threading.Event,
    stdout_limit: int,
    stderr_limit: int,
) -> CmdResult:
    """Run ``argv`` to its end, its timeout, the stop event, or its output's limit.
    Raises ``OSError`` when the process cannot start (no such directory, no shell)."""
    if stop.is_set():
        return CmdResult("stopped", -1, b"", b"")
    with tempfile.TemporaryFile() as stdin_file:
        stdin_file.write(stdin_data)
        stdin_file.seek(0)
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=stdin_file,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    output = _Output(process, stdout_limit, stderr_limit)
    try:
        end = _watch(process, output, time.monotonic() + timeout, stop)
    finally:
        output.close()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    returncode = process.wait()
    status = exit_status(returncode) if end == "exited" else -1
    return CmdResult(end, status, bytes(output.stdout), bytes(output.stderr), output.stderr_dropped)


def _watch(
    process: subprocess.Popen[bytes], output: _Output, deadline: float, stop: threading.Event
) -> End:
    """Read the output until the process has exited and its pipes are closed (or the
    drain's time is up); on a timeout, a stop or too much output, stop the group."""
    pgid = process.pid
    drain_until: float | None = None
    while True:
        now = time.monotonic()
        if drain_until is None:
            end: End | None = None
            if output.stdout_over:
                end = "too_large"
            elif stop.is_set():
                end = "stopped"
            elif now >= deadline:
                end = "timeout"
            if end is not None:
                _stop_group(pgid)
                process.wait()
                return end
            if process.poll() is not None:
                # Whatever it left running in its group goes with it (and would hold
                # the pipes open until the timeout otherwise); with nothing left, only
                # what is already in the pipes is read.
                drain_until = now + (_DRAIN_SEC if kill_group(pgid) else _POLL * 4)
        if drain_until is not None and (not output.open or now >= drain_until):
            reap_groups({pgid: now + GRACE_SEC})
            return "too_large" if output.stdout_over else "exited"
        limit = deadline if drain_until is None else drain_until
        output.pump(max(0.0, min(_POLL, limit - now)), stop)


def _stop_group(pgid: int) -> None:
    """SIGTERM to the group, SIGKILL after the grace to what is left; return once gone."""
    if kill_group(pgid):
        reap_groups({pgid: time.monotonic() + GRACE_SEC})
