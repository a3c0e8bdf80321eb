"""Where an Atlan state object lives: its type, its path, its statebox address.

No I/O here. The Atlan Apps Framework (``application_sdk.services.statestore``, versions
0.1.1rc22 to 2.8.x) keeps each object as the file
``persistent-artifacts/apps/{app}/{state_type}/{id}/config.json`` in its object store;
statebox keeps it as one entry: scope ``custom``, namespace
``atlan-{app}-{state_type}``, key ``id``. The app is ``ATLAN_APPLICATION_NAME``
(``default`` when unset), read at each call (the SDK reads it once, at import).
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Any, Final

from ...core.errors import (
    ConfigurationError,
    InvalidReferenceError,
    InvalidValueError,
    StateboxError,
    quoted,
)
from ...core.model import validate_key, validate_namespace

__all__ = [
    "APP_NAME_ENV",
    "SCOPE",
    "PathTraversalError",
    "StateType",
    "app_name",
    "build_state_store_path",
    "checked_app_name",
    "field_pointer",
    "namespace_of",
    "as_state_type",
    "state_address",
]

#: Where the SDK reads the application's name (``application_sdk.constants``).
APP_NAME_ENV: Final = "ATLAN_APPLICATION_NAME"
DEFAULT_APP_NAME: Final = "default"
#: The SDK's ``TEMPORARY_PATH`` (its default) joined with ``STATE_STORE_PATH_TEMPLATE``.
PATH_TEMPLATE: Final = "./local/tmp/persistent-artifacts/apps/{app}/{state_type}/{id}/config.json"
#: Every Atlan object lives in statebox's ``custom`` scope.
SCOPE: Final = "custom"


class StateType(Enum):
    """The kinds of state, as the SDK's ``StateType``: they name the object's folder
    (and here its namespace). ``CREDENTIALS`` namespaces are secret: encrypted at rest
    by statebox's builtin pattern ``custom/atlan-*-credentials``."""

    WORKFLOWS = "workflows"
    CREDENTIALS = "credentials"

    @classmethod
    def is_member(cls, type: str) -> bool:  # the SDK's parameter name
        """Whether ``type`` is the value of a state type: ``is_member("workflows")``."""
        return type in cls._value2member_map_


class PathTraversalError(InvalidReferenceError, ValueError):
    """A state id that would make :func:`build_state_store_path` leave the state folder.

    The SDK's ``PathTraversalError`` is a :class:`ValueError`; this one is too, and a
    statebox :class:`~statebox.core.errors.InvalidReferenceError` (the id is the key)."""


def as_state_type(value: Any) -> StateType:
    """``value`` as a :class:`StateType`: the member itself, its value
    (``"workflows"``), or another enum's member with such a value (the SDK's own
    ``StateType``, where an app still imports it). Anything else is refused."""
    if isinstance(value, StateType):
        return value
    raw = value.value if isinstance(value, Enum) else value
    if isinstance(raw, str) and StateType.is_member(raw):
        return StateType(raw)
    names = " or ".join(f"StateType.{t.name}" for t in StateType)
    raise InvalidReferenceError(
        f"invalid state type {quoted(_shown(value))}: use {names} "
        f"(or its value: {', '.join(quoted(t.value) for t in StateType)})",
        param="type",
    )


