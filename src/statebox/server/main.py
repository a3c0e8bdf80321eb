"""``serve()``: run the API with uvicorn, secure by default.

It binds 127.0.0.1 unless told otherwise, and refuses a non-loopback address without a
tokens file unless the operator says ``insecure=True`` (``--insecure``). The socket is
bound before uvicorn starts, and the line ``statebox server listening on URL`` printed
once the app has started (its extensions' services with it), so it is true when it is
printed (with ``port=0`` it names the port the system chose).
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from ..backends.base import Backend
from ..config import resolve_store_url
from ..core.errors import ConfigurationError, StateboxError
from ..core.install import extra_hint
from ..core.redaction import redact_text
from ..core.redaction import redact_url as _redact_url
from ..core.values import DEFAULT_HISTORY_LIMIT
from ..store import StateStore
from .auth import load_tokens
from .config import ServerConfig
from .options import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_TXN_OPS,
    DEFAULT_MAX_WAIT,
    DEFAULT_MAX_WATCHES_PER_TOKEN,
    DEFAULT_PORT,
    add_serve_options,
    extension_modules,
)

if TYPE_CHECKING:
    from ..web import Extension
    from .state import ServerState

__all__ = [
    "add_serve_options",
    "is_loopback",
    "load_extensions",
    "main",
    "redact_url",
    "serve",
    "serve_from_args",
]


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so it is not loopback


def redact_url(url: str) -> str:
    """The store URL without its passwords (every form: see :mod:`statebox.core.redaction`)."""
    return _redact_url(url)


def check_bind(host: str, *, has_tokens: bool, insecure: bool, test_mode: bool) -> None:
    if is_loopback(host):
        return
    if test_mode:
        raise ConfigurationError(
            f"refusing --test-mode on {host}: it trusts the client's clock and can wipe the "
            "store, so it only ever listens on loopback"
        )
    if not has_tokens and not insecure:
        raise ConfigurationError(
            f"refusing to listen on {host} without --tokens: anyone who can reach it could "
            "read and write every namespace. Pass --tokens FILE, or --insecure if the "
            "network itself is trusted"
        )


def _bind(host: str, port: int, what: str = "") -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}{what}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    store: str | Backend | StateStore | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    tokens: str | None = None,
    insecure: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    test_mode: bool = False,
    access_log: bool = True,
    log_level: str = "info",
    max_wait: float = DEFAULT_MAX_WAIT,
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_watches_per_token: int = DEFAULT_MAX_WATCHES_PER_TOKEN,
    extensions: Sequence[Extension] = (),
) -> None:
    """Serve the statebox API over ``store`` (a URL — default as everywhere —, an open
    backend, or an open :class:`StateStore`, whose backend is served) until stopped.

    ``extensions`` (:class:`statebox.web.Extension`) add routers and services to the
    app (``create_app``), and ports the same app is also served on (same ``host``,
    same limits): each printed as ``statebox NAME HTTP API listening on URL``, after
    the server's own line. Their notices go to stderr first."""
    if isinstance(store, StateStore):
        store = store.backend
    try:
        import uvicorn

        from .app import create_app
        from .protocol import fit_to_file_limit, limited_protocol
    except ImportError as exc:
        raise ConfigurationError(
            f"the statebox server needs its extra ({exc.name} is missing): "
            f"run: {extra_hint('server')}"
        ) from exc

    check_bind(host, has_tokens=tokens is not None, insecure=insecure, test_mode=test_mode)
    if history_limit < 0:
        raise ConfigurationError(f"invalid history limit {history_limit}: must be 0 or more")
    max_connections = fit_to_file_limit(max_connections)  # never EMFILE when full
    url = store.url if isinstance(store, Backend) else resolve_store_url(store)
    config = ServerConfig(
        tokens=load_tokens(tokens) if tokens is not None else None,
        max_body_bytes=max_body_bytes,
        test_mode=test_mode,
        max_wait=max_wait,
        purge_interval=0.0 if test_mode else 60.0,
        max_txn_ops=max_txn_ops,
        history_limit=history_limit,
        allowed_hosts=tuple(allowed_hosts),
        allowed_origins=tuple(allowed_origins),
        max_watches_per_token=max_watches_per_token,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_header_bytes=max_header_bytes,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
    )
    sockets = _bind_all(host, port, extensions)
    shown_host = f"[{host.strip('[]')}]" if ":" in host else host

    def listening() -> None:
        # Once the app has started its extensions' services (a gRPC port): every line
        # printed is true, and a client that waits for them finds each port ready.
        print(
            f"statebox server listening on http://{shown_host}:{sockets[0][1].getsockname()[1]} "
            f"(store {redact_url(url)}{', test mode' if test_mode else ''})",
            flush=True,
        )
        for name, extra in sockets[1:]:
            print(
                f"statebox {name} HTTP API listening on "
                f"http://{shown_host}:{extra.getsockname()[1]}",
                flush=True,
            )
        for extension in extensions:
            for line in extension.listening:
                print(line, flush=True)

    app = create_app(
        store if isinstance(store, Backend) else url,
        config,
        extensions=extensions,
        on_started=listening,
    )
    for extension in extensions:
        for notice in extension.notices:
            print(notice, file=sys.stderr, flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            # Header and body timeouts, header size, connection limit (protocol.py).
            http=limited_protocol(
                header_timeout=header_timeout,
                body_timeout=body_timeout,
                max_header_bytes=max_header_bytes,
                max_connections=max_connections,
            ),
            log_level=log_level,
            access_log=access_log,
            timeout_keep_alive=math.ceil(idle_timeout),  # see DEFAULT_IDLE_TIMEOUT
            server_header=False,
            # No X-Forwarded-For rewriting: nothing here uses the client's address, and
            # it is one layer less on every request.
            proxy_headers=False,
        )
    )
    try:
        server.run(sockets=[sock for _, sock in sockets])
    except SystemExit:  # uvicorn's answer to a failed start-up (it logged the traceback)
        _startup_failed(app.state.statebox)
    if not server.started:
        _startup_failed(app.state.statebox)


