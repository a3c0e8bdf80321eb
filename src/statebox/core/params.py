"""The rules for a request's parameters, shared by every face (issue #13 item 3).

The CLI, the HTTP server and the engine read a version, a limit, a ttl, a fencing token
through these functions, so each face accepts exactly the same values and means the same
by them: ``get --version 0`` is refused by the CLI as ``?version=0`` is by HTTP, and
``1_000`` is a number of seconds nowhere.

``name`` is the parameter as the calling face spells it, used verbatim in the message:
the CLI passes ``"--limit"``, an HTTP query ``"?limit="``, a JSON body field
``'"limit"'``, the library ``"limit"``. Every message starts ``invalid {name} ...`` and
says what is allowed.

Error kinds: every function here raises :class:`~statebox.core.errors.InvalidRequestError`
(exit 2, HTTP 400): a malformed parameter of a request. The cursors are the exception:
:func:`after_key` and :func:`after_keyspace` raise
:class:`~statebox.core.errors.InvalidReferenceError` (also exit 2, HTTP 400), the kind
of every other bad key or keyspace. The engine checks the same rules again as a backstop
for library callers (``statebox.store_beyond._library_int``) and keeps the library's
kind there: :class:`~statebox.core.errors.InvalidValueError` with ``param=`` (tests pin
it for ``store.list(limit=-1)``), re-raised from here by :func:`as_value_error`.

Where the library keeps a meaning of its own: an ``expected_version`` below 0 is refused
here (faces), while the library answers it with a conflict, as it always has (a version
no key is at; the conformance tests pin it for every backend). A fencing token is 1 or
more, as the engine has always required (:func:`statebox.core.leases.as_fence`).

Integers are text of ASCII digits only (``-?[0-9]+``): Python's ``int()`` also takes
``"1_0"``, ``" 5 "``, ``"+5"`` and other scripts' digits, which no face means to accept.
Seconds are JSON number text only, converted exactly (no float rounding on the way in).
This module imports neither ``re`` nor ``decimal``: it is on the CLI's cold ``get`` path
(``tests/test_cli_startup.py``).
"""

from __future__ import annotations

import math
import sys

from .clock import NS_PER_SECOND
from .errors import InvalidRequestError, InvalidValueError, StateboxError, quoted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from .leases import Fencing
    from .model import Keyspace

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_SECONDS",
    "after_key",
    "after_keyspace",
    "as_value_error",
    "expected_version",
    "fencing",
    "fencing_parts",
    "flag",
    "float_seconds",
    "format_seconds",
    "integer",
    "limit",
    "seconds_ns",
    "token",
    "ttl",
    "version",
]

#: Every backend stores versions, tokens and limits as signed 64-bit integers.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
#: The longest duration (ttl, lease ttl, timeout) any face accepts: 100 years. An expiry
#: in ns since the epoch then stays inside a 64-bit integer for every backend.
MAX_SECONDS: Final = 100 * 365 * 24 * 3600
_SECONDS_RANGE: Final = f"must be at most {MAX_SECONDS} seconds (100 years)"

_DIGITS: Final = frozenset("0123456789")
#: More digits than this cannot be in range; such text is refused without converting it
#: (``int()`` refuses over 4300 digits, and would be slow long before).
_MAX_INT64_DIGITS: Final = 19
#: Long text is shown shortened in a message.
_SHOWN: Final = 40


def _shown(raw: object) -> str:
    """``raw`` as a message shows it: JSON-quoted, long text cut short, a huge integer
    by its size (``str()`` refuses over 4300 digits)."""
    if isinstance(raw, str) and len(raw) > _SHOWN:
        return quoted(raw[:_SHOWN] + "…")
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 128:
        return f"({'a negative' if raw < 0 else 'an'} integer of {raw.bit_length()} bits)"
    if _is_decimal(raw) or isinstance(raw, float):
        # A finite one as the JSON number it is (a Decimal is no JSON for quoted()).
        return str(raw) if _finite(raw) else quoted(str(raw))
    return quoted(raw)


# --- integers -------------------------------------------------------------------------


def integer(raw: object, name: str, *, minimum: int | None = None) -> int:
    """An integer: an ``int`` (never a bool) or text of ASCII ``-?[0-9]+`` only, within
    64 bits and at least ``minimum``."""
    return _integer(raw, name, minimum, str(minimum))


