"""Direktiv's expressions: ``jq(...)`` anywhere in the strings of a tree, walked as
Direktiv v0.10 walks them (``pkg/jqer/jqer.go``, with the flags ``pkg/flow/jq.go`` sets).

The walk (:func:`evaluate`):

* a map is walked value by value (keys in sorted order, as Go's walk goes; keys are never
  evaluated), a list element by element; a bool or a number passes as it is, None stays
  None;
* a string is trimmed of white space (Go's ``strings.TrimSpace``), then cut into text and
  ``jq(...)`` parts (:func:`find_expressions`). A string that is exactly one ``jq(...)``
  gives the expression's value with its JSON type; one part of text gives that text; any
  other mix gives the concatenation, each string as it is and each other value as Go's
  ``json.Marshal`` writes it;
* each ``jq(...)`` must yield exactly one value, and not null: no value, null, several,
  or a jq error is the catchable ``direktiv.jq.badCommand`` error, its message naming the
  expression and where in the tree it stands, worded as Direktiv words it.

As in Direktiv, the data an expression sees is the instance data when it is an object
(or null); any other value is seen as ``{}``, since Direktiv decodes the data into a map
before the walk and keeps an empty map when that fails.

Numbers are Go's float64 in Direktiv: jq's output is read as Go reads JSON
(:func:`._gofmt.go_loads`), so an integer beyond 2**53 becomes the float it would be
there (and is written as Go writes it in a concatenation).

jq runs through :func:`statebox._jq.run_jq`, in a worker process bounded in time and
memory (Direktiv runs gojq with a 10-second context); its result is bounded by the JSON
value size limit. It is C jq (the ``jq`` package), not Direktiv's gojq: the rare
differences between the two (error texts, a few builtins, a ``-0`` jq yields coming back
as ``0``) show through. ``js(...)`` is found (the loader refuses it) but never run.

The brackets of ``jq(`` are matched by counting ``(`` and ``)`` with no regard for
quotes, as Direktiv's lexer does: ``jq(")")`` ends at the first ``)``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from ..._jq import run_jq
from ...core.errors import StateboxError
from ...core.values import DEFAULT_JSON_LIMIT
from ._gofmt import go_json, go_loads
from .errors import BAD_COMMAND, NOT_OBJECT, DirektivError

__all__ = [
    "evaluate",
    "evaluate_object",
    "find_expressions",
    "truthy",
]

#: The error of :func:`find_expressions` for a ``jq(`` without its ``)``: jqer.go's words.
MISSING_BRACKET: Final = "jq/js script missing bracket"
#: What Go's ``strings.TrimSpace`` removes: Unicode's White_Space characters.
_GO_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_OPENERS: Final = ("jq(", "js(")


def find_expressions(text: str) -> list[tuple[str, str]]:
    """``text`` cut into ``("text", part)``, ``("jq", body)`` and ``("js", body)`` tokens,
    in order; no empty text token.

    A body runs from after ``jq(`` to the ``)`` that closes it, counting brackets without
    regard for quotes. Raises ValueError(``"jq/js script missing bracket"``) when one
    never closes.
    """
    tokens: list[tuple[str, str]] = []
    start = 0
    while True:
        found = [(i, opener) for opener in _OPENERS if (i := text.find(opener, start)) >= 0]
        if not found:
            if start < len(text):
                tokens.append(("text", text[start:]))
            return tokens
        at, opener = min(found)
        if at > start:
            tokens.append(("text", text[start:at]))
        depth = 0
        end = at + len(opener)
        while True:
            if end >= len(text):
                raise ValueError(MISSING_BRACKET)
            char = text[end]
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth < 0:
                    break
            end += 1
        tokens.append((opener[:2], text[at + len(opener) : end]))
        start = end + 1


class _Failure(Exception):
    """A failure deep in the walk; each level adds where it stands, as jqer.go does."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Walk:
    """One evaluation: the data's JSON text is made once, for every ``jq(...)``."""

    def __init__(self, data: Any, timeout: float, limit: int) -> None:
        # Direktiv decodes the data into a map: what is not an object (nor null) is {}.
        self.data = data if data is None or isinstance(data, dict) else {}
        self.timeout = timeout
        self.limit = limit
        self._text: str | None = None

    def input_text(self) -> str:
        if self._text is None:
            try:
                self._text = json.dumps(self.data, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise _Failure(f"the instance data is not JSON: {exc}") from None
        return self._text

    def tree(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float)):
            return node
        if isinstance(node, str):
            return self.string(node)
        if isinstance(node, dict):
            result: dict[Any, Any] = {}
            for key in sorted(node, key=str):
                try:
                    result[key] = self.tree(node[key])
                except _Failure as failure:
                    raise _Failure(f"error in '{key}': {failure.message}") from None
            return result
        if isinstance(node, (list, tuple)):
            items: list[Any] = []
            for index, item in enumerate(node):
                try:
                    items.append(self.tree(item))
                except _Failure as failure:
                    raise _Failure(f"error in element {index}: {failure.message}") from None
            return items
        raise _Failure(f"unexpected type: {type(node).__name__}")

    def string(self, text: str) -> Any:
        try:
            tokens = find_expressions(text.strip(_GO_SPACE))
        except ValueError as exc:
            raise _Failure(str(exc)) from None
        parts = [self.token(kind, body) for kind, body in tokens]
        if len(parts) == 1:
            return parts[0]
        try:
            return "".join(part if isinstance(part, str) else go_json(part) for part in parts)
        except ValueError as exc:  # pragma: no cover - jq yields JSON
            raise _Failure(str(exc)) from None

    def token(self, kind: str, body: str) -> Any:
        if kind == "text":
            return body
        if kind == "js":
            raise _Failure(f"js query {body}: js(...) is not supported by statebox; use jq(...)")
        try:
            text = run_jq(body, self.input_text(), self.timeout, self.limit)
        except StateboxError as exc:
            if "yielded no value" in exc.message:
                raise _Failure(f"error in jq query {body}: no results") from None
            if "yielded more than one value" in exc.message:
                raise _Failure("jq query produced multiple outputs") from None
            raise _Failure(f"error executing jq query {body}: {exc.message}") from None
        try:
            value = go_loads(text)  # jq's numbers as Direktiv's float64s
        except ValueError as exc:  # a number past a float64's range
            raise _Failure(f"error executing jq query {body}: {exc}") from None
        if value is None:
            raise _Failure(f"error in jq query {body}: no results")
        return value


