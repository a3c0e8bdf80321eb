"""The options ``statebox serve`` gains from the Dapr face (``statebox --help`` builds
that parser, so this module imports nothing but what annotations name)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import argparse

__all__ = ["DEFAULT_APP_ID", "add_options"]

#: The app id Dapr's default key prefix (``APPID||key``) uses when none is given.
DEFAULT_APP_ID: Final = "statebox"


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--dapr-components``, ``--dapr-http-port``, ``--dapr-grpc-port``, ``--dapr-app-id``."""
    group = parser.add_argument_group(
        "Dapr API",
        "serve Dapr's state, secrets, bindings and metadata API over this store "
        "(docs/dapr.md); off unless one of these options is given",
    )
    group.add_argument(
        "--dapr-components",
        metavar="DIR",
        help="a folder of Dapr component YAML files (kind: Component): each state store, "
        "secret store and object-store binding is served from scope custom, namespace "
        "dapr-NAME; the Dapr HTTP API (/v1.0/...) is served on --port",
    )
    group.add_argument(
        "--dapr-http-port",
        type=int,
        metavar="PORT",
        help="also serve the whole API (Dapr's routes included) on this port, for an app "
        "that reads DAPR_HTTP_PORT (0: any free port, printed at start)",
    )
    group.add_argument(
        "--dapr-grpc-port",
        type=int,
        metavar="PORT",
        help="serve the Dapr gRPC API on this port, for an app that reads DAPR_GRPC_PORT "
        "(needs the dapr extra: see docs/install.md)",
    )
    group.add_argument(
        "--dapr-app-id",
        default=DEFAULT_APP_ID,
        metavar="ID",
        help=f"the app id in Dapr's key prefix APPID||key ({DEFAULT_APP_ID})",
    )
