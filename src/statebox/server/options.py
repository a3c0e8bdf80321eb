"""The options of ``statebox serve`` / ``python -m statebox.server``, and their defaults.

Apart from :mod:`.main` so that ``statebox --help``, which builds every command's
parser, declares them without importing the server (tokens, backends, sockets): this
module imports nothing but what annotations name.

A face that extends ``statebox serve`` (``statebox.web.Extension``) names a module in the
``statebox.serve_extensions`` entry point group; its ``add_options(parser)`` adds that
face's options here (:func:`extension_modules`: found and loaded here, without
starlette, so ``--help`` stays cheap), and the server calls its ``extension(args)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_TXN_OPS",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_MAX_WATCHES_PER_TOKEN",
    "DEFAULT_PORT",
    "EXTENSION_GROUP",
    "ExtensionModule",
    "add_serve_options",
    "extension_modules",
]

DEFAULT_PORT: Final = 8787
#: Room for one binary value of the default 32 MiB limit, base64-encoded in a JSON body.
DEFAULT_MAX_BODY_BYTES: Final = 48 * 1024 * 1024
DEFAULT_MAX_WAIT: Final = 60.0
#: Operations in one transaction (``/v1/txn``, ``/v1/apply``), as etcd's ``--max-txn-ops``.
DEFAULT_MAX_TXN_OPS: Final = 128
#: Seconds a client has to send a request's whole head (request line and headers).
DEFAULT_HEADER_TIMEOUT: Final = 10.0
#: Seconds a client has to send a request's whole body, from the end of its head. Room
#: for the largest default body (48 MiB) at about 1 MB/s.
DEFAULT_BODY_TIMEOUT: Final = 60.0
#: The largest request head (request line and headers together), in bytes.
DEFAULT_MAX_HEADER_BYTES: Final = 64 * 1024
#: Seconds an idle keep-alive connection stays open. Longer than the remote store's own
#: idle limit (20 s, IDLE_LIMIT in backends/_http_transport.py): the client gives up an idle
#: connection first, so a request never meets a connection just closed.
DEFAULT_IDLE_TIMEOUT: Final = 75.0
#: Open connections at once; more are refused (and the refusal logged).
DEFAULT_MAX_CONNECTIONS: Final = 4096
#: Open watches (long polls and event streams) per token (or per anonymous server).
DEFAULT_MAX_WATCHES_PER_TOKEN: Final = 1024


#: The entry point group of the modules that extend ``statebox serve``: the same as
#: ``statebox.web.EXTENSION_GROUP`` (not imported from there: that brings starlette).
EXTENSION_GROUP: Final = "statebox.serve_extensions"


class ExtensionModule:
    """One module of the ``statebox.serve_extensions`` entry points: its entry point's
    ``name = value``, and its two functions."""

    __slots__ = ("module", "name", "value")

    def __init__(self, name: str, value: str, module: Any) -> None:
        self.name = name
        self.value = value
        self.module = module

    def __repr__(self) -> str:
        return f"ExtensionModule({self.name!r}, {self.value!r})"

    @property
    def where(self) -> str:
        return _where(self.name, self.value)

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        self.module.add_options(parser)

    def extension(self, args: argparse.Namespace) -> Any:
        """The module's ``Extension`` (or ``None``) for the parsed options."""
        return self.module.extension(args)


def _where(name: str, value: str) -> str:
    """How messages name an extension: ``entry point dapr = statebox.dapr.serve (group)``."""
    return f"entry point {name} = {value} ({EXTENSION_GROUP})"


_loaded: list[ExtensionModule] | None = None


def extension_modules() -> list[ExtensionModule]:
    """The modules the ``statebox.serve_extensions`` entry points name, loaded (once
    per process), in name order. One that cannot be loaded, or lacks ``add_options``
    or ``extension``, is a ConfigurationError naming its entry point."""
    global _loaded
    if _loaded is not None:
        return _loaded
    from importlib.metadata import entry_points

    from ..core.errors import ConfigurationError

    found: list[ExtensionModule] = []
    seen: set[str] = set()
    for point in sorted(entry_points(group=EXTENSION_GROUP), key=lambda p: p.name):
        if point.name in seen:  # one distribution seen twice on sys.path
            continue
        seen.add(point.name)
        where = _where(point.name, point.value)
        try:
            module = point.load()
        except Exception as exc:
            raise ConfigurationError(
                f"the statebox serve extension of {where} cannot be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        missing = [
            name
            for name in ("add_options", "extension")
            if not callable(getattr(module, name, None))
        ]
        if missing:
            raise ConfigurationError(
                f"the statebox serve extension of {where} has no {' or '.join(missing)} function"
            )
        found.append(ExtensionModule(point.name, point.value, module))
    _loaded = found
    return found


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``statebox serve`` (all but ``--store``, which every command has),
    and those of every extension (:func:`extension_modules`)."""
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
    parser.add_argument(
        "--max-txn-ops",
        type=int,
        default=DEFAULT_MAX_TXN_OPS,
        help=f"most operations in one transaction ({DEFAULT_MAX_TXN_OPS})",
    )
    parser.add_argument(
        "--history-limit",
        type=int,
        metavar="N",
        # No default here: the library's (statebox.core.values) is not imported for --help.
        help="past versions kept per key, whoever writes (0: none; the library's 10)",
    )
    parser.add_argument(
        "--allow-host",
        dest="allowed_hosts",
        action="append",
        default=[],
        metavar="HOST",
        help="a Host name to answer besides loopback names and literal IPs (repeatable)",
    )
    parser.add_argument(
        "--allow-origin",
        dest="allowed_origins",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin (scheme://host[:port]) allowed to call the API (repeatable; none)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT,
        help=f"seconds to receive a request's headers ({DEFAULT_HEADER_TIMEOUT:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT,
        help=f"seconds to receive a request's whole body ({DEFAULT_BODY_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=DEFAULT_MAX_HEADER_BYTES,
        help=f"largest request head in bytes ({DEFAULT_MAX_HEADER_BYTES})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        help=f"seconds an idle connection stays open ({DEFAULT_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"open connections at once; more are refused ({DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--max-watches-per-token",
        type=int,
        default=DEFAULT_MAX_WATCHES_PER_TOKEN,
        help=f"open watches per token ({DEFAULT_MAX_WATCHES_PER_TOKEN})",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (info)")
    for extension in extension_modules():
        try:
            extension.add_options(parser)
        except Exception as exc:
            from ..core.errors import ConfigurationError

            raise ConfigurationError(
                f"the statebox serve extension of {extension.where} cannot add its options: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