def evaluate(tree: Any, data: Any, *, timeout: float = 5.0, limit: int = DEFAULT_JSON_LIMIT) -> Any:
    """``tree`` with every ``jq(...)`` in its strings evaluated against ``data`` (see the
    module docstring). ``timeout`` bounds each jq run (seconds), ``limit`` each value it
    gives (bytes).

    Raises the catchable :class:`DirektivError` ``direktiv.jq.badCommand``.
    """
    if tree is None:
        return None
    try:
        return _Walk(data, timeout, limit).tree(tree)
    except _Failure as failure:
        raise DirektivError(BAD_COMMAND, f"failed to evaluate jq/js: {failure.message}") from None


def evaluate_object(
    tree: Any, data: Any, *, timeout: float = 5.0, limit: int = DEFAULT_JSON_LIMIT
) -> dict[str, Any]:
    """:func:`evaluate`, whose result must be an object (a ``transform``): else the
    catchable ``direktiv.jq.notObject`` error, in Direktiv's words."""
    return as_object(evaluate(tree, data, timeout=timeout, limit=limit))


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is an object (what a ``transform`` yields, what an action's
    input is made from); else the catchable ``direktiv.jq.notObject``, in Direktiv's words."""
    if not isinstance(value, dict):
        raise DirektivError(NOT_OBJECT, "the `jq` or `js` command produced a non-object output")
    return value


def truthy(value: Any) -> bool:
    """Direktiv's truth of a switch condition's value: false for null, ``false``, ``0``,
    ``""``, ``[]`` and ``{}``; true for every other value."""
    if value is None or value is False:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return False  # Go's truth() knows only the JSON types
