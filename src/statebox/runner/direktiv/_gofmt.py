"""Go's forms of a value, where Direktiv's behaviour shows them to a workflow.

Direktiv is written in Go, and what Go's ``encoding/json`` reads reaches the user:

* :func:`go_loads` — ``json.Unmarshal`` into an ``interface{}``: every number a
  float64 (an integer beyond 2**53 becomes the float it is there, ``-0`` is ``-0.0``,
  one past a float64's range is an error), no ``NaN``/``Infinity``, invalid UTF-8 and
  lone surrogates in strings read as U+FFFD. Every reading of JSON Direktiv does goes
  through it: :func:`json_or_base64` (a variable's bytes, a function's output: the JSON
  they are, else their base64) and :func:`instance_input` (an instance's input).
* :func:`b64decode_strict` — ``base64.StdEncoding``'s decoding (line breaks skipped).

This is Direktiv's representation of values, not statebox's: statebox's own JSON keeps
every number exactly (``statebox.core.exactjson``) and its wire carries bytes in its
envelope (``statebox.core.envelope``); here numbers are Go's float64 and bytes are the
base64 text Direktiv puts in their place.

Two of Go's text forms reach the user too:

* :func:`go_json` — ``encoding/json``'s ``Marshal``: a string mixing ``jq(...)`` with text
  writes each non-string part so (``"n=jq(.n)"`` with ``.n = 1e21`` gives ``n=1e+21``);
  compact, map keys sorted, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, a float in
  ``%f`` form between 1e-6 and 1e21 and in ``%e`` form (``1e-07`` written ``1e-7``) outside.
* :func:`go_sprint` — ``fmt.Sprint``: a ``text/plain`` setter value that is not a string,
  and an ``error`` state's arguments (``%v``): ``<nil>``, ``map[a:1 b:x]``, ``[1 2]``,
  floats in ``%g`` form (``1e+06``).

Both take the JSON values this package handles (None, bool, int, float, str, list, dict).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from decimal import Decimal
from typing import Any, Final

from ...core.errors import NestingTooDeepError
from ...core.exactjson import check_depth, too_deep

__all__ = [
    "b64decode_strict",
    "go_json",
    "go_loads",
    "go_sprint",
    "instance_input",
    "json_or_base64",
]

#: Integers up to this magnitude are exact in a float64.
_EXACT: Final = 2**53
#: A lone UTF-16 surrogate (Python's json reads ``"\\ud800"`` into one; Go: U+FFFD).
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
#: The escape of one, which only a text holding it can read into one.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")

_GO_EXTRA_ESCAPES: Final = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _digits(value: float) -> tuple[str, int]:
    """The shortest round-trip digits of ``abs(value)`` (no trailing zeros) and the
    decimal point's position: ``0.0015`` → ``("15", -2)``."""
    sign_digits_exp = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(str(d) for d in sign_digits_exp.digits).rstrip("0") or "0"
    exponent = sign_digits_exp.exponent
    assert isinstance(exponent, int)  # finite
    point = len("".join(str(d) for d in sign_digits_exp.digits)) + exponent
    if digits == "0":
        point = 1
    return digits, point


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exponential(digits: str, point: int, min_exp_digits: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    sign = "-" if exp < 0 else "+"
    return f"{mantissa}e{sign}{abs(exp):0{min_exp_digits}d}"


def _go_float_json(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(value)
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        return sign + _fixed(digits, point)
    # strconv's %e pads the exponent to two digits; encoding/json then strips the pad
    # of a negative one ("e-07" becomes "e-7"), never of a positive one.
    text = _exponential(digits, point, 2)
    if text[-4:-1] == "e-0":
        text = text[:-2] + text[-1]
    return sign + text


def _go_float_g(value: float) -> str:
    """``strconv.FormatFloat(value, 'g', -1, 64)``: shortest digits; the ``%e`` form when
    the exponent is below -4 or at least 6 (the precision Go uses for the shortest)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(value)
    exp = point - 1
    if exp < -4 or exp >= 6:
        return sign + _exponential(digits, point, 2)
    return sign + _fixed(digits, point)


def _json_parts(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_go_float_json(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False).translate(_GO_EXTRA_ESCAPES))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            _json_parts(str(key), out)
            out.append(":")
            _json_parts(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _json_parts(item, out)
        out.append("]")
    else:
        raise ValueError(f"json: unsupported type: {type(value).__name__}")


def go_json(value: Any) -> str:
    """``json.Marshal(value)`` as Go writes it. Raises ValueError for what Go refuses
    (NaN, infinities) and for types JSON has not."""
    parts: list[str] = []
    _json_parts(value, parts)
    return "".join(parts)


def go_sprint(value: Any) -> str:
    """``fmt.Sprint(value)`` (``%v``) as Go writes a decoded JSON value."""
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float_g(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = " ".join(f"{go_sprint(k)}:{go_sprint(value[k])}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_sprint(item) for item in value) + "]"
    return str(value)


# -- reading ---------------------------------------------------------------------------


def _go_int(literal: str) -> int | float:
    """An integer literal as a float64 holds it: exact while it holds it exactly, else
    the float it rounds to (``-0`` keeps its sign); past a float64's range, an error."""
    number = int(literal)
    if number == 0 and literal.startswith("-"):
        return -0.0
    if -_EXACT <= number <= _EXACT:
        return number
    try:
        return float(number)
    except OverflowError:
        raise ValueError(f"number {literal[:40]} is out of a float64's range") from None


def _go_float(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        raise ValueError(f"number {literal[:40]} is out of a float64's range")
    return number


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def go_loads(data: bytes | str, what: str = "JSON value") -> Any:
    """``data`` read as Go's ``json.Unmarshal`` reads it into an ``interface{}`` (see
    the module docstring); surrounding white space allowed. Raises ValueError when Go
    would refuse it, and (a :class:`~statebox.core.errors.NestingTooDeepError`, also a
    ValueError, naming ``what``) when it nests deeper than statebox takes any value."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        value = json.loads(
            text, parse_int=_go_int, parse_float=_go_float, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise too_deep(what) from None
    check_depth(text, what)  # parsed first: text that is not JSON is not "too deep"
    return _replace_surrogates(value) if _SURROGATE_ESCAPE.search(text) else value


def json_or_base64(data: bytes) -> Any:
    """What Direktiv makes of bytes that may be JSON (a variable's, a function's
    output): the value they are (:func:`go_loads`), else the base64 text of the bytes."""
    try:
        return go_loads(data)
    except ValueError:
        return _base64(data)


def instance_input(data: bytes, what: str = "the instance input") -> dict[str, Any]:
    """An instance's first data from its input bytes, as Direktiv's
    ``unmarshalInstanceInputData`` (``pkg/flow/engine.go``) makes it: a JSON object as it
    is, any other JSON value (``null`` too) as ``{"input": value}``, bytes that are not
    JSON (empty ones too) as ``{"input": BASE64}``. JSON nested deeper than statebox
    takes any value raises :class:`~statebox.core.errors.NestingTooDeepError` (naming
    ``what``)."""
    try:
        value = go_loads(data, what)
    except NestingTooDeepError:
        raise
    except ValueError:
        value = _base64(data)
    return value if isinstance(value, dict) else {"input": value}


def _base64(data: bytes) -> str:
    """``base64.StdEncoding.EncodeToString``: what Direktiv puts in place of bytes."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str | bytes) -> bytes:
    """``base64.StdEncoding.DecodeString``: the standard alphabet, padding required;
    ``\\r`` and ``\\n`` are skipped, as Go skips them. Raises ValueError otherwise."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    cleaned = raw.replace(b"\r", b"").replace(b"\n", b"")
    try:
        return binascii.a2b_base64(cleaned, strict_mode=True) if cleaned else b""
    except binascii.Error as exc:
        raise ValueError(f"not base64 ({exc})") from None