def _startup_failed(state: ServerState) -> NoReturn:
    """The app's start-up (an extension's service) failed: say why, as any
    configuration error is said (``Error: …``, its exit code)."""
    if state.startup_error is not None:
        raise state.startup_error from None
    raise ConfigurationError("the server failed to start: its log above says why")


def _bind_all(
    host: str, port: int, extensions: Sequence[Extension]
) -> list[tuple[str, socket.socket]]:
    """The server's own socket, then each extension's ``http_ports``: ``(name, socket)``
    (all closed again when one cannot be bound)."""
    bound: list[tuple[str, socket.socket]] = []
    try:
        bound.append(("server", _bind(host, port)))
        for extension in extensions:
            for extra in extension.http_ports:
                what = f" (the statebox {extension.name} HTTP API's port)"
                bound.append((extension.name, _bind(host, extra, what)))
    except ConfigurationError:
        for _, sock in bound:
            sock.close()
        raise
    return bound


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m statebox.server", description="Serve the statebox HTTP API."
    )
    parser.add_argument("--store", help="store URL (default: $STATEBOX_STORE, else SQLite)")
    add_serve_options(parser)
    return parser


def load_extensions(args: argparse.Namespace) -> list[Extension]:
    """The extensions of the ``statebox.serve_extensions`` entry points for ``args``
    (each module's ``extension(args)``; ``None``: that face adds nothing this time)."""
    found: list[Extension] = []
    for module in extension_modules():
        extension = module.extension(args)
        if extension is not None:
            found.append(extension)
    return found


def serve_from_args(args: argparse.Namespace, store: str | Backend | None) -> None:
    serve(
        store,
        host=args.host,
        port=args.port,
        tokens=args.tokens,
        insecure=args.insecure,
        max_body_bytes=args.max_body_bytes,
        test_mode=args.test_mode,
        access_log=args.access_log,
        log_level=args.log_level,
        max_wait=args.max_wait,
        max_txn_ops=args.max_txn_ops,
        history_limit=(DEFAULT_HISTORY_LIMIT if args.history_limit is None else args.history_limit),
        allowed_hosts=args.allowed_hosts,
        allowed_origins=args.allowed_origins,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_header_bytes=args.max_header_bytes,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
        max_watches_per_token=args.max_watches_per_token,
        extensions=load_extensions(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # an extension's options too: may fail
        serve_from_args(args, args.store)
    except StateboxError as exc:
        print(f"Error: {redact_text(exc.message)}", file=sys.stderr)
        return exc.exit_code
    return 0
