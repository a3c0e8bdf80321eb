"""Addressing (SPEC §1): scopes, the run context, and validation of namespaces and keys.

An entry lives at ``(scope, namespace, key)``. ``Keyspace`` is the ``(scope, namespace)``
pair that every backend operation works within; namespace defaults come from the
:class:`RunContext`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum

from .errors import ConfigurationError, InvalidReferenceError, quoted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, NamedTuple
else:  # typing.NamedTuple's classes, built faster; typing is not imported at CLI start-up
    from ._tuples import NamedTuple

# What is trimmed around a scope, namespace, key or prefix: Unicode's White_Space, as
# Go's strings.TrimSpace (Dagu) trims. str.strip() would also strip U+001C-U+001F, so a
# key ending in one would name another record than Dagu's. One definition, every backend.
WHITE_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

__all__ = [
    "GLOBAL_NAMESPACE",
    "Keyspace",
    "KeyspaceInfo",
    "RunContext",
    "Scope",
    "UpdatedBy",
    "keyspace_sort_key",
    "parse_keyspace_cursor",
    "resolve_keyspace",
    "validate_key",
    "validate_namespace",
    "validate_prefix",
]

GLOBAL_NAMESPACE: Final = "_"


class Scope(StrEnum):
    DAG = "dag"
    ROOT_DAG = "root_dag"
    RUN = "run"
    GLOBAL = "global"
    CUSTOM = "custom"
    #: statebox's own records (the runner's run records, its schedule claims): like
    #: ``custom``, it has no default namespace. A file store keeps it under
    #: ``statebox/``, where Dagu never reads.
    SYSTEM = "statebox"

    @classmethod
    def parse(cls, value: str | Scope | None) -> Scope:
        if value is None:
            return cls.DAG
        if isinstance(value, Scope):
            return value
        text = value.strip(WHITE_SPACE)
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise InvalidReferenceError(
                f"invalid scope {quoted(value)}: must be one of {names} (lower-case)"
            ) from None


# Environment variables, in order of preference, for each part of the run context.
_ENV_SOURCES: Final[dict[str, tuple[str, ...]]] = {
    "dag": ("STATEBOX_DAG", "DAG_NAME", "AIRFLOW_CTX_DAG_ID", "GITHUB_WORKFLOW"),
    "root_dag": ("STATEBOX_ROOT_DAG",),
    "run_id": ("STATEBOX_RUN_ID", "DAG_RUN_ID", "AIRFLOW_CTX_DAG_RUN_ID", "GITHUB_RUN_ID"),
    "step": ("STATEBOX_STEP", "DAG_RUN_STEP_NAME", "AIRFLOW_CTX_TASK_ID", "GITHUB_JOB"),
}


class RunContext(NamedTuple):
    """Who is running: the workflow, its root, the run id and the step.

    The statebox runner sets it for its steps; elsewhere :meth:`from_env` reads it from
    statebox's own variables, then from Dagu's, Airflow's and GitHub Actions'.
    """

    dag: str | None = None
    root_dag: str | None = None
    run_id: str | None = None
    step: str | None = None
    #: The authenticated principal (set by the server for requests it serves).
    principal: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunContext:
        env = os.environ if environ is None else environ

        def first(part: str) -> str | None:
            for name in _ENV_SOURCES[part]:
                value = env.get(name, "").strip()
                if value:
                    return value
            return None

        return cls(
            dag=first("dag"),
            root_dag=first("root_dag"),
            run_id=first("run_id"),
            step=first("step"),
        )

    def merged(self, **overrides: str | None) -> RunContext:
        """A copy where every non-None override replaces the field."""
        values = {
            "dag": self.dag,
            "root_dag": self.root_dag,
            "run_id": self.run_id,
            "step": self.step,
            "principal": self.principal,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return RunContext(**values)

    def updated_by(self) -> UpdatedBy:
        return UpdatedBy(
            dag_name=self.dag or "",
            dag_run_id=self.run_id or "",
            step_name=self.step or "",
            principal=self.principal or "",
        )


class UpdatedBy(NamedTuple):
    """Who made a write (SPEC §3): recorded with every version."""

    dag_name: str = ""
    dag_run_id: str = ""
    step_name: str = ""
    principal: str = ""
    attempt_id: str = ""

    def to_dict(self) -> dict[str, str]:
        """The non-empty fields, camelCase as the output envelopes use."""
        out = {
            "dagName": self.dag_name,
            "dagRunId": self.dag_run_id,
            "attemptId": self.attempt_id,
            "stepName": self.step_name,
            "principal": self.principal,
        }
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> UpdatedBy:
        def get(*names: str) -> str:
            for name in names:
                value = data.get(name)
                if isinstance(value, str):
                    return value
            return ""

        return cls(
            dag_name=get("dagName", "dag_name"),
            dag_run_id=get("dagRunId", "dag_run_id"),
            step_name=get("stepName", "step_name"),
            principal=get("principal"),
            attempt_id=get("attemptId", "attempt_id"),
        )


class Keyspace(NamedTuple):
    """A resolved ``(scope, namespace)`` pair: the unit every backend call works in."""

    scope: str
    namespace: str

    @property
    def routing_key(self) -> str:
        return f"{self.scope}\0{self.namespace}"


class KeyspaceInfo(NamedTuple):
    """One keyspace with live entries: how many, and when the newest was written."""

    scope: str
    namespace: str
    entries: int
    updated_at: int  # ns since the epoch, UTC: the newest entry's updated_at

    @property
    def keyspace(self) -> Keyspace:
        return Keyspace(self.scope, self.namespace)


def keyspace_sort_key(keyspace: Keyspace) -> tuple[bytes, bytes]:
    """The order keyspaces are listed in: the UTF-8 bytes of ``(scope, namespace)``."""
    return (keyspace.scope.encode(), keyspace.namespace.encode())


def parse_keyspace_cursor(text: str) -> Keyspace:
    """``scope/namespace`` (a page's ``next``) as the keyspace it names."""
    if not isinstance(text, str) or "/" not in text:
        raise InvalidReferenceError(
            f"invalid after {quoted(text)}: must be SCOPE/NAMESPACE, e.g. dag/feed-sync"
        )
    scope, namespace = text.split("/", 1)
    return Keyspace(Scope.parse(scope).value, validate_namespace(namespace))


def _check_text(kind: str, original: str, text: str) -> None:
    # Stored as UTF-8 bytes everywhere (SQL BLOBs, hex file names): must encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidReferenceError(
            f"invalid {kind} {quoted(original)}: must be valid Unicode (it holds a lone surrogate)"
        ) from None


