"""Calling a workflow's functions: a ``cmd`` (a local shell command) or a ``url`` (an
HTTP endpoint speaking Direktiv's function protocol), and retrying them as an action's
``retries`` asks.

The protocol, as Direktiv v0.10's sidecar speaks it to a function's container
(``pkg/sidecar/worker.go``, ``pkg/flow/states/action.go``):

- The input is the action's input as JSON (compact, keys sorted, as Go writes it).
  A ``url`` function gets it as a POST body, ``Content-Type: application/json``, with
  the headers ``Direktiv-ActionID``, ``Direktiv-Iterator`` (the branch of a foreach)
  and ``Direktiv-TempDir`` (the action's directory, with the action's ``files`` and the
  ``out/<scope>/`` folders); statebox adds ``Statebox-Var-URL`` (the ``/var``
  endpoint's base URL). A ``cmd`` function gets it on standard input, runs in the
  action's directory, and finds the same in its environment: ``DIREKTIV_TEMPDIR`` and
  ``STATEBOX_TEMPDIR``, ``STATEBOX_ACTION_ID``, ``STATEBOX_VAR_URL``.
- The result (``.return``) is the output (the reply's body; the command's standard
  output) parsed as JSON, or, if it is not JSON, the base64 of its bytes.

Errors (each a :class:`.errors.DirektivError`; *catchable* ones go to a ``catch``):

===================================  =========  =============================================
code                                 catchable  when
===================================  =========  =============================================
the reply's ``Direktiv-ErrorCode``   yes        a ``url`` function raised it (message:
                                                ``Direktiv-ErrorMessage``), as in Direktiv
``container failed``                 yes        a ``url`` function replied non-2xx without
                                                a code: Direktiv's sidecar's own code for it
``io.direktiv.error.execution``      yes        a ``cmd`` exited non-zero: the code
                                                Direktiv's command server
                                                (``pkg/cmdserver``) raises for a failed
                                                command, so catches written for it match
``direktiv.cancels.timeout.soft``    yes        the call ran past the action's timeout (its
                                                process group is stopped) — not retried,
                                                as Direktiv's timeout never reaches the
                                                retry logic
``direktiv.retries.exceeded``        yes        a retried code came again after
                                                ``max_attempts`` retries
``direktiv.internal.error``          no         no call was possible or its output cannot
                                                be taken: the command cannot start, the URL
                                                cannot be reached or is not http(s), the
                                                output passes its limit (Direktiv's sidecar
                                                errors without a code are uncatchable too)
``direktiv.cancels.api``             no         the stop event (the instance is stopping)
===================================  =========  =============================================

Retries (:func:`call_with_retries`, ``pkg/flow/states/action-helpers.go``): a catchable
error whose code matches one of ``codes`` (a lone ``*`` any code, else unanchored
regular expressions: :func:`.errors.code_matches`) is retried at most ``max_attempts``
times, the n-th retry (from 0) after ``delay * multiplier**n`` seconds (a multiplier of
0: no growth); once they are spent the error becomes ``direktiv.retries.exceeded``.
Other errors pass through at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from ...core.errors import InvalidValueError
from ...core.values import DEFAULT_BINARY_LIMIT, DEFAULT_JSON_LIMIT, normalize
from .._process import shell_argv
from ._call_url import post, shown_url
from ._gofmt import json_or_base64
from ._run_cmd import run_cmd
from .errors import (
    CANCELLED,
    CONTAINER_FAILED,
    EXECUTION_FAILED,
    INTERNAL,
    RETRIES_EXCEEDED,
    TIMEOUT,
    DirektivError,
    code_matches,
)
from .model import Function, Retries

__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "MAX_INPUT_BYTES",
    "STDERR_LIMIT",
    "call_function",
    "call_with_retries",
    "decode_output",
    "encode_input",
    "retry_delay",
]

#: A function's output (standard output, a reply's body) at most: a value's limit.
DEFAULT_OUTPUT_LIMIT: Final = DEFAULT_JSON_LIMIT
#: The last bytes of a command's standard error kept for its log and messages.
STDERR_LIMIT: Final = DEFAULT_JSON_LIMIT
#: An action's input (its JSON) at most.
MAX_INPUT_BYTES: Final = DEFAULT_BINARY_LIMIT

_T = TypeVar("_T")


def call_function(
    fn: Function,
    *,
    input: Any,
    aid: str,
    tempdir: str,
    var_url: str,
    env: Mapping[str, str],
    timeout: float,
    stop: threading.Event,
    save_log: Callable[[str, str], None] | None = None,
    iterator: int = 0,
    limit: int = DEFAULT_OUTPUT_LIMIT,
) -> Any:
    """Call ``fn`` once with ``input`` (a JSON value); its result (what goes to
    ``.return``). ``aid`` is the action's id, ``tempdir`` its directory, ``var_url``
    the base URL of its ``/var`` endpoint. ``save_log(fn.id, text)`` receives what a
    command wrote to standard error (its last :data:`STDERR_LIMIT` bytes). Raises
    :class:`.errors.DirektivError` (see the module's table)."""
    data = encode_input(input)
    if fn.cmd is not None:
        return _call_cmd(
            fn, fn.cmd, data, aid, tempdir, var_url, env, timeout, stop, save_log, limit
        )
    if fn.url is not None:
        return _call_url(fn, fn.url, data, aid, tempdir, var_url, timeout, stop, iterator, limit)
    raise DirektivError(
        INTERNAL, f'function "{fn.id}" has neither cmd: nor url: to call', catchable=False
    )


def encode_input(value: Any) -> bytes:
    """An action's input as the function receives it: JSON as Go's encoder writes a
    decoded document (compact, object keys sorted)."""
    try:
        return normalize(value, limit=MAX_INPUT_BYTES).data
    except InvalidValueError as exc:  # too large, not JSON
        raise DirektivError(INTERNAL, f"action input: {exc.message}", catchable=False) from exc


def decode_output(data: bytes) -> Any:
    """A function's output as ``.return`` holds it: the JSON value it is (surrounding
    whitespace allowed, read as Go reads it), else the base64 of its bytes — as Direktiv
    decides (:func:`._gofmt.json_or_base64`)."""
    return json_or_base64(data)


def retry_delay(attempt: int, delay_sec: float, multiplier: float) -> float:
    """Seconds before retry ``attempt`` (0 for the first): ``delay * multiplier**attempt``
    (a multiplier of 0 leaves the delay as is), at most what a thread can wait."""
    seconds = delay_sec
    if multiplier != 0:
        try:
            seconds = delay_sec * multiplier**attempt
        except OverflowError:
            seconds = threading.TIMEOUT_MAX
    return min(max(seconds, 0.0), threading.TIMEOUT_MAX)


def call_with_retries(call: Callable[[], _T], retries: Retries | None, stop: threading.Event) -> _T:
    """``call()``, retried as ``retries`` says (see the module docstring); the wait
    between attempts ends early on ``stop`` (raising the uncatchable
    ``direktiv.cancels.api``)."""
    attempt = 0
    while True:
        try:
            return call()
        except DirektivError as exc:
            if not _retried(exc, retries):
                raise
            assert retries is not None
            if attempt >= retries.max_attempts:
                raise DirektivError(
                    RETRIES_EXCEEDED,
                    f"maximum retries exceeded (last error: {exc.code}: {exc.message})",
                ) from exc
            if stop.wait(retry_delay(attempt, retries.delay_sec, retries.multiplier)):
                raise _cancelled() from exc
            attempt += 1


def _retried(exc: DirektivError, retries: Retries | None) -> bool:
    if retries is None or not exc.catchable or exc.code == TIMEOUT:
        return False
    return any(code_matches(pattern, exc.code) for pattern in retries.codes)


def _cancelled() -> DirektivError:
    return DirektivError(CANCELLED, "cancelled: the instance is stopping", catchable=False)


def _call_cmd(
    fn: Function,
    cmd: str,
    data: bytes,
    aid: str,
    tempdir: str,
    var_url: str,
    env: Mapping[str, str],
    timeout: float,
    stop: threading.Event,
    save_log: Callable[[str, str], None] | None,
    limit: int,
) -> Any:
    full_env = {
        **env,
        "DIREKTIV_TEMPDIR": tempdir,
        "STATEBOX_TEMPDIR": tempdir,
        "STATEBOX_VAR_URL": var_url,
        "STATEBOX_ACTION_ID": aid,
    }
    try:
        result = run_cmd(
            shell_argv(None, cmd),
            stdin_data=data,
            cwd=tempdir,
            env=full_env,
            timeout=timeout,
            stop=stop,
            stdout_limit=limit,
            stderr_limit=STDERR_LIMIT,
        )
    except OSError as exc:
        raise DirektivError(
            INTERNAL,
            f'function "{fn.id}": cannot start sh in {tempdir}: {exc.strerror or exc}',
            catchable=False,
        ) from exc
    stderr = result.stderr.decode("utf-8", "replace")
    if save_log is not None and (stderr or result.stderr_dropped):
        dropped = result.stderr_dropped
        save_log(fn.id, f"[{dropped} bytes dropped]\n{stderr}" if dropped else stderr)
    if result.end == "exited":
        if result.status == 0:
            return decode_output(result.stdout)
        last = _last_line(stderr)
        message = f'function "{fn.id}": command exited with status {result.status}'
        raise DirektivError(EXECUTION_FAILED, f"{message}: {last}" if last else message)
    if result.end == "too_large":
        raise DirektivError(
            INTERNAL,
            f'function "{fn.id}": standard output passed its limit of {limit} bytes '
            "(the command was stopped); write large results to out/ files instead",
            catchable=False,
        )
    if result.end == "timeout":
        raise _timeout(fn, timeout)
    raise _cancelled()


def _call_url(
    fn: Function,
    url: str,
    data: bytes,
    aid: str,
    tempdir: str,
    var_url: str,
    timeout: float,
    stop: threading.Event,
    iterator: int,
    limit: int,
) -> Any:
    headers = {
        "Content-Type": "application/json",
        "Direktiv-ActionID": aid,
        "Direktiv-Iterator": str(iterator),
        "Direktiv-TempDir": tempdir,
        "Statebox-Var-URL": var_url,
    }
    result = post(url, data, headers, timeout=timeout, stop=stop, limit=limit)
    where = f'function "{fn.id}" ({shown_url(url)})'
    if result.end == "replied":
        reply = result.headers or {}
        code = reply.get("direktiv-errorcode", "")
        if code:
            raise DirektivError(code, reply.get("direktiv-errormessage", ""))
        if not 200 <= result.status < 300:
            last = _last_line(result.body[:4096].decode("utf-8", "replace"))
            message = f"{where} replied HTTP {result.status}"
            raise DirektivError(CONTAINER_FAILED, f"{message}: {last}" if last else message)
        return decode_output(result.body)
    if result.end == "too_large":
        raise DirektivError(
            INTERNAL, f"{where}: reply larger than its limit of {limit} bytes", catchable=False
        )
    if result.end == "failed":
        raise DirektivError(INTERNAL, f"{where}: call failed: {result.problem}", catchable=False)
    if result.end == "timeout":
        raise _timeout(fn, timeout)
    raise _cancelled()


def _timeout(fn: Function, timeout: float) -> DirektivError:
    return DirektivError(
        TIMEOUT, f'operation timed out: function "{fn.id}" ran past its timeout of {timeout:g}s'
    )


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip()[:400] if lines else ""
