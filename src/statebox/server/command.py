"""``statebox serve [--host H] [--port P] [--tokens FILE] [--insecure]``: the server's
command on the ``statebox`` command line (the ``statebox[server]`` extra).

The CLI finds it through the ``statebox.commands`` entry point (``pyproject.toml``), so
neither face imports the other: the CLI hands :func:`register` the function that adds a
command with the common options, and calls :func:`run` with the store it opened.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.commands import AddCommand
    from ..store import StateStore


def register(subparsers: Any, add_command: AddCommand) -> None:
    # Not from .main: --help builds this parser, and the server loads only in run.
    from .options import add_serve_options

    examples: Sequence[str] = [
        "statebox serve --store sqlite:////var/lib/statebox/state.db",
        "statebox serve --host 0.0.0.0 --port 8787 --tokens /etc/statebox/tokens.yaml",
        "STATEBOX_STORE=postgresql://statebox@db/statebox statebox serve --tokens t.yaml",
    ]
    parser = add_command(
        subparsers,
        "serve",
        common=("store",),
        help="serve the HTTP API over the store (needs the server extra)",
        description=(
            "Serve every operation over HTTP (OpenAPI at /openapi.json, docs at /docs,\n"
            "/healthz, /metrics) until interrupted. Binds 127.0.0.1 unless --host says\n"
            "otherwise; a non-loopback address needs --tokens (or --insecure)."
        ),
        examples=examples,
    )
    add_serve_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> None:
    from .main import serve_from_args

    serve_from_args(args, store.backend)
