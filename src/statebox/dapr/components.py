"""Dapr component files, read as Dapr's own loader reads them, and what statebox serves.

A components directory holds YAML files (``*.yaml`` / ``*.yml``; other files are not
read), each with one or more documents. Only ``apiVersion: dapr.io/v1alpha1``,
``kind: Component`` documents are components; any other document (a ``Configuration``,
a ``Subscription``, ``Resiliency``...) is skipped without a word, as Dapr's disk loader
(dapr/dapr ``pkg/internal/loader/disk/manifest.go``) skips it. As Dapr does, a component
whose ``scopes`` do not name this app, or whose ``metadata.namespace`` is not the
``NAMESPACE`` environment variable (when both are set), is not loaded; here it is still
reported (:meth:`Components.notices`).

Each served component is one keyspace of the server's store: scope ``custom``,
namespace ``dapr-NAME``. Served are every ``state.*`` store (whatever its type and
metadata say, the data lives in statebox's store), every ``secretstores.*`` store (its
values are the entries of its keyspace) and the object-store output bindings of
:data:`OBJECT_STORE_BINDINGS`; an object store's objects under a ``credentials`` path
segment live in ``dapr-NAME-credentials`` (the Atlan SDK's credentials). Secret stores'
keyspaces and those ``-credentials`` keyspaces are secret (:meth:`Components.secret_keyspaces`).
Every other component is declared but not served: listed, with the reason, never
silently dropped.

Refused (a :class:`~statebox.core.errors.ConfigurationError` naming the file): YAML that
does not parse, a component without ``metadata.name`` or ``spec.type``, a name that is
not a valid path segment (Dapr's rule) or not a valid statebox namespace once prefixed
``dapr-``, and two components of one name (naming both files).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from ..core.errors import ConfigurationError, InvalidReferenceError, quoted
from ..core.model import Keyspace, validate_namespace
from .errors import (
    INVOKE_OUTPUT_BINDING,
    SECRET_STORE_NOT_FOUND,
    SECRET_STORES_NOT_CONFIGURED,
    STATE_STORE_NOT_CONFIGURED,
    STATE_STORE_NOT_FOUND,
    DaprError,
)

__all__ = [
    "API_VERSION",
    "NAMESPACE_PREFIX",
    "OBJECT_STORE_BINDINGS",
    "SCOPE",
    "Component",
    "Components",
    "load_components",
]

API_VERSION: Final = "dapr.io/v1alpha1"
SCOPE: Final = "custom"
NAMESPACE_PREFIX: Final = "dapr-"
CREDENTIALS_SUFFIX: Final = "-credentials"
#: Bounds on a component file: its size, and its values with aliases expanded.
MAX_FILE_CHARS: Final = 1_048_576
MAX_VALUES: Final = 100_000
#: The output bindings statebox serves: object stores (create, get, delete, list).
OBJECT_STORE_BINDINGS: Final = frozenset(
    {
        "bindings.localstorage",
        "bindings.aws.s3",
        "bindings.azure.blobstorage",
        "bindings.gcp.bucket",
        "bindings.alicloud.oss",
        "bindings.huawei.obs",
    }
)

Kind = Literal["state", "secretstore", "binding"]

#: Why a building block is not served, by the type's first segment.
_NOT_SERVED: Final = {
    "pubsub": "statebox does not serve pub/sub",
    "configuration": "statebox does not serve the configuration API",
    "lock": "statebox does not serve distributed locks",
    "middleware": "statebox does not run HTTP middleware",
    "crypto": "statebox does not serve the cryptography API",
    "workflowbackend": "statebox does not serve workflows",
    "conversation": "statebox does not serve the conversation API",
    "nameresolution": "statebox does not resolve service names",
}


@dataclass(frozen=True)
class Component:
    """One ``kind: Component`` document."""

    name: str
    type: str
    version: str
    #: ``spec.metadata`` items with a ``value``, as text (``secretKeyRef`` items are in
    #: :attr:`secret_refs`, unresolved).
    metadata: Mapping[str, str]
    #: The file it was read from.
    source: str
    #: Names of ``spec.metadata`` items given as ``secretKeyRef`` (statebox does not
    #: resolve them: a served component's metadata is not used).
    secret_refs: tuple[str, ...] = ()
    #: Why Dapr would not load it here (scopes, namespace, a bad keyPrefix), if so.
    refused: str | None = None

    @property
    def kind(self) -> Kind | None:
        """What statebox serves it as; None: not served."""
        if self.refused is not None:
            return None
        if self.type.startswith("state."):
            return "state"
        if self.type.startswith("secretstores."):
            return "secretstore"
        if self.type in OBJECT_STORE_BINDINGS:
            return "binding"
        return None

    @property
    def keyspace(self) -> Keyspace:
        """Its keyspace: scope ``custom``, namespace ``dapr-NAME``."""
        return Keyspace(SCOPE, NAMESPACE_PREFIX + self.name)

    @property
    def credentials_keyspace(self) -> Keyspace:
        """An object store's keyspace for objects under a ``credentials`` segment."""
        return Keyspace(SCOPE, NAMESPACE_PREFIX + self.name + CREDENTIALS_SUFFIX)

    def keyspaces(self) -> list[Keyspace]:
        """Every keyspace it uses."""
        if self.kind == "binding":
            return [self.keyspace, self.credentials_keyspace]
        return [self.keyspace] if self.kind is not None else []

    def why_not_served(self) -> str | None:
        """None when served; else why not, in a few words."""
        if self.refused is not None:
            return self.refused
        if self.kind is not None:
            return None
        block = self.type.split(".", 1)[0]
        if block == "bindings":
            served = ", ".join(sorted(OBJECT_STORE_BINDINGS))
            return f"statebox serves only object-store bindings ({served})"
        if block in _NOT_SERVED:
            return _NOT_SERVED[block]
        return f"statebox does not know the component type {quoted(self.type)}"

    def describe(self) -> str:
        """``component NAME (type T)``, as messages name it."""
        return f"component {self.name} (type {self.type})"


