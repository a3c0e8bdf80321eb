"""The server's settings (kept apart from the app so the CLI can read them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..values import DEFAULT_BINARY_LIMIT, DEFAULT_JSON_LIMIT
from .auth import TokenRegistry

__all__ = ["DEFAULT_HISTORY_LIMIT", "DEFAULT_MAX_BODY_BYTES", "ServerConfig"]

#: Room for one binary value of the default 32 MiB limit, base64-encoded in a JSON body.
DEFAULT_MAX_BODY_BYTES: Final = 48 * 1024 * 1024
#: As the engine's (``statebox.store.DEFAULT_HISTORY_LIMIT``), without importing it.
DEFAULT_HISTORY_LIMIT: Final = 10


@dataclass(frozen=True)
class ServerConfig:
    #: ``None``: no authentication (only allowed on loopback, or with ``--insecure``).
    tokens: TokenRegistry | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: For test suites only: honour ``X-Statebox-Now`` and allow ``POST /v1/_test/reset``.
    test_mode: bool = False
    #: The longest a long poll (or one SSE wait) may block, in seconds.
    max_wait: float = 60.0
    history_limit: int = DEFAULT_HISTORY_LIMIT
    json_limit: int = DEFAULT_JSON_LIMIT
    binary_limit: int = DEFAULT_BINARY_LIMIT
    #: Seconds between background purges of expired entries (0: never).
    purge_interval: float = 60.0