def _integer(raw: object, name: str, minimum: int | None, least: str) -> int:
    """:func:`integer`, saying ``must be {least} or more`` below ``minimum``."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str):
        digits = raw[1:] if raw.startswith("-") else raw
        if not digits or not _DIGITS.issuperset(digits):
            raise InvalidRequestError(
                f"invalid {name} {_shown(raw)}: must be an integer (ASCII digits, no spaces, "
                'no "_" or "+")'
            )
        if len(digits.lstrip("0")) > _MAX_INT64_DIGITS:
            raise InvalidRequestError(f"invalid {name} {_shown(raw)}: {_range(minimum)}")
        value = int(raw)
    else:
        raise InvalidRequestError(f"invalid {name} {_shown(raw)}: must be an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidRequestError(f"invalid {name} {_shown(value)}: {_range(minimum)}")
    if minimum is not None and value < minimum:
        raise InvalidRequestError(f"invalid {name} {value}: must be {least} or more")
    return value


def _range(minimum: int | None) -> str:
    low = INT64_MIN if minimum is None else minimum
    return f"out of range (from {low} to {INT64_MAX})"


def version(raw: object, name: str) -> int:
    """A version of a key: 1 or more (versions start at 1; 0 is never a version)."""
    return integer(raw, name, minimum=1)


def expected_version(raw: object, name: str) -> int:
    """The version a write expects the key at: 0 or more (0: the key must not exist,
    as :func:`statebox.core.versions.check_guard` means it)."""
    return integer(raw, name, minimum=0)


def limit(raw: object, name: str) -> int:
    """How many items a page holds at most: 0 or more, 0 meaning no limit."""
    return _integer(raw, name, 0, "0 (no limit)")


def token(raw: object, name: str) -> int:
    """A lease's fencing token: 1 or more. Tokens are issued from 1 up
    (:func:`statebox.core.versions.plan_acquire`), and the engine refuses to fence with
    a token below 1 (:func:`statebox.core.leases.as_fence`)."""
    return integer(raw, name, minimum=1)


# --- seconds --------------------------------------------------------------------------


def seconds_ns(raw: object, name: str) -> int:
    """A number of seconds as exact nanoseconds (truncated toward zero past the ns).

    An ``int`` or ``float`` (never a bool), a :class:`~decimal.Decimal`, or text in JSON
    number syntax only (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?``: so
    ``"1_000"``, ``" 5"``, ``"inf"``, ``"nan"``, ``"0x10"`` are refused); finite, and at
    most :data:`MAX_SECONDS` either way of 0.
    """
    text: str | None = None
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, int) and not isinstance(raw, bool):
        if abs(raw) > MAX_SECONDS:
            raise InvalidRequestError(f"invalid {name} {_shown(raw)}: {_SECONDS_RANGE}")
        text = str(raw)
    elif isinstance(raw, float) or _is_decimal(raw):
        if not _finite(raw):
            raise InvalidRequestError(
                f"invalid {name} {_shown(raw)}: must be a finite number of seconds"
            )
        # A finite float's repr and a finite Decimal's str are JSON number text (with a
        # capital E, or no sign after it, which JSON allows too).
        text = repr(raw) if isinstance(raw, float) else str(raw)
    parts = _json_number(text) if text is not None else None
    if parts is None:
        raise InvalidRequestError(
            f"invalid {name} {_shown(raw)}: must be a number of seconds (a JSON number, "
            'such as 30 or 1.5; no "_", spaces, inf or nan)'
        )
    negative, digits, scale = parts
    ns = _exact_ns(digits, scale)
    if ns is None:
        raise InvalidRequestError(f"invalid {name} {_shown(raw)}: {_SECONDS_RANGE}")
    return -ns if negative else ns


def _is_decimal(raw: object) -> bool:
    # Without importing decimal: if nothing loaded it, ``raw`` is no Decimal.
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(raw, decimal.Decimal)


def _finite(raw: object) -> bool:
    if isinstance(raw, float):
        return math.isfinite(raw)
    return bool(raw.is_finite())  # type: ignore[attr-defined]  # a Decimal


def _json_number(text: str) -> tuple[bool, str, int] | None:
    """``(negative, digits, scale)`` of JSON number text, its value being
    ``int(digits) * 10**scale``; None when ``text`` is not one. Capital ``E`` and an
    exponent's sign are optional, as JSON has them."""
    negative = text.startswith("-")
    body = text[1:] if negative else text
    mantissa, e, exponent_text = body.replace("E", "e").partition("e")
    whole, dot, fraction = mantissa.partition(".")
    if not whole or not _DIGITS.issuperset(whole) or (len(whole) > 1 and whole[0] == "0"):
        return None
    if dot and (not fraction or not _DIGITS.issuperset(fraction)):
        return None
    exponent = 0
    if e:
        sign = exponent_text[:1]
        exponent_digits = exponent_text[1:] if sign in ("+", "-") else exponent_text
        if not exponent_digits or not _DIGITS.issuperset(exponent_digits):
            return None
        # An exponent this long is out of range (or rounds to 0) whatever the digits are.
        size = int(exponent_digits[-12:]) if len(exponent_digits.lstrip("0")) <= 12 else 10**12
        exponent = -size if sign == "-" else size
    return negative, whole + fraction, exponent - len(fraction)