@dataclass(frozen=True)
class Components:
    """The components of a directory: the served ones by name, and the others."""

    served: Mapping[str, Component] = field(default_factory=dict)
    unserved: Sequence[Component] = ()

    def _unserved(self, name: str) -> Component | None:
        return next((c for c in self.unserved if c.name == name), None)

    def _of_kind(self, kind: Kind) -> list[Component]:
        return [c for c in self.served.values() if c.kind == kind]

    def _declared_not_served(self, component: Component) -> str:
        return (
            f"{component.describe()} is declared but statebox does not serve it: "
            f"{component.why_not_served()}"
        )

    def state_store(self, name: str) -> Component:
        """The state store ``name``; a :class:`DaprError` as Dapr answers otherwise:
        ``ERR_STATE_STORE_NOT_CONFIGURED`` (500) when none is, else
        ``ERR_STATE_STORE_NOT_FOUND`` (400)."""
        component = self.served.get(name)
        if component is not None and component.kind == "state":
            return component
        other = self._unserved(name)
        if other is not None:
            message = self._declared_not_served(other)
            raise DaprError(STATE_STORE_NOT_FOUND, message, 400, "INVALID_ARGUMENT")
        if not self._of_kind("state"):
            raise DaprError(
                STATE_STORE_NOT_CONFIGURED,
                f"state store {name} is not configured",
                500,
                "FAILED_PRECONDITION",
            )
        raise DaprError(
            STATE_STORE_NOT_FOUND, f"state store {name} is not found", 400, "INVALID_ARGUMENT"
        )

    def secret_store(self, name: str) -> Component:
        """The secret store ``name``; else ``ERR_SECRET_STORES_NOT_CONFIGURED`` (500)
        when none is, or ``ERR_SECRET_STORE_NOT_FOUND`` (401, as Dapr answers it)."""
        component = self.served.get(name)
        if component is not None and component.kind == "secretstore":
            return component
        other = self._unserved(name)
        if other is not None:
            message = self._declared_not_served(other)
            raise DaprError(SECRET_STORE_NOT_FOUND, message, 401, "INVALID_ARGUMENT")
        if not self._of_kind("secretstore"):
            raise DaprError(
                SECRET_STORES_NOT_CONFIGURED,
                "secret store is not configured",
                500,
                "FAILED_PRECONDITION",
            )
        raise DaprError(
            SECRET_STORE_NOT_FOUND,
            f"failed finding secret store with key {name}",
            401,
            "INVALID_ARGUMENT",
        )

    def binding(self, name: str) -> Component:
        """The object-store binding ``name``; else ``ERR_INVOKE_OUTPUT_BINDING`` (500)."""
        component = self.served.get(name)
        if component is not None and component.kind == "binding":
            return component
        other = self._unserved(name)
        why = (
            self._declared_not_served(other)
            if other is not None
            else f"couldn't find output binding {name}"
        )
        raise DaprError(
            INVOKE_OUTPUT_BINDING,
            f"error invoking output binding {name}: {why}",
            500,
            "INTERNAL",
        )

    def secret_keyspaces(self) -> list[Keyspace]:
        """The keyspaces to declare secret: secret stores' and object stores'
        ``-credentials`` ones."""
        found: list[Keyspace] = []
        for component in self.served.values():
            if component.kind == "secretstore":
                found.append(component.keyspace)
            elif component.kind == "binding":
                found.append(component.credentials_keyspace)
        return found

    def notices(self) -> list[str]:
        """What ``statebox serve`` says at start-up about the components: one line for
        each that is not served (and why), for what a served one's metadata does not
        do, and for each ``secretKeyRef`` left unresolved."""
        lines: list[str] = []
        for component in self.served.values():
            lines.extend(_served_notices(component))
        for component in self.unserved:
            lines.append(
                f"dapr: {component.describe()} in {component.source} is not served: "
                f"{component.why_not_served()}"
            )
        return lines


