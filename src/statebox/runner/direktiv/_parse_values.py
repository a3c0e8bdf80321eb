"""The values a Direktiv workflow's parts share, read from YAML nodes with their places:
expressions (kept as written, their ``jq(...)`` checked), durations, state references,
``catch`` lists and ``retries``.

:class:`ValueReader` is the base the state and workflow readers are built on (a
:class:`~.._node_reader.NodeReader`, so every problem has its file, line and column).
References to states (transitions) are only noted here: they are checked once every
state has been read.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ...core.errors import quoted
from .._node_reader import NodeReader, Warn
from .._yaml_nodes import MAX_DEPTH, NULL, Node, is_str, node_kind
from ._parse_keys import CATCH_KEYS, RETRY_KEYS
from .durations import parse_duration
from .errors import pattern_regex
from .model import Catch, Retries

__all__ = ["StateRef", "ValueReader"]


class StateRef(NamedTuple):
    """A state named by ``what`` (``transition``, ``start.state``, …) at ``node``."""

    name: str
    node: Node
    what: str


class ValueReader(NodeReader):
    """A :class:`NodeReader` that also reads Direktiv's shared values."""

    def __init__(self, path: str, text: str, warn: Warn) -> None:
        super().__init__(path, text, warn)
        self.state_refs: list[StateRef] = []

    # -- expressions

    def expression(self, node: Node, what: str) -> Any:
        """``node`` as plain data, each of its strings' ``jq(...)`` checked: balanced
        brackets (counted as Direktiv's lexer counts them), and no ``js(...)``."""
        for string in self._strings(node):
            self.check_expressions(string, what)
        return self.tree(node)

    def check_expressions(self, node: Node, what: str) -> None:
        from .expressions import find_expressions

        try:
            tokens = find_expressions(str(node.value))
        except ValueError as exc:
            self.add(node, f"{what}: a jq( or js( without its closing bracket ({exc})")
            return
        if any(kind == "js" for kind, _ in tokens):
            self.add(node, f"{what}: js(...) is not supported; use jq(...)")

    def _strings(self, node: Node, depth: int = 0) -> list[Node]:
        if depth > MAX_DEPTH:
            return []
        if node.id == "mapping":
            return [s for _, value in self.pairs(node) for s in self._strings(value, depth + 1)]
        if node.id == "sequence":
            return [s for item in node.value for s in self._strings(item, depth + 1)]
        return [node] if is_str(node) else []

    @staticmethod
    def is_literal(node: Node) -> bool:
        """A string with no expression in it."""
        return bool(is_str(node) and "jq(" not in node.value and "js(" not in node.value)

    # -- plain values

    def scalar(self, node: Node, what: str, *, required: bool = False) -> str | None:
        """A string (a number or a boolean as written); ``required``: not empty."""
        if node.id != "scalar" or node.tag == NULL:
            self.add(node, f"{what} must be a string, got {node_kind(node)}")
            return None
        value = str(node.value)
        if required and not value:
            self.add(node, f"{what} must not be empty")
            return None
        return value

    def choice(self, node: Node, what: str, choices: tuple[str, ...]) -> str | None:
        value = self.scalar(node, what)
        if value is None:
            return None
        if value not in choices:
            from .._dag_keys import did_you_mean

            listed = ", ".join(quoted(c) for c in choices[:-1]) + " or " + quoted(choices[-1])
            hint = did_you_mean(value, choices)
            self.add(node, f"{what} must be {listed}, got {quoted(value)}{hint}")
            return None
        return value

    def duration(self, node: Node, what: str) -> float | None:
        """An ISO 8601 duration (``PT30S``) in seconds."""
        value = self.scalar(node, what, required=True)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.add(node, f"{what}: {exc}")
            return None

    def pattern(self, node: Node, what: str) -> str | None:
        """An error-code pattern (``catch.error``, ``retries.codes``)."""
        value = self.scalar(node, what, required=True)
        if value is None:
            return None
        if pattern_regex(value) is None:
            # Matched at run time as it is compiled here (errors.code_matches): a pattern
            # that does not compile would silently match nothing.
            self.add(
                node,
                f"{what} {quoted(value)} is not a valid pattern: it must be a regular "
                "expression, or * alone for any code (write .* for any text within one)",
            )
            return None
        return value

    def items(self, node: Node, what: str, *, required: bool = False) -> list[Node]:
        """The entries of a list (null: none); ``required``: at least one."""
        if node.id == "scalar" and node.tag == NULL and not required:
            return []
        if node.id != "sequence":
            self.add(node, f"{what} must be a list, got {node_kind(node)}")
            return []
        if required and not node.value:
            self.add(node, f"{what} must not be empty")
        return list(node.value)

    # -- references, catch, retries

    def state_ref(self, node: Node, what: str) -> str | None:
        """A state's id (checked once every state is read); "" is none, as in Direktiv."""
        name = self.scalar(node, what)
        if not name:
            return None
        self.state_refs.append(StateRef(name, node, what))
        return name

    def catches(self, node: Node) -> tuple[Catch, ...]:
        out: list[Catch] = []
        for item in self.items(node, "catch"):
            keys = self.mapping(item, CATCH_KEYS)
            if keys is None:
                continue
            if "error" not in keys:
                self.add(item, "a catch entry needs error: (a pattern of error codes, * for any)")
                continue
            error = self.pattern(keys["error"][1], "catch error")
            transition = None
            if "transition" in keys:
                transition = self.state_ref(keys["transition"][1], "catch transition")
            if error is not None:
                out.append(Catch(error, transition, self.where(item)))
        return tuple(out)

    def retries(self, node: Node) -> Retries | None:
        keys = self.mapping(node, RETRY_KEYS)
        if keys is None:
            return None
        attempts: float | None = None
        if "max_attempts" in keys:
            attempts = self.number(
                keys["max_attempts"][1], "retries.max_attempts", integer=True, minimum=1
            )
        else:
            self.add(node, "retries needs max_attempts: (1 or more)")
        codes: list[str] = []
        if "codes" in keys:
            for item in self.items(keys["codes"][1], "retries.codes", required=True):
                code = self.pattern(item, "each of retries.codes")
                if code is not None:
                    codes.append(code)
        else:
            self.add(node, "retries needs codes: (the patterns of the error codes retried)")
        # Direktiv waits 5 s when no delay is given (retryDelay in action-helpers.go).
        delay: float | None = 5.0
        if "delay" in keys:
            delay = self.duration(keys["delay"][1], "retries.delay")
        multiplier: float | None = 1.0
        if "multiplier" in keys:
            multiplier = self.number(keys["multiplier"][1], "retries.multiplier", minimum=0)
        if attempts is None or not codes or delay is None or multiplier is None:
            return None
        return Retries(int(attempts), tuple(codes), delay, float(multiplier) or 1.0)