def _exact_ns(digits: str, scale: int) -> int | None:
    """``int(digits) * 10**scale`` seconds as nanoseconds, truncated; None when more than
    :data:`MAX_SECONDS`, even by less than a ns. Never builds a huge number: the
    magnitude is bounded first, and digits past the ns are only looked at, not
    converted (``int()`` refuses over 4300 digits)."""
    significant = digits.lstrip("0")
    if not significant:
        return 0
    # The value lies in [10**magnitude, 10**(magnitude + 1)) seconds.
    magnitude = len(significant) - 1 + scale
    if magnitude < -10:  # below 1e-10 s: not a whole nanosecond
        return 0
    if magnitude >= len(str(MAX_SECONDS)):
        return None
    shift = scale + 9  # seconds to ns
    if shift >= 0:
        ns, below_ns = int(significant) * 10**shift, False
    else:
        kept = len(significant) + shift  # the digits down to the ns: magnitude + 10
        ns = int(significant[:kept] or "0")
        below_ns = significant[kept:].strip("0") != ""
    limit_ns = MAX_SECONDS * NS_PER_SECOND
    return None if ns > limit_ns or (ns == limit_ns and below_ns) else ns


def float_seconds(ns: int) -> float:
    """Seconds as the float the engine takes, chosen so that ``int(t * 1e9) == ns``.

    The engine's methods take ``ttl`` as float seconds and compute ``int(ttl * 1e9)``;
    the faces read exact decimals, so they pick the float that gives back the exact
    nanoseconds — exactly up to 2**23 s (97 days), where a double still resolves a
    nanosecond, and within a few ns beyond.
    """
    seconds = ns / NS_PER_SECOND
    for _ in range(4):
        got = int(seconds * NS_PER_SECOND)
        if got == ns:
            return seconds
        seconds = math.nextafter(seconds, math.inf if got < ns else -math.inf)
    return ns / NS_PER_SECOND


def format_seconds(ns: int) -> str:
    """Nanoseconds as an exact decimal number of seconds (JSON number text)."""
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(ns), NS_PER_SECOND)
    return f"{sign}{whole}.{frac:09d}" if frac else f"{sign}{whole}"


def ttl(raw: object, name: str) -> float:
    """A time to live: :func:`seconds_ns` of at least 1 ns, as the float seconds the
    engine takes (:func:`float_seconds`)."""
    ns = seconds_ns(raw, name)
    if ns <= 0:
        raise InvalidRequestError(
            f"invalid {name} {_shown(raw)}: must be a positive number of seconds (at least "
            "0.000000001)"
        )
    return float_seconds(ns)


def wait(raw: object, name: str) -> float:
    """How long to wait (a watch's ``timeout``): :func:`seconds_ns` of 0 or more, as
    float seconds."""
    ns = seconds_ns(raw, name)
    if ns < 0:
        raise InvalidRequestError(f"invalid {name} {_shown(raw)}: must be 0 or more seconds")
    return float_seconds(ns)


# --- flags, fencing, cursors ----------------------------------------------------------


