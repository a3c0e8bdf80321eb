"""Turning a request's query and body into their models, and msgspec's refusals into
HTTP's words (``update: unknown field(s) "x"; known: "jq", ...``, ``invalid "version"
"3": must be an integer``, ``rollback needs "version": ...``)."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, Final, TypeVar

import msgspec

from ..core import params
from ..core.errors import InvalidRequestError, quoted
from .fields import PARSE, Body, Query, Rule, exact

__all__ = ["FieldRule", "decode_body", "decode_query", "field_rules"]

Q = TypeVar("Q", bound=Query)
B = TypeVar("B", bound=Body)


class FieldRule(typing.NamedTuple):
    name: str  # the attribute
    wire: str  # as the request spells it
    rule: Rule | None
    required: bool
    description: str | None
    is_bool: bool


def _metas(tp: Any) -> list[msgspec.Meta]:
    """Every ``Meta`` annotating ``tp``, also inside ``X | None``."""
    found: list[msgspec.Meta] = []
    if typing.get_origin(tp) is typing.Annotated:
        base, *extras = typing.get_args(tp)
        found += [m for m in extras if isinstance(m, msgspec.Meta)]
        found += _metas(base)
    elif typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found += _metas(arg)
    return found


def _is_bool(tp: Any) -> bool:
    if typing.get_origin(tp) is typing.Annotated:
        return _is_bool(typing.get_args(tp)[0])
    if tp is bool:
        return True
    return any(_is_bool(arg) for arg in typing.get_args(tp) if arg is not type(None))


@cache
def field_rules(model: type[msgspec.Struct]) -> tuple[FieldRule, ...]:
    """Each field of ``model`` with its rule, read once per model."""
    rules = []
    for info in msgspec.structs.fields(model):
        metas = _metas(info.type)
        rule = next((m.extra[PARSE] for m in metas if m.extra and PARSE in m.extra), None)
        description = next((m.description for m in metas if m.description), None)
        rules.append(
            FieldRule(
                info.name, info.encode_name, rule, info.required, description, _is_bool(info.type)
            )
        )
    return tuple(rules)


def decode_query(model: type[Q], query: Mapping[str, str]) -> Q:
    """The query parameters as ``model``, each checked by its rule."""
    values: dict[str, Any] = {}
    for field in field_rules(model):
        raw = query.get(field.wire)
        if raw is None:
            if field.required:
                raise InvalidRequestError(f"missing {model.spelled(field.wire)}")
            continue
        name = model.spelled(field.wire)
        if field.rule is not None:
            values[field.name] = field.rule(raw, name)
        elif field.is_bool:
            values[field.name] = params.flag(raw, name)
        else:
            values[field.name] = raw
    return model(**values)


def decode_body(model: type[B], raw: bytes, where: str) -> B:
    """The JSON body as ``model``; ``where`` names the operation in messages."""
    try:
        body = msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as exc:
        # msgspec may refuse a field before it reaches a syntax error further on: a body
        # that is not JSON at all is told so, not asked about its fields.
        try:
            msgspec.json.decode(raw, type=msgspec.Raw)
        except msgspec.DecodeError as bad:
            raise _not_json(bad) from None
        raise _refusal(model, raw, where, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise _not_json(exc) from None
    for field in field_rules(model):
        value = getattr(body, field.name)
        if field.rule is None or value is None or value is msgspec.UNSET:
            continue
        if isinstance(value, msgspec.Raw):
            value = exact(value)
            if value is None and not field.required:  # null: as if absent
                setattr(body, field.name, None)
                continue
        setattr(body, field.name, field.rule(value, model.spelled(field.wire)))
    return body


def _not_json(exc: msgspec.DecodeError) -> InvalidRequestError:
    return InvalidRequestError(f"request body is not valid JSON: {_sentence(exc)}")


def _sentence(exc: Exception) -> str:
    """An exception's message inside a sentence: its first letter lower-cased, unless
    it starts an acronym ("JSON is malformed")."""
    text = str(exc)
    if text[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]


# --- msgspec's refusals, reworded ---------------------------------------------------------

_AT: Final = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING: Final = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_EXPECTED: Final = re.compile(r"^Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`$")
_BOUNDED: Final = re.compile(r"^Expected `(?P<want>[^`]*)` (?P<bound>.+)$")
_ENUM: Final = re.compile(r"^Invalid enum value (?P<value>.*)$", re.S)
_KINDS: Final = {
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "float": "a number",
    "object": "a JSON object",
    "array": "a list",
    "null": "null",
}


def _kinds(spec: str) -> str:
    return " or ".join(_KINDS.get(part.strip(), part.strip()) for part in spec.split("|"))


def _refusal(model: type[Body], raw: bytes, where: str, message: str) -> InvalidRequestError:
    match = _AT.match(message)
    assert match is not None  # the pattern matches any text
    what, path = match["what"], (match["path"] or "").lstrip(".")
    spelled = model.spelled(path) if path else "request body"
    if unknown := _UNKNOWN.match(what):
        if path:  # in a nested object
            return InvalidRequestError(
                f"{where}: unknown field {quoted(unknown['name'])} in {spelled}"
            )
        known = [field.wire for field in field_rules(model)]
        given = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
        extra = sorted(set(given) - set(known))
        return InvalidRequestError(
            f"{where}: unknown field(s) {_listed(extra)}; known: {_listed(sorted(known))}"
        )
    if missing := _MISSING.match(what):
        name = missing["name"]
        described = next(
            (f.description for f in field_rules(model) if f.wire == name and not path), None
        )
        needed = model.spelled(f"{path}.{name}" if path else name)
        return InvalidRequestError(
            f"{where} needs {needed}" + (f": {described}" if described else "")
        )
    if expected := _EXPECTED.match(what):
        if not path:
            return InvalidRequestError(f"request body must be {_kinds(expected['want'])}")
        value = _value_text(raw, path)
        shown = f" {value}" if value is not None else ""
        return InvalidRequestError(f"invalid {spelled}{shown}: must be {_kinds(expected['want'])}")
    value = _value_text(raw, path) if path else None
    shown = f" {value}" if value is not None else ""
    if bounded := _BOUNDED.match(what):
        return InvalidRequestError(
            f"invalid {spelled}{shown}: must be {_kinds(bounded['want'])} {bounded['bound']}"
        )
    if _ENUM.match(what):
        choices = _choices(model, path)
        allowed = f"one of {_listed(choices)}" if choices else "one of the documented values"
        return InvalidRequestError(f"invalid {spelled}{shown}: must be {allowed}")
    return InvalidRequestError(f"invalid {spelled}{shown}: {_sentence(ValueError(what))}")


def _choices(model: type[Body], path: str) -> list[str]:
    """The values a top-level ``Literal`` field allows."""
    for info in msgspec.structs.fields(model):
        if info.encode_name == path:
            return [str(arg) for arg in _literal_args(info.type)]
    return []


def _literal_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    return tuple(arg for inner in typing.get_args(tp) for arg in _literal_args(inner))


def _value_text(raw: bytes, path: str) -> str | None:
    """The JSON text of a top-level field, as sent (shortened), to quote in a message."""
    if not re.fullmatch(r"[^.\[]+", path):
        return None
    try:
        given = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    except msgspec.MsgspecError:
        return None
    found = given.get(path)
    if found is None:
        return None
    text = bytes(found).decode("utf-8", "replace")
    return text if len(text) <= 40 else text[:37] + "..."


def _listed(names: list[str]) -> str:
    return ", ".join(quoted(name) for name in names)
