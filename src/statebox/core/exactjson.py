"""Reading JSON text that carries values: the one exact-number JSON parser (#13 item 3).

Every number literal is kept exactly as written — ``1.2300``, ``1E5``, ``-0``, an integer
of 5,000 digits — never rounded through a float, and nesting deeper than
:data:`MAX_DEPTH` is refused before anything parses (a parser recursing 100,000 levels
fails with ``RecursionError``). Every place that parses JSON which may hold a user's
value parses it here: normalization (:mod:`statebox.core.values`), the transforms, the
server's request bodies and the ``http://`` backend's answers (through
:mod:`statebox.wire.codec`).

One decoder configuration (:func:`literal_decoder`), two shapes of number:

* :func:`parse_literals` gives :class:`NumberLiteral` markers, which only carry their
  text: what normalization writes back verbatim. They cost a third of a ``Decimal``,
  and this module imports no ``decimal``: the CLI's ``set`` normalizes on every start.
* :func:`loads_exact` gives :class:`~statebox.core._jsonnumber.JsonNumber` — a
  ``Decimal`` whose ``str()`` is the literal — for readers that also compute with the
  numbers they read (a ttl, a limit); normalization accepts it and keeps the literal.

Integers are plain ``int`` in both, but for ``-0`` and integers longer than ``int()``
takes (4300 digits), which stay literals.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from itertools import accumulate

from .errors import InvalidValueError, NestingTooDeepError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = [
    "ENVELOPE",
    "MAX_DEPTH",
    "NumberLiteral",
    "check_depth",
    "literal_decoder",
    "loads_exact",
    "nesting_depth",
    "parse_literals",
    "too_deep",
]

#: The deepest nesting of arrays and objects a JSON text may have, wherever statebox
#: parses one (values, request bodies, CLI arguments, responses, record files). Go's
#: encoding/json allows 10,000; Python's parser and every recursive step after it (jq's
#: result matching, patches, the exact-literal encoder) recurse, and 256 levels keep all
#: of them far from the interpreter's recursion limit, far above any real state.
MAX_DEPTH: Final = 256
#: Levels a document on the wire may nest around the values it carries (a response's
#: ``{"results": [{"current": {"value": ...}}]}``, a body's ``{"ops": [{"value": ...}]}``).
ENVELOPE: Final = 4


# --- nesting depth ---------------------------------------------------------------------

# A JSON string: brackets inside one do not nest anything. Compiled on first use (by
# re's cache): only text with more brackets than the limit is measured, and compiling
# them would cost every CLI start a quarter of a millisecond.
_STRING: Final = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_NOT_BRACKET: Final = r"[^\[\]{}]+"
# Openers to +1, closers to -1 (as signed bytes).
_STEPS: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def nesting_depth(text: str | bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``text`` (``1`` is 0, ``[]``
    1, ``[{}]`` 2), without parsing it: the most brackets open at once outside strings.
    (On text that is not JSON the answer means little; the parser refuses it anyway.)"""
    from array import array

    if isinstance(text, str):
        outside = re.sub(_STRING, "", text, flags=re.DOTALL)
        brackets = re.sub(_NOT_BRACKET, "", outside).encode("ascii")
    else:
        outside_bytes = re.sub(_STRING.encode(), b"", text, flags=re.DOTALL)
        brackets = re.sub(_NOT_BRACKET.encode(), b"", outside_bytes)
    # A running sum in C (itertools), not a Python loop over every bracket.
    return max(accumulate(array("b", brackets.translate(_STEPS))), default=0)


def check_depth(text: str | bytes, what: str = "JSON value", *, envelope: int = 0) -> None:
    """Refuse ``text`` if it nests deeper than :data:`MAX_DEPTH`, before anything parses
    it (a parser recursing 100,000 levels fails with ``RecursionError``).

    Cheap on the common case: text with fewer brackets than the limit cannot nest past
    it, and counting them is one pass in C. ``what`` names the input in the error;
    ``envelope`` levels more are allowed for a document that carries values (a request
    body's ``{"ops": [{"value": ...}]}``): each value is held to the limit on its own.
    """
    limit = MAX_DEPTH + envelope
    if isinstance(text, str):
        opened = text.count("[") + text.count("{")
    else:
        opened = text.count(b"[") + text.count(b"{")
    if opened > limit:
        depth = nesting_depth(text)
        if depth > limit:
            raise too_deep(what, depth, envelope)


