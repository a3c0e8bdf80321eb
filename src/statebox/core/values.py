"""Value normalization, hashing and size limits (SPEC §2).

A JSON value is stored as its *normalized* bytes, byte-compatible with Dagu (Go's
``encoding/json`` with number literals kept verbatim): compact, object keys sorted by code
point, last duplicate key wins, Go's string escaping, invalid UTF-8 and lone surrogates
replaced by U+FFFD. The hash is the lower-case hex SHA-256 of those bytes.

JSON text is parsed by :mod:`statebox.core.exactjson`, the one exact-number parser
(which also holds :data:`MAX_DEPTH`, :func:`check_depth` and :func:`nesting_depth`,
re-exported here for their many readers). Speed: values without floats (and without
``-0``) are encoded by the C encoder; only values that contain a float take the slower
exact-literal encoder.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Callable

from .errors import InvalidValueError, ValueTooLargeError, quoted
from .exactjson import (
    MAX_DEPTH,
    NumberLiteral,
    check_depth,
    nesting_depth,
    parse_literals,
    too_deep,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final, NamedTuple, Protocol

    class _Digest(Protocol):
        def hexdigest(self) -> str: ...
else:  # typing.NamedTuple's class, built faster (a CLI start defines it)
    from ._tuples import NamedTuple

__all__ = [
    "DEFAULT_BINARY_LIMIT",
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_JSON_LIMIT",
    "JSON_CONTENT_TYPE",
    "MAX_DEPTH",
    "Blob",
    "NormalizedValue",
    "RawJSON",
    "check_depth",
    "nesting_depth",
    "normalize",
    "normalize_blob",
    "sha256_hex",
]

JSON_CONTENT_TYPE: Final = "application/json"
DEFAULT_JSON_LIMIT: Final = 1_048_576
DEFAULT_BINARY_LIMIT: Final = 32 * 1_048_576
#: Versions of each key a store keeps (StateStore's and the server's default); here, beside
#: the other limits, so the server's settings need not import the engine for it.
DEFAULT_HISTORY_LIMIT: Final = 10


class RawJSON:
    """JSON *text* to be parsed and normalized, as opposed to a Python value.

    ``store.set("k", "abc")`` stores the JSON string ``"abc"``;
    ``store.set("k", RawJSON("[1, 2]"))`` stores the array ``[1,2]``.
    (A plain class, not a tuple, so it can never be mistaken for a JSON array.)
    """

    __slots__ = ("text",)

    def __init__(self, text: str | bytes) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawJSON({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawJSON) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class Blob:
    """Raw bytes with a content type (Direktiv's file variables, tarballs, text)."""

    __slots__ = ("content_type", "data")

    def __init__(self, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.data = data
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"Blob(<{len(self.data)} bytes>, {self.content_type!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Blob)
            and other.data == self.data
            and other.content_type == self.content_type
        )

    def __hash__(self) -> int:
        return hash((self.data, self.content_type))


class NormalizedValue(NamedTuple):
    """What a backend stores: the bytes, their content type and their hash."""

    data: bytes
    content_type: str
    hash: str

    @property
    def is_json(self) -> bool:
        return self.content_type == JSON_CONTENT_TYPE


def sha256_hex(data: bytes) -> str:
    return _sha256(data).hexdigest()


# hashlib loads OpenSSL: about 3 ms, more than the rest of a command-line write. The
# interpreter's own SHA-256 module loads in a twentieth of that and is as fast on small
# values, but several times slower on large ones (no SHA extensions). So the first few
# small values a process hashes go to it; any other value, and every one after them, to
# hashlib. The digest is the same.
_SMALL_HASHES = 8
_SMALL_VALUE = 16384


def _first_sha256(data: bytes) -> _Digest:
    global _SMALL_HASHES, _sha256
    if _SMALL_HASHES and len(data) <= _SMALL_VALUE and "hashlib" not in sys.modules:
        _SMALL_HASHES -= 1
        for name in ("_sha256", "_sha2"):  # Python 3.11; 3.12 and later
            try:
                digest: _Digest = __import__(name).sha256(data)
                return digest
            except ImportError:
                pass
    import hashlib

    _sha256 = hashlib.sha256  # from now on, without this function
    return _sha256(data)


_sha256: Callable[[bytes], _Digest] = _first_sha256


# --- invalid UTF-8 --------------------------------------------------------------------


def _go_replace(exc: UnicodeError) -> tuple[str, int]:
    """Replace one invalid byte with U+FFFD and resume at the next, as Go does."""
    if not isinstance(exc, UnicodeDecodeError):  # pragma: no cover - registered for decode
        raise exc
    return "\ufffd", exc.start + 1


codecs.register_error("statebox-go-replace", _go_replace)


# --- encoding -------------------------------------------------------------------------

# Go escapes these five even with HTML escaping's reasons long gone; Dagu keeps them.
_GO_EXTRA_ESCAPES: Final = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
# Compiled on first use (by re's cache), for text that is not ASCII: a quarter of a
# millisecond that a CLI start need not pay.
_SURROGATE: Final = "[\ud800-\udfff]"
# Built once: json.dumps with options builds a new encoder on every call.
_SORTED_COMPACT: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
)
# What json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True) uses,
# built once (allow_nan stays at its default: a transform's value may hold floats).
_SORTED_COMPACT_ANY: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True
)
_encode_string: Any = json.encoder.encode_basestring
# A float literal has a digit right before its "." or exponent: text without one holds
# no float (and "e" alone, as in a key like "etag", does not send it to the slow path).
_MAY_HOLD_FLOAT: Final = re.compile("[0-9][.eE]")


