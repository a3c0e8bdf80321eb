"""The server's settings (kept apart from the app so the CLI can read them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.values import DEFAULT_BINARY_LIMIT, DEFAULT_HISTORY_LIMIT, DEFAULT_JSON_LIMIT
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
)

if TYPE_CHECKING:  # an annotation only: reading the settings needs no token handling
    from .auth import TokenRegistry

__all__ = ["DEFAULT_HISTORY_LIMIT", "DEFAULT_MAX_BODY_BYTES", "ServerConfig"]


@dataclass(frozen=True)
class ServerConfig:
    #: ``None``: no authentication (only allowed on loopback, or with ``--insecure``).
    tokens: TokenRegistry | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: For test suites only: honour ``X-Statebox-Now`` and allow ``POST /v1/_test/reset``.
    test_mode: bool = False
    #: The longest a long poll (or one SSE wait) may block, in seconds.
    max_wait: float = DEFAULT_MAX_WAIT
    history_limit: int = DEFAULT_HISTORY_LIMIT
    json_limit: int = DEFAULT_JSON_LIMIT
    binary_limit: int = DEFAULT_BINARY_LIMIT
    #: Seconds between background purges of expired entries (0: never).
    purge_interval: float = 60.0
    #: Most operations in one ``/v1/txn`` or ``/v1/apply`` request.
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    #: ``Host`` names answered besides loopback names and literal IP addresses.
    allowed_hosts: tuple[str, ...] = ()
    #: Web origins (``scheme://host[:port]``) allowed to call the API; none by default.
    allowed_origins: tuple[str, ...] = ()
    #: Open watches (long polls and event streams) per principal.
    max_watches_per_token: int = DEFAULT_MAX_WATCHES_PER_TOKEN
    #: Connection limits, applied by the HTTP server (``serve``), not by the app.
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