def too_deep(what: str, depth: int | None = None, envelope: int = 0) -> NestingTooDeepError:
    """The refusal of ``what``, nested ``depth`` levels (None: too many to count)."""
    levels = "too many" if depth is None else str(depth)
    around = f" (and {envelope} around the values it carries)" if envelope else ""
    return NestingTooDeepError(
        f"{what} is nested {levels} levels deep: the limit is {MAX_DEPTH} levels of arrays "
        f"and objects{around}"
    )


# --- the decoder -----------------------------------------------------------------------


class NumberLiteral:
    """A JSON number kept as its text: a float literal (``1.2300``, ``1E5``), ``-0``, or an
    integer too long for ``int()``. Normalization writes ``literal`` back unchanged."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return f"NumberLiteral({self.literal!r})"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@functools.cache
def literal_decoder(number: Callable[[str], Any], *, every_int: bool = True) -> json.JSONDecoder:
    """The decoder that keeps number literals: float literals become ``number(literal)``,
    and so do the integers ``int()`` cannot give back (``-0``, more than 4000 digits);
    ``NaN`` and ``Infinity`` are refused. Without ``every_int`` integers are left to the
    C scanner (faster; for text that holds no ``-0``, and a huge integer then raises)."""

    def integer(literal: str) -> Any:
        # int() would lose "-0" and refuses more than 4300 digits.
        return number(literal) if literal == "-0" or len(literal) > 4000 else int(literal)

    if not every_int:
        return json.JSONDecoder(parse_float=number, parse_constant=_reject_constant)
    return json.JSONDecoder(parse_float=number, parse_int=integer, parse_constant=_reject_constant)


_WS: Final = " \t\n\r"
# Built once (normalization parses on every write).
_LITERALS: Final = literal_decoder(NumberLiteral)
_LITERALS_FAST: Final = literal_decoder(NumberLiteral, every_int=False)


def parse_literals(text: str) -> Any:
    """One JSON value with its numbers as :class:`NumberLiteral` (integers as ``int``);
    raises :class:`~statebox.core.errors.InvalidValueError` (or ``NestingTooDeepError``).

    The C scanner calls back into Python only for float literals, so the common text is
    parsed without a callback per integer; only text that could hold a ``-0`` or a huge
    integer takes the decoder that sees every integer."""
    check_depth(text)
    exact = "-0" in text
    try:
        return _parse_one(text, _LITERALS if exact else _LITERALS_FAST)
    except ValueError as exc:  # huge integers
        if not exact and "digits" in str(exc):
            return _parse_one(text, _LITERALS)
        raise InvalidValueError(f"invalid JSON value: {exc}") from exc


def _parse_one(text: str, decoder: json.JSONDecoder) -> Any:
    try:
        value, end = decoder.raw_decode(text, len(text) - len(text.lstrip(_WS)))
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"invalid JSON value: {exc}") from exc
    if text[end:].strip(_WS):
        raise InvalidValueError(
            f"invalid JSON value: more than one JSON value (extra data at character {end})"
        )
    return value


def loads_exact(data: bytes | str, what: str = "JSON document") -> Any:
    """Parse one JSON document, its numbers as ``JsonNumber`` (a ``Decimal`` whose
    ``str()`` is the literal as written) and integers as ``int``.

    Raises ``ValueError`` (a ``NestingTooDeepError`` is one too, for a document nested
    past :data:`MAX_DEPTH` plus :data:`ENVELOPE`): callers say which input was wrong.
    """
    check_depth(data, what, envelope=ENVELOPE)
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return (_exact_decode or _first_exact_decode())(text)


_exact_decode: Callable[[str], Any] | None = None


def _first_exact_decode() -> Callable[[str], Any]:
    global _exact_decode
    from ._jsonnumber import JsonNumber  # decimal loads with the first exact document

    _exact_decode = literal_decoder(JsonNumber).decode
    return _exact_decode