def _has_literal(value: Any) -> bool:
    if isinstance(value, NumberLiteral):
        return True
    if isinstance(value, dict):
        return any(_has_literal(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_literal(v) for v in value)
    return False


def _encode_exact(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, NumberLiteral):
        out.append(value.literal)
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidValueError(f"value is not JSON-serializable: {quoted(value)}")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _encode_exact(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode_exact(item, out)
        out.append("]")
    else:
        raise InvalidValueError(
            f"value is not JSON-serializable: object of type {type(value).__name__}"
        )


def _encode(value: Any, may_hold_literals: bool) -> str:
    if may_hold_literals and _has_literal(value):
        parts: list[str] = []
        _encode_exact(value, parts)
        text = "".join(parts)
    else:
        text = _SORTED_COMPACT_ANY.encode(value)
    text = _go_escape(text)
    return text if text.isascii() else re.sub(_SURROGATE, "\ufffd", text)


def _go_escape(text: str) -> str:
    # str.translate looks up every character: first check there is anything to escape.
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        return text.translate(_GO_EXTRA_ESCAPES)
    return text


# --- public entry points --------------------------------------------------------------


def _too_large(size: int, limit: int) -> ValueTooLargeError:
    return ValueTooLargeError(f"value too large: {size} bytes exceeds {limit}")


class _NeedsExact(Exception):
    """Raised inside ``json.dumps`` when a Decimal asks for the exact-literal encoder."""


def _default(obj: Any) -> Any:
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    from decimal import Decimal  # only reached for values json cannot encode

    if isinstance(obj, Decimal) and obj.is_finite():
        raise _NeedsExact
    raise TypeError(f"object of type {type(obj).__name__} is not JSON-serializable")


def _with_literals(value: Any) -> Any:
    """Turn Decimals into exact literals (``Decimal("1.2300")`` stays ``1.2300``)."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return NumberLiteral(str(value))
    if isinstance(value, dict):
        return {str(k): _with_literals(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_with_literals(v) for v in value]
    return value


def _python_to_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_default)
    except _NeedsExact:
        parts: list[str] = []
        _encode_exact(_with_literals(value), parts)
        return "".join(parts)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"value is not JSON-serializable: {exc}") from exc


def normalize(
    value: Any, *, limit: int = DEFAULT_JSON_LIMIT, binary_limit: int = DEFAULT_BINARY_LIMIT
) -> NormalizedValue:
    """Normalize a value for storage and hash it.

    ``value`` is a Python JSON value (``dict``, ``list``, ``str``, ``int``, ``float``,
    ``bool``, ``None``, ``Decimal``), or :class:`RawJSON` text, or a :class:`Blob`.
    Raises :class:`InvalidValueError` or :class:`ValueTooLargeError`.
    """
    if isinstance(value, Blob):
        return normalize_blob(value.data, value.content_type, limit=binary_limit)
    if isinstance(value, RawJSON):
        raw = value.text
        size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise _too_large(size, limit)
        text = raw.decode("utf-8", "statebox-go-replace") if isinstance(raw, bytes) else raw
    else:
        try:
            direct = _python_fast_path(value)
            if direct is not None:
                check_depth(direct)
                return _finish(direct, limit)
            text = _python_to_text(value)
        except RecursionError:  # Python data nested far past the limit
            raise too_deep("JSON value") from None
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise _too_large(size, limit)
    may_hold_literals = "-0" in text or _MAY_HOLD_FLOAT.search(text) is not None
    if len(text) > 4000 and not may_hold_literals:
        may_hold_literals = True  # a huge integer may have come back as a NumberLiteral
    return _finish(_encode(parse_literals(text), may_hold_literals), limit)


def _finish(text: str, limit: int) -> NormalizedValue:
    data = text.encode("utf-8")
    if len(data) > limit:
        raise _too_large(len(data), limit)
    return NormalizedValue(data, JSON_CONTENT_TYPE, sha256_hex(data))


def _string_keys_only(value: Any) -> bool:
    if isinstance(value, dict):
        for k, v in value.items():
            if type(k) is not str:
                return False
            if isinstance(v, (dict, list, tuple)) and not _string_keys_only(v):
                return False
        return True
    if isinstance(value, (list, tuple)):
        for v in value:  # a loop, not all(<generator>): this runs on every set
            if isinstance(v, (dict, list, tuple)) and not _string_keys_only(v):
                return False
    return True


def _python_fast_path(value: Any) -> str | None:
    """Python data encodes straight to the normal form with the C encoder.

    A Python float's literal is its ``repr``, which ``json.dumps`` writes, and a dict has
    no duplicate keys, so one sorted compact dump is already normalized — except for
    what it cannot do: Decimals, non-string keys (sorting mixed types), and lone
    surrogates (replacing them could merge two keys). Those return ``None`` and take
    the text route.
    """
    if not _string_keys_only(value):
        return None  # json.dumps would sort 9 before 10, not "10" before "9"
    try:
        text = _SORTED_COMPACT.encode(value)
    except (TypeError, ValueError):
        return None
    if not text.isascii() and re.search(_SURROGATE, text):
        return None
    return _go_escape(text)


def normalize_blob(
    data: bytes, content_type: str, *, limit: int = DEFAULT_BINARY_LIMIT
) -> NormalizedValue:
    """Check a binary entry against its limit and hash it (no transformation)."""
    if not content_type or "\n" in content_type:
        raise InvalidValueError(f"invalid content type {quoted(content_type)}")
    if len(data) > limit:
        raise _too_large(len(data), limit)
    return NormalizedValue(bytes(data), content_type, sha256_hex(data))
