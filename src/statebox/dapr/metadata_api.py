"""Dapr's metadata API: the app id, the runtime and the components served.

The HTTP shape is Dapr's ``GET /v1.0/metadata`` answer (dapr/dapr
``pkg/api/http/metadata.go``: ``id``, ``runtimeVersion``, ``enabledFeatures``,
``components`` with ``name``, ``type``, ``version``, ``capabilities``, ``extended``,
``actorRuntime``); the gRPC face builds ``GetMetadataResponse`` from the same dict.
Components declared but not served are not listed (``statebox serve`` names them at
start-up).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Final

from .components import Component

if TYPE_CHECKING:
    from .state_api import DaprContext

__all__ = ["CAPABILITIES", "metadata", "runtime_version"]

#: What each kind of served component can do, in Dapr's words (components-contrib
#: state/feature.go; bindings: pkg/runtime/runtime.go adds OUTPUT_BINDING).
CAPABILITIES: Final[dict[str, list[str]]] = {
    "state": ["ETAG", "TRANSACTIONAL", "TTL"],
    "secretstore": [],
    "binding": ["OUTPUT_BINDING"],
}


def runtime_version() -> str:
    """statebox's version, as ``runtimeVersion`` (``statebox-X.Y.Z``)."""
    try:
        return "statebox-" + version("statebox")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "statebox"


def _component(component: Component) -> dict[str, Any]:
    kind = component.kind
    capabilities = CAPABILITIES[kind] if kind is not None else []
    shown: dict[str, Any] = {
        "name": component.name,
        "type": component.type,
        "version": component.version,
    }
    if capabilities:
        shown["capabilities"] = list(capabilities)
    return shown


def metadata(dapr: DaprContext) -> dict[str, Any]:
    """Dapr's metadata answer for ``dapr`` (the HTTP JSON body)."""
    runtime = runtime_version()
    return {
        "id": dapr.app_id,
        "runtimeVersion": runtime,
        "enabledFeatures": [],
        "components": [_component(c) for c in dapr.components.served.values()],
        "extended": {"daprRuntimeVersion": runtime},
        "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": False},
    }
