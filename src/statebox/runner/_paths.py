"""The jq-style path of a reference, ``${NAME.path}``, taken into the JSON it names.

An output is JSON text, parsed with its numbers exact (:mod:`statebox.core.exactjson`:
``1000000`` stays ``1000000``, never a float). A plain path (``.a.b``, ``.a[0]``,
``.a["x y"]``, ``.[0]``, ``[0]``) is walked here, with jq's answers: ``null`` through a
missing key or index, or through ``null``; a type error (``.a`` of an array) is no
value. Any other path is a jq program, run by jq, its first result kept. Walking the
plain paths here keeps a run that only reads fields from starting jq at all.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ._ref_scan import NAME

__all__ = ["MISSING", "jq_first", "parse_json", "plain_path", "walk"]

#: Not resolved: not JSON, or a jq type error.
MISSING: Final = object()


def parse_json(text: str) -> Any:
    """``text`` as JSON with its numbers exact, or MISSING when it is not JSON."""
    from ..core.exactjson import loads_exact

    try:
        return loads_exact(text, "an output")
    except (ValueError, RecursionError):
        return MISSING


def _scanstring(text: str, end: int) -> tuple[str, int]:
    """The JSON string whose body starts at ``end`` (after its opening quote), and the
    offset after its closing quote; ValueError when there is none."""
    from json.decoder import scanstring  # type: ignore[attr-defined]

    result: tuple[str, int] = scanstring(text, end)
    return result


# A jq path this module walks itself: .name  ."name"  .[0]  .["name"]  [0]  ? suffixes.
_IDENT: Final = re.compile(NAME)
_INDEX: Final = re.compile(r"\[\s*(-?[0-9]+)\s*\]")


def plain_path(path: str) -> list[str | int] | None:
    """The steps of a plain jq path (keys and indexes), or None for any other jq."""
    steps: list[str | int] = []
    i, size = 0, len(path)
    decode = _scanstring
    while i < size:
        char = path[i]
        if char == ".":
            i += 1
            if i >= size:
                return steps if not steps else None  # "." alone: the input
            m = _IDENT.match(path, i)
            if m is not None:
                steps.append(m.group())
                i = m.end()
            elif path[i] == '"':
                try:
                    key, i = decode(path, i + 1)
                except ValueError:
                    return None
                steps.append(key)
            elif path[i] != "[":
                return None
        elif char == "[":
            m = _INDEX.match(path, i)
            if m is not None:
                steps.append(int(m.group(1)))
                i = m.end()
            elif path.startswith('["', i):
                try:
                    key, after = decode(path, i + 2)
                except ValueError:
                    return None
                if not path.startswith("]", after):
                    return None
                steps.append(key)
                i = after + 1
            else:
                return None
        else:
            return None
    return steps


def walk(value: Any, steps: list[str | int]) -> Any:
    """jq's answer for a plain path: ``null`` through a missing key or index or through
    ``null``; MISSING for a type error (``.a`` of an array, ``.[0]`` of an object)."""
    for step in steps:
        if value is None:
            continue
        if isinstance(step, str):
            if not isinstance(value, dict):
                return MISSING
            value = value.get(step)
        else:
            if not isinstance(value, list):
                return MISSING
            index = step + len(value) if step < 0 else step
            value = value[index] if 0 <= index < len(value) else None
    return value


def jq_first(path: str, text: str) -> Any:
    """The first result of the jq program ``path`` on ``text``, or MISSING."""
    from .._jq import run_jq
    from ..core.errors import StateboxError
    from ..transforms import DEFAULT_JQ_TIMEOUT

    try:
        result = run_jq(f"first({path})", text, DEFAULT_JQ_TIMEOUT)
    except (StateboxError, ValueError):
        return MISSING
    return parse_json(result)
