"""Reading YAML nodes into typed values, collecting every problem at its place.

:class:`NodeReader` is what the DAG parser is built on: it knows the file (its path and
text, to turn a node or an offset into a :class:`~.model.Where`), collects
:class:`Problem` s instead of raising at the first one (a DAG file's problems are
reported all at once), and reads the typed values every part of a DAG file uses — a
mapping checked against its :class:`~._dag_keys.Keys` table (``<<`` merges expanded), a
string, a list of strings, a boolean, a number with its bounds, exit codes, a backoff
factor, a plain-data tree. A value of the wrong type is a problem and reads as None.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from ..core.errors import InvalidRequestError, quoted
from ._dag_keys import Keys
from ._yaml_nodes import (
    BOOL,
    FLOAT,
    INT,
    MAX_DEPTH,
    MERGE,
    NULL,
    Node,
    is_str,
    node_kind,
    node_text,
    scalar_value,
)
from .model import Where

__all__ = ["DagFileError", "NodeReader", "Problem", "Warn"]

Warn = Callable[[str], None]


class Problem(NamedTuple):
    """One thing wrong in a DAG file: ``str(problem)`` is ``file:line:column: message``."""

    where: Where
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class DagFileError(InvalidRequestError):
    """A DAG file that cannot run: bad YAML, unknown keys, cycles, … (exit code 2).

    ``problems`` holds every problem found; the message lists them, one per line.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid DAG file")


