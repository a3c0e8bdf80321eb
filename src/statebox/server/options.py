"""The options of ``statebox serve`` / ``python -m statebox.server``, and their defaults.

Apart from :mod:`.main` so that ``statebox --help``, which builds every command's
parser, declares them without importing the server (tokens, backends, sockets): this
module imports nothing but what annotations name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import argparse

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_WAIT", "DEFAULT_PORT", "add_serve_options"]

DEFAULT_PORT: Final = 8787
#: Room for one binary value of the default 32 MiB limit, base64-encoded in a JSON body.
DEFAULT_MAX_BODY_BYTES: Final = 48 * 1024 * 1024
DEFAULT_MAX_WAIT: Final = 60.0


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``statebox serve`` (all but ``--store``, which every command has)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (8787; 0: any)")
    parser.add_argument("--tokens", metavar="FILE", help="bearer tokens file (YAML or JSON)")
    parser.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback address without tokens"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"refuse request bodies over this size with 413 ({DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--test-mode",
        action="store_true",
        help="for test suites: honour X-Statebox-Now, allow POST /v1/_test/reset",
    )
    parser.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="no per-request log"
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=DEFAULT_MAX_WAIT,
        help=f"the longest a watch long poll blocks, in seconds ({DEFAULT_MAX_WAIT:g})",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (info)")
