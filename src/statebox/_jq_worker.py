"""The jq worker: a child process that evaluates jq expressions for :mod:`statebox._jq`.

Run as a script (``python -I _jq_worker.py``), never imported by the engine: it needs
only the standard library and the ``jq`` package. Why a process at all: the ``jq``
binding holds the GIL while jq runs, so a thread cannot be abandoned at a deadline — only
a process can be killed. The parent starts it with an empty environment (so ``$ENV`` and
``env`` reveal nothing) and a bounded address space (so a runaway expression dies
instead of eating the machine's memory).

Protocol: a request is one JSON line ``{"expr": str, "input": str, "limit": int}``; a
response is one JSON line, ``{"outputs": n, "bytes": size}`` (``n`` is 0, 1 or 2: the
caller only needs "one" from "more than one") followed, when ``n`` is 1, by exactly
``size`` bytes: the value as compact UTF-8 JSON. Or ``{"error": "compile" | "runtime",
"message": str}`` (the message cut to :data:`MAX_MESSAGE` characters), or ``{"error":
"too_large", "bytes": size}`` when the value has at least ``size`` bytes, more than
``limit`` (the value size limit): a value the store would refuse is never sent, so
neither process holds more of it than it must, and the caller reads a bounded amount.
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: Address-space cap of the worker (bytes): jq aborts when it is exceeded.
MEMORY_LIMIT = 1 << 30
#: Characters of an error message sent back (``error("x" * 1e8)`` is a message too).
MAX_MESSAGE = 2000
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


def _evaluate(
    programs: dict[str, Any], expr: str, text: str, limit: int
) -> tuple[dict[str, Any], bytes]:
    import jq  # type: ignore[import-not-found,unused-ignore]

    program = programs.get(expr)
    if program is None:
        # Inside parentheses a module directive (import/include, which could read JSON
        # files from disk) is a syntax error. The newline keeps a trailing "# comment"
        # from eating the ")".
        try:
            program = jq.compile(f"limit(2; ({expr}\n))")
        except ValueError as exc:
            return _error("compile", _compile_error(jq, expr, exc)), b""
        if len(programs) >= _CACHE_SIZE:
            programs.clear()
        programs[expr] = program
    try:
        values = list(program.input_text(text))  # at most two (the limit above)
    except MemoryError:
        raise
    except Exception as exc:  # jq reports every runtime error as ValueError
        return _error("runtime", str(exc).strip() or type(exc).__name__), b""
    if len(values) != 1:
        return {"outputs": len(values), "bytes": 0}, b""
    value = values[0]
    if isinstance(value, str) and len(value) + 2 > limit:
        # A long string is refused by its length (each character is at least one
        # byte), before a JSON copy of it is made.
        return {"error": "too_large", "bytes": len(value) + 2}, b""
    # Compact and unescaped: no larger than the stored (normalized) form, which escapes
    # more, so a value within the limit passes. (Except where the caller puts back a
    # shorter number literal of the input that jq left as it was: jq yields 1e300 as its
    # 301 digits. A document of such numbers may be refused here.) NaN is written as
    # such; the caller refuses it as not JSON.
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )
    if len(data) > limit:
        return {"error": "too_large", "bytes": len(data)}, b""
    return {"outputs": 1, "bytes": len(data)}, data


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": kind, "message": message[:MAX_MESSAGE]}


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
        try:
            response, data = _evaluate(
                programs, request["expr"], request["input"], request["limit"]
            )
        except MemoryError:  # past the address-space cap outside jq: die as jq would
            sys.exit(3)
        stdout.write(json.dumps(response).encode("ascii") + b"\n")
        stdout.write(data)
        stdout.flush()


if __name__ == "__main__":
    main()