class NodeReader:
    """The nodes of one file read into values; ``problems`` collects what is wrong."""

    def __init__(self, path: str, text: str, warn: Warn) -> None:
        self.path = path
        self.text = text
        self.warn = warn
        self.problems: list[Problem] = []
        self._line_starts: list[int] | None = None

    # -- places and problems

    def where(self, node: Node) -> Where:
        mark = node.start_mark
        return Where(self.path, mark.line + 1, mark.column + 1)

    def add(self, node: Node, message: str) -> None:
        self.problems.append(Problem(self.where(node), message))

    def add_at(self, where: Where, message: str) -> None:
        self.problems.append(Problem(where, message))

    def warning(self, node: Node, message: str) -> None:
        self.warn(f"{self.where(node)}: warning: {message}")

    def offset(self, line: int, column: int) -> int:
        """The offset in the text of a 0-based line and column."""
        if self._line_starts is None:
            starts = [0]
            for match in re.finditer("\n", self.text):
                starts.append(match.end())
            self._line_starts = starts
        if line >= len(self._line_starts):
            return len(self.text)
        return self._line_starts[line] + column

    def position(self, offset: int) -> tuple[int, int]:
        """The 1-based line and column of an offset in the text."""
        import bisect

        self.offset(0, 0)
        assert self._line_starts is not None
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    # -- mappings

    def pairs(self, node: Node, depth: int = 0) -> list[tuple[Node, Node]]:
        """A mapping's (key, value) nodes, ``<<`` merges expanded (explicit keys win)."""
        explicit: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if key.tag != MERGE:
                explicit.append((key, value))
                continue
            sources = value.value if value.id == "sequence" else [value]
            for source in sources:
                if source.id != "mapping" or depth > MAX_DEPTH:
                    self.add(source, "a << merge takes a mapping or a list of mappings")
                    continue
                merged.extend(self.pairs(source, depth + 1))
        seen = {k.value for k, _ in explicit if k.id == "scalar"}
        for key, value in merged:
            if key.id == "scalar" and key.value in seen:
                continue
            seen.add(key.value)
            explicit.append((key, value))
        return explicit

    def mapping(self, node: Node, keys: Keys) -> dict[str, tuple[Node, Node]] | None:
        """The keys of ``node`` that are read, by their current names; every other key is
        a problem (unknown, or Dagu's but not implemented) or ignored."""
        what = keys.what
        if node.id != "mapping":
            self.add(node, f"{what} must be a mapping, got {node_kind(node)}")
            return None
        out: dict[str, tuple[Node, Node]] = {}
        spelled: dict[str, Node] = {}
        for key_node, value_node in self.pairs(node):
            if key_node.id != "scalar":
                self.add(key_node, f"a key in {what} must be a string, got {node_kind(key_node)}")
                continue
            raw = str(key_node.value)
            key, message = keys.spelled(raw)
            if key is None:
                assert message is not None
                self.add(key_node, message)
                continue
            if message is not None:
                self.warning(key_node, message)
            if key in spelled:
                first = spelled[key]
                again = (
                    f"duplicate key {quoted(raw)}"
                    if first.value == raw
                    else f"{quoted(key)} given twice (as {quoted(first.value)} and {quoted(raw)})"
                )
                self.add(key_node, f"{again} in {what} (first at line {first.start_mark.line + 1})")
                continue
            spelled[key] = key_node
            if key in keys.unsupported:
                self.add(
                    key_node,
                    f"{quoted(key)} in {what} is a Dagu key that statebox's runner does not "
                    "support",
                )
                continue
            note = keys.note(key)
            if note is not None:
                self.warning(key_node, note)
                continue
            if key in keys.ignored:
                if keys.warn_ignored:
                    self.warning(key_node, f"{key} of {what} is not checked by statebox")
                continue
            out[key] = (key_node, value_node)
        return out

    # -- typed values

    def string(self, node: Node, what: str) -> str | None:
        if node.id != "scalar" or node.tag == NULL:
            self.add(node, f"{what} must be a string, got {node_kind(node)}")
            return None
        return str(node.value)

    def strings(self, node: Node, what: str, *, allow_empty: bool = True) -> list[str] | None:
        """A string, or a list of strings (numbers and booleans as written)."""
        if node.id == "scalar" and node.tag != NULL:
            return [str(node.value)]
        if node.id == "sequence":
            items: list[str] = []
            ok = True
            for item in node.value:
                if item.id != "scalar" or item.tag == NULL:
                    self.add(item, f"each entry of {what} must be a string, got {node_kind(item)}")
                    ok = False
                else:
                    items.append(str(item.value))
            if not items and ok and not allow_empty:
                self.add(node, f"{what} must not be empty")
                return None
            return items if ok else None
        self.add(node, f"{what} must be a string or a list of strings, got {node_kind(node)}")
        return None

    def boolean(self, node: Node, what: str) -> bool | None:
        if node.id == "scalar" and node.tag == BOOL:
            return bool(scalar_value(node))
        self.add(node, f"{what} must be true or false, got {node_kind(node)}")
        return None

    def number(
        self,
        node: Node,
        what: str,
        *,
        described: str = "a number",
        integer: bool = False,
        minimum: float | None = None,
        text_ok: bool = False,
    ) -> float | None:
        value: Any = None
        if node.id == "scalar" and node.tag in (INT, FLOAT):
            value = scalar_value(node)
        elif text_ok and is_str(node) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", node.value):
            value = float(node.value) if "." in node.value else int(node.value)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            self.add(node, f"{what} must be {described}, got {node_kind(node)}")
            return None
        if integer and not float(value).is_integer():
            self.add(node, f"{what} must be a whole number, got {node.value}")
            return None
        if minimum is not None and value < minimum:
            bound = int(minimum) if float(minimum).is_integer() else minimum
            self.add(node, f"{what} must be {bound} or more, got {node.value}")
            return None
        return int(value) if integer else value

    def exit_codes(self, node: Node, what: str) -> tuple[int, ...] | None:
        items = node.value if node.id == "sequence" else [node]
        codes: list[int] = []
        for item in items:
            text_ok = item.id == "scalar" and is_str(item)
            code = self.number(
                item,
                what,
                described="an exit code (a whole number)",
                integer=True,
                minimum=0,
                text_ok=text_ok,
            )
            if code is None:
                return None
            codes.append(int(code))
        return tuple(codes)

    def backoff(self, node: Node, what: str) -> float | None:
        if node.id == "scalar" and node.tag == BOOL:
            return 2.0 if scalar_value(node) else 1.0
        value = self.number(node, what, described="true, false or a factor over 1")
        if value is None:
            return None
        if value == 0:
            return 1.0
        if value <= 1:
            self.add(
                node, f"{what} must be over 1 (the factor each wait grows by), got {node.value}"
            )
            return None
        return float(value)

    def tree(self, node: Node, depth: int = 0) -> Any:
        """A node as plain data (dicts, lists, str, int, float, bool, None)."""
        if depth > MAX_DEPTH:
            self.add(node, f"nested more than {MAX_DEPTH} levels deep (a recursive alias?)")
            return None
        if node.id == "mapping":
            out: dict[str, Any] = {}
            for key, value in self.pairs(node):
                name = node_text(key) if key.id == "scalar" else None
                if name is None:
                    self.add(key, f"a key must be a string, got {node_kind(key)}")
                    continue
                out[name] = self.tree(value, depth + 1)
            return out
        if node.id == "sequence":
            return [self.tree(item, depth + 1) for item in node.value]
        return scalar_value(node)

    def string_nodes(self, node: Node, depth: int = 0) -> Iterator[Node]:
        """Every string scalar in ``node`` (values, not keys)."""
        if depth > MAX_DEPTH:
            return
        if node.id == "mapping":
            for _, value in self.pairs(node):
                yield from self.string_nodes(value, depth + 1)
        elif node.id == "sequence":
            for item in node.value:
                yield from self.string_nodes(item, depth + 1)
        elif is_str(node):
            yield node