def _served_notices(component: Component) -> Iterator[str]:
    ks = component.keyspace
    where = f"scope {ks.scope}, namespace {ks.namespace}"
    ignored = sorted(k for k in component.metadata if k.lower() != "keyprefix")
    if component.kind == "state":
        what = f"dapr: state store {component.name} (type {component.type}) is served from {where}"
        if ignored:
            what += f"; its metadata {', '.join(ignored)} is ignored"
        yield what
    elif component.kind == "secretstore":
        yield (
            f"dapr: secret store {component.name} (type {component.type}) is served from "
            f"{where} (secret: sealed at rest), not from what its type names"
        )
    else:
        creds = component.credentials_keyspace.namespace
        what = (
            f"dapr: object store {component.name} (type {component.type}) is served from "
            f"{where} (objects under a credentials segment: namespace {creds}, secret)"
        )
        if ignored:
            what += f"; its metadata {', '.join(ignored)} is ignored"
        yield what
    for name in component.secret_refs:
        yield (
            f"dapr: {component.describe()}: metadata {name} is a secretKeyRef; statebox "
            "does not resolve it (the component's metadata is not used)"
        )


# -- loading ---------------------------------------------------------------------------


def _is_yaml(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(".yaml") or lowered.endswith(".yml")


def _text(value: Any) -> str:
    """A metadata value as Dapr reads it: text (YAML's booleans and numbers too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _check_name(name: Any, source: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{source}: a Component without metadata.name")
    # Dapr: k8s path.IsValidPathSegmentName.
    if name in (".", "..") or "/" in name or "%" in name:
        raise ConfigurationError(
            f"{source}: invalid component name {quoted(name)}: "
            'must not be "." or ".." nor contain "/" or "%"'
        )
    try:
        namespace = validate_namespace(NAMESPACE_PREFIX + name)
    except InvalidReferenceError as exc:
        raise ConfigurationError(
            f"{source}: invalid component name {quoted(name)}: {exc.message}"
        ) from None
    if namespace != NAMESPACE_PREFIX + name:
        raise ConfigurationError(
            f"{source}: invalid component name {quoted(name)}: "
            "must not begin or end with white space"
        )
    return name


def _metadata(items: Any, source: str, name: str) -> tuple[dict[str, str], list[str], str | None]:
    """``spec.metadata``: the values, the secretKeyRef names, and a problem (if any)."""
    values: dict[str, str] = {}
    refs: list[str] = []
    if items is None:
        return values, refs, None
    if not isinstance(items, list):
        return values, refs, "its spec.metadata is not a list of {name, value} items"
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            return values, refs, "its spec.metadata is not a list of {name, value} items"
        if "secretKeyRef" in item and "value" not in item:
            refs.append(item["name"])
        else:
            values[item["name"]] = _text(item.get("value"))
    return values, refs, None


def _refusal(
    doc: Mapping[str, Any], type_: str, metadata: Mapping[str, str], app_id: str | None
) -> str | None:
    """Why Dapr would not load this component here (None: it would)."""
    scopes = doc.get("scopes")
    if app_id is not None and isinstance(scopes, list) and scopes and app_id not in scopes:
        listed = ", ".join(str(s) for s in scopes)
        return f"it is scoped to the apps {listed}, and this app is {app_id}"
    wanted = os.environ.get("NAMESPACE", "")
    own = (doc.get("metadata") or {}).get("namespace")
    if wanted and isinstance(own, str) and own and own != wanted:
        return f"it is in namespace {own}, and NAMESPACE is {wanted}"
    if type_.startswith("state."):
        for key, value in metadata.items():
            if key.lower() == "keyprefix" and "||" in value:
                return f"its keyPrefix {quoted(value)} contains '||'"
    return None


def _expanded(node: Any, memo: dict[int, int]) -> int:
    """How many values a composed YAML node stands for once its aliases are expanded."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_VALUES + 1  # a recursive alias: too many
    size = 1
    if isinstance(node.value, list):
        for part in node.value:
            for child in part if isinstance(part, tuple) else (part,):
                size += _expanded(child, memo)
                if size > MAX_VALUES:
                    break
    memo[id(node)] = size
    return size


def _documents(path: Path) -> list[Any]:
    """The YAML documents of the file ``path``; a ConfigurationError naming it when it
    cannot be read, is not YAML, or is an alias bomb (PyYAML would expand it)."""
    import yaml  # type: ignore[import-untyped]

    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        if len(text) > MAX_FILE_CHARS:
            raise ConfigurationError(
                f"{source}: a Dapr component file of more than {MAX_FILE_CHARS} characters"
            )
        memo: dict[int, int] = {}
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is not None and _expanded(node, memo) > MAX_VALUES:
                raise ConfigurationError(
                    f"{source}: more than {MAX_VALUES} values once its aliases are expanded"
                )
        return list(yaml.safe_load_all(text))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the Dapr component file {source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigurationError(f"{source}: not valid YAML: nested too deeply") from None


def _components_of(path: Path, app_id: str | None) -> Iterator[Component]:
    source = str(path)
    documents = _documents(path)
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue  # not a manifest: nothing Dapr would load either
        if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "Component":
            continue  # a Configuration, a Subscription...: not a component
        meta = doc.get("metadata")
        name = _check_name(meta.get("name") if isinstance(meta, Mapping) else None, source)
        spec = doc.get("spec")
        type_ = spec.get("type") if isinstance(spec, Mapping) else None
        if not isinstance(type_, str) or not type_:
            raise ConfigurationError(f"{source}: component {quoted(name)} has no spec.type")
        assert isinstance(spec, Mapping)
        values, refs, problem = _metadata(spec.get("metadata"), source, name)
        refused = problem if problem is not None else _refusal(doc, type_, values, app_id)
        yield Component(
            name=name,
            type=type_,
            version=_text(spec.get("version")),
            metadata=values,
            source=source,
            secret_refs=tuple(refs),
            refused=refused,
        )


def load_components(directory: str | Path | None, *, app_id: str | None = None) -> Components:
    """The components of ``directory`` (None: no components at all).

    ``app_id``: components whose ``scopes`` leave this app out are not served (reported);
    None: scopes are not checked."""
    if directory is None:
        return Components({}, [])
    root = Path(directory)
    if not root.is_dir():
        raise ConfigurationError(f"the Dapr components directory {root} is not a directory")
    served: dict[str, Component] = {}
    unserved: list[Component] = []
    seen: dict[str, Component] = {}
    owners: dict[Keyspace, Component] = {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or not _is_yaml(path.name):
            continue
        for component in _components_of(path, app_id):
            first = seen.get(component.name)
            if first is not None:
                raise ConfigurationError(
                    f"two Dapr components are named {quoted(component.name)}: in "
                    f"{first.source} and in {component.source}"
                )
            seen[component.name] = component
            for ks in component.keyspaces():
                owner = owners.get(ks)
                if owner is not None:
                    raise ConfigurationError(
                        f"{owner.describe()} in {owner.source} and {component.describe()} "
                        f"in {component.source} would share the keyspace "
                        f"{ks.scope}/{ks.namespace}: rename one"
                    )
                owners[ks] = component
            if component.kind is None:
                unserved.append(component)
            else:
                served[component.name] = component
    return Components(served, unserved)