def flag(raw: str, name: str) -> bool:
    """A yes/no parameter: ``""``, ``1``, ``true``, ``yes`` or ``0``, ``false``, ``no``
    (any case)."""
    lowered = raw.lower() if isinstance(raw, str) else None
    if lowered in ("", "1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise InvalidRequestError(
        f"invalid {name} {_shown(raw)}: must be true or false (1/0, yes/no, or empty for true)"
    )


def fencing(raw: object, name: str) -> Fencing | None:
    """A JSON body's fencing: null, or an object exactly ``{"lease": NAME, "token": N}``."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"lease", "token"}:
        raise InvalidRequestError(
            f'invalid {name} {_shown(raw)}: must be {{"lease": NAME, "token": N}} (or null)'
        )
    raw_token = raw["token"]
    if isinstance(raw_token, bool) or not isinstance(raw_token, int):  # JSON: a number
        raise InvalidRequestError(
            f"invalid {name} {_shown(raw)}: its token must be an integer (a JSON number)"
        )
    return fencing_parts(raw["lease"], raw_token, f"{name}.lease", f"{name}.token")


def fencing_text(text: str, name: str, example: str) -> Fencing:
    """A fencing written ``LEASE:TOKEN`` (the lease name may contain ':'), as the CLI's
    ``--fencing`` and a runner step's ``fencing`` take it; ``example`` completes the
    refusal (``--fencing nightly-import:3``)."""
    lease, sep, token_text = text.rpartition(":")
    if not sep or not lease:
        raise InvalidRequestError(f"invalid {name} {quoted(text)}: use LEASE:TOKEN, e.g. {example}")
    fence = fencing_parts(lease, token_text, f"{name} LEASE", f"{name} TOKEN")
    assert fence is not None  # both parts were given
    return fence


def fencing_parts(lease: object, token: object, lease_name: str, token_name: str) -> Fencing | None:
    """A fencing given as two parameters (``--fencing LEASE:TOKEN``, ``?lease=&token=``):
    None when neither is given; both or neither."""
    if lease is None and token is None:
        return None
    if lease is None or token is None:
        given, missing = (token_name, lease_name) if lease is None else (lease_name, token_name)
        raise InvalidRequestError(
            f"invalid {given} without {missing}: a fenced write needs both {lease_name} "
            f"and {token_name}"
        )
    from .leases import validate_lease_name
    from .records import Fence

    try:
        lease_text = validate_lease_name(lease)
    except InvalidValueError as exc:
        raise InvalidRequestError(_renamed(exc, "invalid lease name ", lease_name, lease)) from None
    return Fence(lease_text, _fencing_token(token, token_name))


#: :func:`token` under another name: :func:`fencing_parts` has a parameter ``token``.
_fencing_token: Final = token


def _renamed(exc: StateboxError, head: str, name: str, raw: object) -> str:
    """A lower check's refusal (``invalid lease name "x": reason``) in the face's words:
    ``invalid {name} "x": reason``; a refusal of a part of ``raw`` keeps its own words."""
    if exc.message.startswith(head):
        return f"invalid {name} {exc.message[len(head) :]}"
    return f"invalid {name} {_shown(raw)}: {exc.message}"


def after_key(raw: object, name: str) -> str:
    """The key a page of ``list`` starts after (the previous page's ``next``), trimmed
    and checked as every key is."""
    from .errors import InvalidReferenceError
    from .model import validate_key

    try:
        return validate_key(raw)  # type: ignore[arg-type]  # it refuses a non-string
    except InvalidReferenceError as exc:
        raise InvalidReferenceError(_renamed(exc, "invalid key ", name, raw)) from None


def after_keyspace(raw: object, name: str) -> Keyspace:
    """The keyspace a page of ``keyspaces`` starts after: ``SCOPE/NAMESPACE`` (the
    previous page's ``next``)."""
    from .errors import InvalidReferenceError
    from .model import parse_keyspace_cursor

    try:
        return parse_keyspace_cursor(raw)  # type: ignore[arg-type]  # it refuses others
    except InvalidReferenceError as exc:
        raise InvalidReferenceError(_renamed(exc, "invalid after ", name, raw)) from None


def as_value_error(exc: InvalidRequestError, param: str) -> InvalidValueError:
    """The engine's refusal of a library argument, from one of these checks' refusals:
    the library's kind (``InvalidValueError``) about the library's parameter."""
    return InvalidValueError(exc.message, param=param)
