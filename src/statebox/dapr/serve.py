"""The Dapr face as an extension of ``statebox serve`` (the ``statebox.serve_extensions``
entry point ``dapr``): its options, and what it adds to the server.

With any ``--dapr-*`` option, ``statebox serve`` serves Dapr's HTTP API (``/v1.0/...``,
:mod:`.http`) on its own port, and on ``--dapr-http-port`` too when given; with
``--dapr-grpc-port``, Dapr's gRPC API (:mod:`.grpc`, the ``statebox[dapr]`` extra) beside
it. The components come from ``--dapr-components`` (:func:`.components.load_components`).
Library users and tests build the same :class:`~statebox.web.extension.Extension` with
:func:`dapr_extension`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigurationError, quoted
from ..core.install import extra_hint
from .options import DEFAULT_APP_ID, add_options

if TYPE_CHECKING:
    import argparse

    from ..web.extension import Extension, Service
    from .state_api import DaprContext

__all__ = ["add_options", "dapr_extension", "extension"]


def extension(args: argparse.Namespace) -> Extension | None:
    """The Dapr face for ``statebox serve``'s parsed options; ``None`` when no
    ``--dapr-*`` option asks for it (the server is then exactly as without it)."""
    components = getattr(args, "dapr_components", None)
    http_port = getattr(args, "dapr_http_port", None)
    grpc_port = getattr(args, "dapr_grpc_port", None)
    if components is None and http_port is None and grpc_port is None:
        return None
    return dapr_extension(
        components,
        app_id=getattr(args, "dapr_app_id", DEFAULT_APP_ID),
        http_port=http_port,
        grpc_port=grpc_port,
        host=getattr(args, "host", "127.0.0.1"),
    )


def dapr_extension(
    components_dir: str | Path | None = None,
    *,
    app_id: str = DEFAULT_APP_ID,
    http_port: int | None = None,
    grpc_port: int | None = None,
    host: str = "127.0.0.1",
) -> Extension:
    """Dapr's API over the components in ``components_dir`` (``None``: none declared):
    the HTTP routes always (on the server's port), ``http_port`` another port serving
    the same app (0: any free one; ``serve`` prints it), ``grpc_port`` the gRPC API on
    ``host``."""
    if components_dir is not None and not Path(components_dir).is_dir():
        raise ConfigurationError(
            f"--dapr-components {quoted(str(components_dir))}: no such directory (it names "
            "the folder of Dapr component YAML files)"
        )
    if not app_id or "||" in app_id:
        raise ConfigurationError(
            f"--dapr-app-id {quoted(app_id)}: an app id is non-empty and has no ||"
        )
    if http_port is not None and not 0 <= http_port < 65536:
        raise ConfigurationError(f"--dapr-http-port {http_port}: a port is 0 (any) to 65535")
    if grpc_port is not None and not 0 < grpc_port < 65536:
        raise ConfigurationError(f"--dapr-grpc-port {grpc_port}: a port is 1 to 65535")
    # Imported here: ``statebox --help`` loads this module for add_options, and must not
    # pay for starlette, msgspec or YAML.
    from ..web.extension import Extension
    from .components import load_components
    from .http import router
    from .state_api import DaprContext

    loaded = load_components(components_dir, app_id=app_id)
    dapr = DaprContext(components=loaded, app_id=app_id)

    services: list[Service] = []
    listening: list[str] = []
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    if grpc_port is not None:
        services.append(_grpc_service(dapr, host, grpc_port))
        listening.append(f"Dapr gRPC API on {shown}:{grpc_port}")
    return Extension(
        name="dapr",
        routers=[router(dapr)],
        http_ports=[http_port] if http_port is not None else [],
        services=services,
        secret_keyspaces=loaded.secret_keyspaces(),
        notices=loaded.notices(),
        listening=listening,
    )


def _grpc_service(dapr: DaprContext, host: str, port: int) -> Service:
    try:
        grpc = importlib.import_module(".grpc", __package__)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("dapr", "grpc", "google"):
            raise ConfigurationError(
                f"the Dapr gRPC API needs the dapr extra ({exc.name} is missing): "
                f"run: {extra_hint('dapr')}"
            ) from exc
        raise
    service: Service = grpc.grpc_service(dapr, host, port)
    return service
