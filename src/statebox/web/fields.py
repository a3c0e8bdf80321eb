"""Request models: a closed JSON :class:`Body`, the :class:`Query` parameters, and the
typed fields that both share with the command line.

A model is a ``msgspec.Struct``: a field without a default is required, one with a
default optional, and a body refuses fields it does not declare. A field whose values
follow one of the shared parameter rules (:mod:`statebox.core.params`: versions,
limits, tokens, seconds, flags) is declared with the alias below, which names both the
rule and the schema the OpenAPI document shows: every face refuses the same input, in
its own words (``?limit=`` in a query, ``"limit"`` in a body, ``--limit`` on the CLI).

Values a user wrote — a value to store, a merge patch, a default — are ``msgspec.Raw``:
the text exactly as it came, turned into Python with :func:`exact` (numbers as written,
never through a float). Seconds travel the same way, so ``0.000000001`` stays one
nanosecond.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final

import msgspec
from msgspec import Meta

from ..core import params
from ..core.errors import quoted
from ..core.leases import Fencing
from ..wire.codec import loads_exact

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "PARSE",
    "After",
    "AfterKey",
    "Body",
    "ExpectedVersion",
    "FencingField",
    "Flag",
    "Int64",
    "Limit",
    "OptionalSeconds",
    "Positive",
    "Query",
    "Seconds",
    "Token",
    "Version",
    "WaitSeconds",
    "exact",
]

INT64_MIN: Final = params.INT64_MIN
INT64_MAX: Final = params.INT64_MAX
#: The key of a field's ``Meta(extra=...)`` that names its rule: ``rule(raw, name)``.
PARSE: Final = "parse"

Rule = Callable[[Any, str], Any]


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A JSON request body: one object, closed (an unknown field is a 400 that names the
    known ones). Subclasses declare fields; ``schema_extra`` is merged into the model's
    schema (a rule between fields, e.g. "exactly one of"), and ``schema_models`` adds
    models that only the schema mentions (a ``Raw`` field's documented shape)."""

    schema_extra: ClassVar[dict[str, Any]] = {}
    schema_models: ClassVar[tuple[type[Any], ...]] = ()
    #: Levels of arrays and objects the body may add around the values it carries
    #: (``{"ops": [{"value": ...}]}``: 3): each value is held to the nesting limit on its
    #: own, so a body that wraps its values deeper declares how many more levels it adds.
    envelope: ClassVar[int] = 3

    #: How a field is named in this face's messages.
    @staticmethod
    def spelled(name: str) -> str:
        return quoted(name)


class Query(msgspec.Struct, kw_only=True):
    """Query parameters: each field one ``?name=`` (unknown ones are ignored, as HTTP
    clients add their own). Every value arrives as text: a field with a rule is parsed
    by it, a ``bool`` one as a flag, a ``str`` one is taken as it is."""

    @staticmethod
    def spelled(name: str) -> str:
        return f"?{name}="


def _int_schema(minimum: int) -> dict[str, Any]:
    return {"minimum": minimum, "maximum": INT64_MAX}


def _rule(rule: Rule, schema: dict[str, Any]) -> Meta:
    return Meta(extra_json_schema=schema, extra={PARSE: rule})


Int64 = Annotated[int, _rule(params.integer, _int_schema(INT64_MIN))]
Version = Annotated[int, _rule(params.version, _int_schema(1))]
ExpectedVersion = Annotated[int, _rule(params.expected_version, _int_schema(0))]
Limit = Annotated[int, _rule(params.limit, _int_schema(0))]
#: An integer of at least 1 (purge's batch size).
Positive = Annotated[int, _rule(partial(params.integer, minimum=1), _int_schema(1))]
#: An integer of at least 0 (a version already known, a change token).
After = Annotated[int, _rule(partial(params.integer, minimum=0), _int_schema(0))]
Token = Annotated[int, _rule(params.token, _int_schema(1))]
Flag = Annotated[bool, _rule(params.flag, {})]
#: Where a page of keys continues (the previous page's last key).
AfterKey = Annotated[str, _rule(params.after_key, {"minLength": 1})]

_FENCING_SCHEMA: Final = {
    "type": "object",
    "required": ["lease", "token"],
    "properties": {
        "lease": {"type": "string", "minLength": 1},
        "token": {"type": "integer", **_int_schema(1)},
    },
    "additionalProperties": False,
}

# msgspec takes ``Raw`` in no union: a body field that may be null or absent is plain
# ``Raw`` with the default ``None`` (JSON null reads as absent, as in every body field).
if TYPE_CHECKING:
    # What the handler receives once the rule has run: the field is decoded as
    # ``msgspec.Raw`` (exact text), then turned into this.
    Seconds = float
    OptionalSeconds = float | None
    WaitSeconds = float
    FencingField = Fencing | None
else:
    # At least a nanosecond once rounded: 1e-10 is positive but no duration.
    Seconds = Annotated[msgspec.Raw, _rule(params.ttl, {"type": "number", "minimum": 1e-9})]
    OptionalSeconds = Seconds
    WaitSeconds = Annotated[msgspec.Raw, _rule(params.wait, {"type": "number", "minimum": 0})]
    FencingField = Annotated[msgspec.Raw, _rule(params.fencing, _FENCING_SCHEMA)]


def exact(raw: msgspec.Raw) -> Any:
    """A ``Raw`` field's JSON as Python, numbers kept exactly as written."""
    return loads_exact(bytes(raw))
