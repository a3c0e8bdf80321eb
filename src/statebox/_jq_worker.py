"""The jq worker: a child process that evaluates jq expressions for :mod:`statebox._jq`.

Run as a script (``python -I _jq_worker.py``), never imported by the engine: it needs
only the standard library and the ``jq`` package. Why a process at all: the ``jq``
binding holds the GIL while jq runs, so a thread cannot be abandoned at a deadline — only
a process can be killed. The parent starts it with an empty environment (so ``$ENV`` and
``env`` reveal nothing) and a bounded address space (so a runaway expression dies
instead of eating the machine's memory).

Protocol, one JSON object per line each way:
request ``{"expr": str, "input": str}`` → response ``{"outputs": [json_text, ...]}``
(at most two: the caller only needs to know "one" from "more than one"), or
``{"error": "compile" | "runtime", "message": str}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: Address-space cap of the worker (bytes): jq aborts when it is exceeded.
MEMORY_LIMIT = 1 << 30
_CACHE_SIZE = 256


def _limit_memory() -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    if soft == resource.RLIM_INFINITY or soft > cap:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _evaluate(programs: dict[str, Any], expr: str, text: str) -> dict[str, Any]:
    import jq  # type: ignore[import-not-found,unused-ignore]

    program = programs.get(expr)
    if program is None:
        # Inside parentheses a module directive (import/include, which could read JSON
        # files from disk) is a syntax error. The newline keeps a trailing "# comment"
        # from eating the ")".
        try:
            program = jq.compile(f"limit(2; ({expr}\n))")
        except ValueError as exc:
            return {"error": "compile", "message": _compile_error(jq, expr, exc)}
        if len(programs) >= _CACHE_SIZE:
            programs.clear()
        programs[expr] = program
    try:
        out = program.input_text(text).text()
    except Exception as exc:  # jq reports every runtime error as ValueError
        return {"error": "runtime", "message": str(exc).strip() or type(exc).__name__}
    # jq prints each output on one line (strings escape their newlines).
    return {"outputs": out.split("\n") if out else []}


def _compile_error(jq: Any, expr: str, wrapped_error: ValueError) -> str:
    """The message of compiling ``expr`` alone: its positions are the user's own."""
    try:
        jq.compile(expr)  # compiled only, never run
    except ValueError as exc:
        return str(exc).strip()
    return str(wrapped_error).strip()


def main() -> None:
    _limit_memory()
    programs: dict[str, Any] = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        request = json.loads(line)
        response = _evaluate(programs, request["expr"], request["input"])
        stdout.write(json.dumps(response).encode("ascii") + b"\n")
        stdout.flush()


if __name__ == "__main__":
    main()
