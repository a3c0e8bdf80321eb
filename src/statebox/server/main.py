"""``serve()``: run the API with uvicorn, secure by default.

It binds 127.0.0.1 unless told otherwise, and refuses a non-loopback address without a
tokens file unless the operator says ``insecure=True`` (``--insecure``). The socket is
bound before uvicorn starts, so the line ``statebox server listening on URL`` is true
when it is printed (with ``port=0`` it names the port the system chose).
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from ..backends.base import Backend
from ..config import resolve_store_url
from ..errors import ConfigurationError, StateboxError
from .auth import load_tokens
from .config import ServerConfig
from .options import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_WAIT, DEFAULT_PORT, add_serve_options

__all__ = ["add_serve_options", "is_loopback", "main", "redact_url", "serve", "serve_from_args"]


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so it is not loopback


def redact_url(url: str) -> str:
    """The store URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    store: str | Backend | None = None,
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
) -> None:
    """Serve the statebox API over ``store`` (a URL — default as everywhere — or an open
    backend) until stopped."""
    try:
        import uvicorn

        from .app import create_app
        from .protocol import CoalescingHttpToolsProtocol
    except ImportError as exc:
        raise ConfigurationError(
            f"the statebox server needs its extra ({exc.name} is missing): "
            'run: pip install "statebox[server]"'
        ) from exc

    check_bind(host, has_tokens=tokens is not None, insecure=insecure, test_mode=test_mode)
    url = store.url if isinstance(store, Backend) else resolve_store_url(store)
    config = ServerConfig(
        tokens=load_tokens(tokens) if tokens is not None else None,
        max_body_bytes=max_body_bytes,
        test_mode=test_mode,
        max_wait=max_wait,
        purge_interval=0.0 if test_mode else 60.0,
    )
    app = create_app(store if isinstance(store, Backend) else url, config)
    sock = _bind(host, port)
    shown_host = f"[{host.strip('[]')}]" if ":" in host else host
    print(
        f"statebox server listening on http://{shown_host}:{sock.getsockname()[1]} "
        f"(store {redact_url(url)}{', test mode' if test_mode else ''})",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=CoalescingHttpToolsProtocol,
            log_level=log_level,
            access_log=access_log,
            # Longer than the remote store's idle limit (20 s, IDLE_LIMIT in
            # backends/http.py): the client always gives up an idle connection first, so
            # a request never meets a connection just closed.
            timeout_keep_alive=75,
            server_header=False,
            # No X-Forwarded-For rewriting: nothing here uses the client's address, and
            # it is one layer less on every request.
            proxy_headers=False,
        )
    )
    server.run(sockets=[sock])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m statebox.server", description="Serve the statebox HTTP API."
    )
    parser.add_argument("--store", help="store URL (default: $STATEBOX_STORE, else SQLite)")
    add_serve_options(parser)
    return parser


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
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        serve_from_args(args, args.store)
    except StateboxError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0
