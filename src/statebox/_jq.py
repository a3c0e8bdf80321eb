"""Running jq expressions with a time bound.

The ``jq`` binding holds the GIL for as long as jq runs, so a worker thread with a
deadline would not help: the caller could not even regain control to give up. jq
therefore runs in a small pool of long-lived child processes (``_jq_worker.py``); a call
that passes its deadline kills its worker and fails, and the next call starts a fresh
one. A round trip costs a pipe write and read (tens of microseconds); starting a worker
costs one interpreter start, paid once per process and pool slot.

The pool is process-wide, survives ``fork`` (the child starts its own workers) and is
shut down at interpreter exit; a worker also exits when its pipe closes.

Memory stays bounded in both processes: the worker has an address-space cap, and it
refuses a result over the value size limit instead of sending it, so the caller reads at
most the limit plus one short line (:data:`_MAX_LINE`) per call.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

from .core.errors import InvalidValueError, StateboxError, ValueTooLargeError, quoted
from .core.values import DEFAULT_JSON_LIMIT

__all__ = ["run_jq"]

_WORKER: Final = Path(__file__).with_name("_jq_worker.py")
_MAX_IDLE: Final = 4
# A module directive can only open a program; inside the worker's wrapper it would be a
# syntax error anyway, but this gives the user a message that says why.
_DIRECTIVE: Final = re.compile(r"\A(?:\s+|#[^\n]*)*(import|include|module)\b")
# jq's decoration around a compile error: says nothing the message does not.
_NOISE: Final = re.compile(r"^jq: error: |\njq: \d+ compile errors?\s*$")
#: The longest response line (a count, or an error message the worker cut to 2,000
#: characters, each at most 12 bytes when escaped): a longer one is not from our worker.
_MAX_LINE: Final = 64 * 1024


class _WorkerDied(Exception):
    def __init__(self, *, before_request: bool) -> None:
        super().__init__()
        self.before_request = before_request


class _BadResponse(Exception):
    """The worker broke the protocol (a line too long, a value larger than allowed)."""


class _Worker:
    """One child process and its pipes."""

    def __init__(self) -> None:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(_WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # jq's `debug` and `stderr` write there
                env={},  # `$ENV` and `env` must not reveal the caller's secrets
                cwd="/",
                close_fds=True,
            )
        except OSError as exc:  # out of processes or file descriptors
            raise StateboxError(
                f"cannot start a jq worker process ({sys.executable}): {exc}"
            ) from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin = self.proc.stdin
        self._fd = self.proc.stdout.fileno()

    def ask(self, request: bytes, timeout: float, limit: int) -> tuple[dict[str, Any], bytes]:
        """The response to ``request``, and the value's bytes that follow it (at most
        ``limit``: a worker announcing more is not believed, nor read)."""
        try:
            self._stdin.write(request)
            self._stdin.flush()
        except OSError as exc:  # it died while idle
            raise _WorkerDied(before_request=True) from exc
        deadline = time.monotonic() + timeout
        buffer = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while (end := buffer.find(b"\n")) < 0:
                if len(buffer) > _MAX_LINE:
                    raise _BadResponse(f"a response line over {_MAX_LINE} bytes")
                self._read(buffer, _MAX_LINE, selector, deadline)
            response: dict[str, Any] = json.loads(buffer[:end])
            size = response.get("bytes", 0) if "outputs" in response else 0
            if not isinstance(size, int) or size > limit:
                raise _BadResponse(f"a value of {size} bytes, over the limit of {limit}")
            del buffer[: end + 1]
            while len(buffer) < size:
                self._read(buffer, size - len(buffer), selector, deadline)
        if len(buffer) != size:
            raise _BadResponse("more bytes than announced")
        return response, bytes(buffer)

    def _read(
        self,
        buffer: bytearray,
        most: int,
        selector: selectors.BaseSelector,
        deadline: float,
    ) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            raise TimeoutError
        chunk = os.read(self._fd, min(most, 1 << 20))
        if not chunk:
            raise _WorkerDied(before_request=False)
        buffer += chunk

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        for pipe in (self._stdin, self.proc.stdout):
            with contextlib.suppress(OSError):  # a request still buffered cannot be sent
                pipe.close()


class _Pool:
    """Idle workers, handed out one per concurrent call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._pid = os.getpid()

    def take(self, *, fresh: bool = False) -> _Worker:
        dead: list[_Worker] = []
        worker = None
        with self._lock:
            if self._pid != os.getpid():  # forked: those workers belong to the parent
                self._idle, self._pid = [], os.getpid()
            while self._idle and not fresh:
                candidate = self._idle.pop()
                if candidate.proc.poll() is None:
                    worker = candidate
                    break
                dead.append(candidate)  # killed while idle (OOM killer, an operator)
        for corpse in dead:
            corpse.kill()
        return worker if worker is not None else _Worker()

    def give_back(self, worker: _Worker) -> None:
        with self._lock:
            if self._pid == os.getpid() and len(self._idle) < _MAX_IDLE:
                self._idle.append(worker)
                return
        worker.kill()

    def shutdown(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            ours = self._pid == os.getpid()
        for worker in idle if ours else ():
            worker.kill()


_POOL = _Pool()
atexit.register(_POOL.shutdown)


def run_jq(expr: str, input_text: str, timeout: float, limit: int = DEFAULT_JSON_LIMIT) -> str:
    """The one JSON text ``expr`` yields for ``input_text`` (compact, not normalized).

    Raises :class:`InvalidValueError` when the expression does not compile, fails, yields
    nothing or more than one value, or runs longer than ``timeout`` seconds, and
    :class:`ValueTooLargeError` when its value passes ``limit`` bytes (the value size
    limit), which the worker checks before it sends the value.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidValueError(f"invalid jq expression {quoted(expr)}: must be a non-empty string")
    directive = _DIRECTIVE.match(expr)
    if directive:
        raise InvalidValueError(
            f"invalid jq expression {quoted(expr)}: {directive.group(1)} directives are "
            "not allowed "
            "(they read files from the server's disk)"
        )
    request = (
        json.dumps({"expr": expr, "input": input_text, "limit": limit}).encode("ascii") + b"\n"
    )
    response, data = _ask(request, expr, timeout, limit)
    if "error" in response:
        if response["error"] == "too_large":
            raise ValueTooLargeError(
                f"value too large: jq expression {quoted(expr)} "
                f"yielded a value of at least {response['bytes']} bytes, over the limit of "
                f"{limit}"
            )
        if response["error"] == "compile":
            message = _NOISE.sub("", response["message"]).strip()
            raise InvalidValueError(f"invalid jq expression {quoted(expr)}: {message}")
        raise InvalidValueError(f"jq expression {quoted(expr)} failed: {response['message']}")
    outputs: int = response["outputs"]
    if not outputs:
        raise InvalidValueError(
            f"jq expression {quoted(expr)} yielded no value (it must yield one)"
        )
    if outputs > 1:
        raise InvalidValueError(
            f"jq expression {quoted(expr)} yielded more than one value (it must yield one)"
        )
    return data.decode("utf-8", "surrogatepass")


def _ask(request: bytes, expr: str, timeout: float, limit: int) -> tuple[dict[str, Any], bytes]:
    # A worker that died while idle (killed, or the machine reclaimed it) is replaced
    # once; one that dies on this very request is the expression's doing.
    for attempt in range(2):
        worker = _POOL.take(fresh=attempt > 0)
        try:
            reply = worker.ask(request, timeout, limit)
        except _BadResponse as exc:
            worker.kill()
            raise StateboxError(f"the jq worker process broke its protocol: {exc}") from None
        except TimeoutError:
            worker.kill()
            raise InvalidValueError(
                f"jq expression {quoted(expr)} ran longer than {timeout:g}s and was abandoned"
            ) from None
        except _WorkerDied as died:
            worker.kill()
            if died.before_request and attempt == 0:
                continue
            raise InvalidValueError(
                f"jq expression {quoted(expr)} crashed the jq evaluator (exit status "
                f"{worker.proc.returncode}): it needs more memory or recursion than allowed"
            ) from None
        _POOL.give_back(worker)
        return reply
    raise AssertionError("unreachable")  # pragma: no cover