def _shown(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


def app_name() -> str:
    """``ATLAN_APPLICATION_NAME``, else ``default``, as it is (:func:`checked_app_name`
    checks it)."""
    return os.environ.get(APP_NAME_ENV, DEFAULT_APP_NAME)


def _app_problem(app: str) -> str | None:
    """Why ``app`` names no folder of its own inside ``apps/``, or None."""
    if app == "":
        return "it is empty"
    if "\0" in app:
        return "it contains a NUL character"
    if "/" in app or "\\" in app:
        return 'it contains "/" or "\\"'
    if app in (".", ".."):
        return f'it is "{app}"'
    return None


def checked_app_name(kind: StateType) -> str:
    """The app's name (:func:`app_name`), refused with a :class:`ConfigurationError`
    naming ``ATLAN_APPLICATION_NAME`` when it would make the object's path leave
    ``apps/`` (``..``, ``/``, ``\\``, NUL) or name no folder (empty, ``.``), or would make
    no valid statebox namespace: one check for the path and every StateStore method."""
    app = app_name()
    problem = _app_problem(app)
    if problem is None:
        try:
            validate_namespace(f"atlan-{app}-{kind.value}")
        except StateboxError as exc:
            problem = exc.message
    if problem is not None:
        raise ConfigurationError(
            f"{APP_NAME_ENV}={quoted(app)} cannot name the app's folder or the statebox "
            f"namespace of its {kind.value} state: {problem}"
        )
    return app


def _path_problem(id: str) -> str | None:
    """Why ``id`` names no folder inside ``apps/{app}/{state_type}/``, or None."""
    if id == "":
        return "it is empty"
    if "\0" in id:
        return "path traversal detected (it contains a NUL character)"
    if id.startswith(("/", "\\")) or os.path.isabs(id):
        return "path traversal detected (it is an absolute path)"
    if ".." in id.replace("\\", "/").split("/"):
        return 'path traversal detected (it has a ".." segment)'
    return None


def _checked_id(id: Any, kind: StateType) -> str:
    if not isinstance(id, str):
        raise InvalidReferenceError(f"invalid state id {quoted(_shown(id))}: must be a string")
    problem = _path_problem(id)
    if problem is not None:
        raise PathTraversalError(
            f"invalid state id {quoted(id)}: {problem}; a state id names a folder inside "
            f"apps/{app_name()}/{kind.value}/",
            param="id",
        )
    return id


def build_state_store_path(id: str, state_type: StateType) -> str:
    """``./local/tmp/persistent-artifacts/apps/{app}/{state_type}/{id}/config.json``,
    the SDK's path of the object (nothing is stored there: the object lives in the
    statebox store). An id that is empty, absolute, holds NUL or a ``..`` segment is
    refused with :class:`PathTraversalError`, as the SDK 2.x refuses ids that escape
    (this also refuses ``a/../b``, which the SDK lets through). An app name
    (``ATLAN_APPLICATION_NAME``) that is empty, ``.``, ``..``, or holds ``/``, ``\\`` or
    NUL is a :class:`ConfigurationError`, as in every StateStore method."""
    kind = as_state_type(state_type)
    app = checked_app_name(kind)
    checked = _checked_id(id, kind)
    return PATH_TEMPLATE.format(app=app, state_type=kind.value, id=checked)


def namespace_of(kind: StateType) -> str:
    """``atlan-{app}-{state_type}``; an app name :func:`checked_app_name` refuses is a
    configuration error naming ``ATLAN_APPLICATION_NAME``."""
    return f"atlan-{checked_app_name(kind)}-{kind.value}"


def state_address(id: Any, type: Any) -> tuple[StateType, str, str]:
    """``(state type, namespace, key)`` of an object. The id must be a statebox key as
    it is: one the key rules would change or refuse (``a//b``, ``./x``, a trailing
    ``/``, surrounding white space) is refused, so two ids never share an entry."""
    kind = as_state_type(type)
    checked = _checked_id(id, kind)
    try:
        key = validate_key(checked)
    except StateboxError as exc:
        raise InvalidReferenceError(
            f"invalid state id {quoted(checked)}: it cannot be a statebox key ({exc.message})",
            param="id",
        ) from None
    if key != checked:
        raise InvalidReferenceError(
            f"invalid state id {quoted(checked)}: it cannot be a statebox key "
            "(surrounding white space would be dropped)",
            param="id",
        )
    return kind, namespace_of(kind), key


def field_pointer(name: Any, param: str = "key") -> str:
    """The RFC 6901 JSON pointer of the top-level field ``name``: ``~`` is written
    ``~0`` and ``/`` is written ``~1`` (in that order), so any name is one field."""
    if not isinstance(name, str):
        raise InvalidValueError(
            f"invalid field name {quoted(_shown(name))}: must be a string", param=param
        )
    return "/" + name.replace("~", "~0").replace("/", "~1")
