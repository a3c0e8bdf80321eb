"""``statebox serve [--host H] [--port P] [--tokens FILE] [--insecure]`` → the HTTP API
(:func:`statebox.server.serve`, the ``statebox[server]`` extra) over ``--store``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._parser import add_command

if TYPE_CHECKING:
    import argparse

    from ..store import StateStore
    from ._parser import Subparsers


def register(subparsers: Subparsers) -> None:
    # Not from .main: --help builds this parser, and the server loads only in run.
    from ..server.options import add_serve_options

    parser = add_command(
        subparsers,
        "serve",
        help="serve the HTTP API over the store (needs statebox[server])",
        description=(
            "Serve every operation over HTTP (OpenAPI at /openapi.json, docs at /docs,\n"
            "/healthz, /metrics) until interrupted. Binds 127.0.0.1 unless --host says\n"
            "otherwise; a non-loopback address needs --tokens (or --insecure)."
        ),
        examples=[
            "statebox serve --store sqlite:////var/lib/statebox/state.db",
            "statebox serve --host 0.0.0.0 --port 8787 --tokens /etc/statebox/tokens.yaml",
            "STATEBOX_STORE=postgresql://statebox@db/statebox statebox serve --tokens t.yaml",
        ],
    )
    add_serve_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: StateStore) -> None:
    from ..server.main import serve_from_args

    serve_from_args(args, store.backend)