def validate_namespace(namespace: str) -> str:
    """Trim and check a namespace; return it."""
    if not isinstance(namespace, str):
        raise InvalidReferenceError(f"invalid namespace {quoted(namespace)}: must be a string")
    text = namespace.strip(WHITE_SPACE)
    if not text:
        raise InvalidReferenceError(f"invalid namespace {quoted(namespace)}: must not be empty")
    if "/" in text or "\\" in text:
        raise InvalidReferenceError(
            f'invalid namespace {quoted(text)}: must not contain "/" or "\\"'
        )
    if text in (".", ".."):
        raise InvalidReferenceError(f'invalid namespace {quoted(text)}: must not be "." or ".."')
    _check_text("namespace", namespace, text)
    return text


def _key_problem(text: str) -> str | None:
    common = text and "." not in text and "\\" not in text and "//" not in text
    if common and text[0] != "/" and text[-1] != "/":
        return None  # the common case, decided without splitting
    if not text:
        return "must not be empty"
    if text.startswith("/") or text.endswith("/"):
        return 'must not start or end with "/"'
    if "\\" in text:
        return 'must not contain "\\"'
    for segment in text.split("/"):
        if not segment:
            return 'must not contain an empty segment ("//")'
        if segment in (".", ".."):
            return f"must not contain a {quoted(segment)} segment"
    return None


def validate_key(key: str) -> str:
    """Trim and check a key; return it. Keys are case-sensitive; '/' separates levels."""
    if not isinstance(key, str):
        raise InvalidReferenceError(f"invalid key {quoted(key)}: must be a string")
    text = key.strip(WHITE_SPACE)
    problem = _key_problem(text)
    if problem:
        raise InvalidReferenceError(f"invalid key {quoted(text)}: {problem}")
    _check_text("key", key, text)
    return text


def validate_prefix(prefix: str | None) -> str:
    """Trim and check a list prefix (may be empty, may end with one '/')."""
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise InvalidReferenceError(f"invalid prefix {quoted(prefix)}: must be a string")
    text = prefix.strip(WHITE_SPACE)
    if text.startswith("/"):
        raise InvalidReferenceError(f'invalid prefix {quoted(text)}: must not start with "/"')
    if "\\" in text:
        raise InvalidReferenceError(f'invalid prefix {quoted(text)}: must not contain "\\"')
    body = text[:-1] if text.endswith("/") else text
    if body:
        problem = _key_problem(body)
        if problem:
            raise InvalidReferenceError(f"invalid prefix {quoted(text)}: {problem}")
    _check_text("prefix", prefix, text)
    return text


def resolve_keyspace(
    scope: str | Scope | None, namespace: str | None, context: RunContext
) -> Keyspace:
    """Apply the scope's default namespace (SPEC §1) and validate the result."""
    resolved = Scope.parse(scope)
    if namespace is not None and namespace.strip(WHITE_SPACE):
        return Keyspace(resolved.value, validate_namespace(namespace))
    if namespace is not None:
        validate_namespace(namespace)  # raises: explicit but empty
    if resolved is Scope.GLOBAL:
        return Keyspace(resolved.value, GLOBAL_NAMESPACE)
    if resolved is Scope.CUSTOM or resolved is Scope.SYSTEM:
        raise ConfigurationError(
            f"scope {quoted(resolved.value)} requires a namespace", param="namespace"
        )
    # The parameter names are the library's (each face spells them: errors.worded); the
    # environment variables are the same in every face.
    if resolved is Scope.DAG:
        default = context.dag
        hint, params = "set STATEBOX_DAG or give one", ("namespace", "dag")
    elif resolved is Scope.ROOT_DAG:
        default = context.root_dag or context.dag
        hint, params = (
            "set STATEBOX_ROOT_DAG or STATEBOX_DAG or give one",
            ("namespace", "root_dag"),
        )
    else:
        default = context.run_id
        hint, params = "set STATEBOX_RUN_ID or give one", ("namespace", "run_id")
    if not default:
        raise ConfigurationError(
            f"scope {quoted(resolved.value)} needs a namespace, and the run context has no "
            f"default for it: {hint}",
            param=params,
        )
    return Keyspace(resolved.value, validate_namespace(default))
