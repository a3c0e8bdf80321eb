"""Reading a run record's JSON fields (:meth:`.records.RunRecord.from_json`): each
field's type checked, a wrong one a :class:`~statebox.core.errors.CorruptEntryError`
naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.clock import parse_timestamp
from ..core.errors import CorruptEntryError

__all__ = [
    "corrupt",
    "integer_field",
    "mapping_field",
    "optional_text",
    "seconds_between",
    "started_ns",
    "text_field",
]


def corrupt(message: str) -> CorruptEntryError:
    return CorruptEntryError(f"malformed run record: {message}")


def mapping_field(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise corrupt(f"{what} must be a JSON object")
    return data


def text_field(fields: Mapping[str, Any], name: str, what: str, default: str | None = None) -> str:
    value = fields.get(name, default)
    if not isinstance(value, str):
        raise corrupt(f"{what} needs {name} as a string")
    return value


def optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise corrupt(f"{name} must be a string or null")
    return value


def integer_field(fields: Mapping[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise corrupt(f"{name} must be an integer or null")
    return value


def seconds_between(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    try:
        return max(0.0, (parse_timestamp(end) - parse_timestamp(start)) / 1e9)
    except ValueError:
        return None


def started_ns(started_at: str) -> int:
    """A record's start time in ns since the epoch (0 when it cannot be read: listed last)."""
    try:
        return parse_timestamp(started_at)
    except ValueError:
        return 0
