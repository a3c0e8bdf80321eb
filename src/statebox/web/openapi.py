"""The OpenAPI 3.1 document, generated from the routes of the mounted routers.

Models become ``components/schemas`` (``msgspec.json.schema_components``); each route
becomes one operation with its parameters (path, query, headers: one per field of the
declared Struct), its request body and its answers. Error answers are declared once
(:class:`ErrorResponses`) and attached to every operation that can meet them.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from .fields import Body
from .routing import JSON, Answer, Route, Router

__all__ = ["ErrorResponses", "build_document"]

REF: Final = "#/components/schemas/{name}"


@dataclass(frozen=True, slots=True)
class ErrorResponses:
    """The error answers, declared once for every route: their body's model, what each
    status means, and which routes may meet which."""

    model: type[msgspec.Struct]
    reasons: Mapping[int, str]
    #: Any route, public or not (the connection limits, a refused Host or Origin).
    every: tuple[int, ...]
    #: Any route that is not public (a bad token, a refused grant, bad input, storage down).
    authenticated: tuple[int, ...]
    #: Any route that takes a body (one that is not JSON, one too large).
    with_body: tuple[int, ...]

    def statuses(self, route: Route) -> set[int]:
        found = {*self.every, *route.errors}
        if not route.public:
            found.update(self.authenticated)
        if route.has_body:
            found.update(self.with_body)
        return found - set(route.responses)


def build_document(
    routers: Iterable[Router],
    *,
    info: Mapping[str, Any],
    errors: ErrorResponses,
    security_schemes: Mapping[str, Any] | None = None,
    security: list[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The document of every route of ``routers``."""
    routes = [route for router in routers for route in router.routes]
    components = _components(routes, errors)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route, errors)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": dict(info),
        "components": {"schemas": components},
        "paths": paths,
    }
    if security_schemes:
        document["components"]["securitySchemes"] = dict(security_schemes)
    if security is not None:
        document["security"] = security
    return document


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": REF.format(name=model.__name__)}


def _is_struct(model: object) -> bool:
    return isinstance(model, type) and issubclass(model, msgspec.Struct)


def _components(routes: list[Route], errors: ErrorResponses) -> dict[str, Any]:
    models: list[Any] = [errors.model]
    for route in routes:
        if route.body is not None:
            models += [route.body, *route.body.schema_models]
        models += [a.model for a in route.responses.values() if _is_struct(a.model)]
    unique = list(dict.fromkeys(models))
    _, components = msgspec.json.schema_components(unique, ref_template=REF)
    for model in unique:
        if isinstance(model, type) and issubclass(model, Body) and model.schema_extra:
            components[model.__name__] = {**components[model.__name__], **model.schema_extra}
    return dict(sorted(components.items()))


def _operation(route: Route, errors: ErrorResponses) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": route.summary}
    if route.description:
        operation["description"] = route.description
    parameters = [
        *_parameters(route.path_params, "path"),
        *_parameters(route.query, "query"),
        *_parameters(route.headers, "header"),
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": _ref(route.body)}},
        }
    elif route.content is not None:
        content = {media: {"schema": dict(schema)} for media, schema in route.content.items()}
        operation["requestBody"] = {"required": True, "content": content}
    answers = {str(status): _answer(answer) for status, answer in route.responses.items()}
    for status in errors.statuses(route):
        answers[str(status)] = {
            "description": errors.reasons[status],
            "content": {JSON: {"schema": _ref(errors.model)}},
        }
    operation["responses"] = dict(sorted(answers.items()))
    if route.public:
        operation["security"] = []
    return operation


def _answer(answer: Answer) -> dict[str, Any]:
    if answer.schema is not None:
        schema: dict[str, Any] = dict(answer.schema)
    elif answer.model is None:
        schema = {}
    elif _is_struct(answer.model):
        schema = _ref(answer.model)
    else:
        schema = msgspec.json.schema(answer.model)
    out: dict[str, Any] = {
        "description": answer.description,
        "content": {answer.media_type: {"schema": schema}},
    }
    if answer.headers:
        out["headers"] = {
            name: {"schema": {"type": "string"}, "description": text}
            for name, text in answer.headers.items()
        }
    return out


def _parameters(model: type[msgspec.Struct] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    out = []
    for info in msgspec.structs.fields(model):
        schema = msgspec.json.schema(_without_none(info.type))
        description = schema.pop("description", None)
        if info.default not in (None, msgspec.UNSET, msgspec.NODEFAULT):
            schema["default"] = info.default
        parameter: dict[str, Any] = {
            "name": info.encode_name,
            "in": where,
            "required": where == "path" or info.required,
            "schema": schema,
        }
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out


def _without_none(tp: Any) -> Any:
    """``X`` of ``X | None``: a parameter is absent, never null."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp
