"""What the CLI prints: the SPEC §4 line (``--format json``) or readable text (``table``).

The JSON line is the result's Dagu envelope, rendered by :mod:`statebox.core.envelope`
(the renderer every face shares; results are plain data). The table view is derived from
the same envelope, so a new command's result renders without code here: scalar
fields become ``field  value`` lines, and a list of objects (``entries``, ``versions``)
becomes a table with a header row.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from ..core.envelope import EmbeddedJSON, dumps_envelope, envelope, envelope_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    from ..core.envelope import Result

__all__ = ["Envelope", "render_table", "write_result"]

_CELL_WIDTH = 60  # longer table cells are cut with "…"; the field view shows them whole
_SHORT_HASH = 12


#: What a command handler returns: a result, which :mod:`statebox.core.envelope` renders.
Envelope: TypeAlias = "Result"


def _text(value: Any) -> str:
    if isinstance(value, EmbeddedJSON):
        return value.text
    if isinstance(value, str):
        return value
    # Lists and objects as compact JSON (non-ASCII kept); true / false / null / numbers
    # as JSON spells them.
    return dumps_envelope(value)


def _cell(column: str, value: Any) -> str:
    text = _text(value)
    if column == "hash" and len(text) > _SHORT_HASH:
        return text[:_SHORT_HASH]
    if len(text) > _CELL_WIDTH:
        return text[: _CELL_WIDTH - 1] + "…"
    return text


def _heading(name: str) -> str:
    """``createdAt`` → ``CREATED_AT``."""
    return "".join(f"_{ch}" if ch.isupper() else ch for ch in name).upper()


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, Mapping) for v in value)


def _table(rows: Sequence[Mapping[str, Any]], skip: Mapping[str, Any]) -> list[str]:
    if not rows:
        return ["(none)"]
    columns: list[str] = []
    for row in rows:
        for name in row:
            # scope/namespace repeat the envelope's on every row: shown once, above.
            if name not in columns and not (name in skip and row[name] == skip[name]):
                columns.append(name)
    cells = [[_cell(c, row.get(c, "")) for c in columns] for row in rows]
    header = [_heading(c) for c in columns]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(columns))]
    return [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *cells]
    ]


def render_table(data: Mapping[str, Any]) -> str:
    """An envelope as text for people: aligned fields, then any list as a table."""
    # "operation" only echoes the command the person just typed.
    fields = [(k, v) for k, v in data.items() if k != "operation" and not _is_rows(v)]
    width = max((len(k) for k, _ in fields), default=0)
    lines = [f"{k.ljust(width)}  {_text(v)}" for k, v in fields]
    skip = {k: data[k] for k in ("scope", "namespace") if k in data}
    for name, value in data.items():
        if _is_rows(value):
            lines.append("")
            lines.append(f"{name}:")
            lines.extend(_table(value, skip))
    return "\n".join(lines)


def write_result(result: Envelope, fmt: str, reveal: bool = False) -> None:
    """Print one result to standard output as UTF-8 bytes, whatever the locale says;
    values of secret keyspaces masked unless ``reveal`` (``--reveal``)."""
    if fmt == "json":
        text = envelope_json(result, reveal)
    else:
        text = render_table(envelope(result, reveal))
    out = sys.stdout.buffer
    out.write(text.encode("utf-8") + b"\n")
    out.flush()
