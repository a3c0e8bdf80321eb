"""No web page can drive the server (etcd's CVE-2018-1098 and CVE-2018-1099).

A page the user happens to open can send requests to ``http://127.0.0.1:8787``: a POST
whose ``Content-Type`` is ``text/plain``, a form or multipart goes out without asking the
server first (a CORS "simple" request), and a page on a name the attacker re-points at
127.0.0.1 (DNS rebinding) is even same-origin with the server. Three checks, made on the
request head before anything is routed or read:

- ``Host`` must be a loopback name (``localhost``, ``*.localhost``), a literal IP address,
  or a name the operator listed (``--allow-host``): a rebinding page sends its own name.
  Literal addresses are always fine: a page served from an address is the server's own.
- ``Origin``, when present (browsers send it on every cross-origin request and on every
  non-GET one), must be the server's own (``scheme://`` + the ``Host`` sent) or one the
  operator listed (``--allow-origin``). Listed origins get CORS headers and their
  preflights answered (Starlette's ``CORSMiddleware``, inside this check).
- A body must not have one of the three types a page may send unasked, and a POST body
  must say it is JSON (``application/json`` or ``*+json``). PUT and DELETE from another
  origin always need a preflight, which an origin not listed never passes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from starlette.types import Scope

from ..core.errors import (
    MisdirectedRequestError,
    PermissionDeniedError,
    StateboxError,
    UnsupportedMediaTypeError,
    quoted,
)

__all__ = ["CORS_HEADERS", "CORS_METHODS", "BrowserGuard"]

#: The types a web page may send cross-origin without a preflight (the CORS "simple"
#: content types): never accepted on any body.
_SIMPLE_TYPES: Final = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: What an allowed origin's page may send (the preflight's answer).
CORS_METHODS: Final = ("GET", "HEAD", "PUT", "POST", "DELETE")
CORS_HEADERS: Final = (
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "x-statebox-dag",
    "x-statebox-run-id",
    "x-statebox-step",
    "x-statebox-attempt-id",
)


def _normal_origin(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


def _is_json_type(essence: str) -> bool:
    return essence == "application/json" or essence.endswith("+json")


class BrowserGuard:
    """The Host, Origin and Content-Type checks of one server's settings."""

    def __init__(self, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> None:
        hosts = {h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip()}
        self.any_host = "*" in hosts
        self.hosts = frozenset(hosts)
        self.origins = frozenset(_normal_origin(o) for o in allowed_origins if o.strip())
        # Verdicts by Host header as sent: a server sees a handful of them, and parsing
        # one costs more than the rest of the checks together.
        self._hosts_seen: dict[str, bool] = {}

    def check(self, scope: Scope) -> StateboxError | None:
        """The error to answer instead of serving the request, or ``None``."""
        host = origin = content_type = None
        has_body = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                has_body = has_body or value.strip() not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
        if host is not None and not self._host_verdict(host):
            return MisdirectedRequestError(
                f"this server does not answer to the name in the Host header ({quoted(host)}): "
                "use localhost or an IP address, or have the server started with "
                "--allow-host NAME"
            )
        if origin is not None and not self.origin_allowed(origin, host):
            return PermissionDeniedError(
                f"requests from the web origin {quoted(origin)} (the Origin header) are refused: "
                "a page may call this server only from an origin the server was started "
                "with (--allow-origin ORIGIN)"
            )
        method = scope["method"]
        if has_body and method in _BODY_METHODS:
            return _content_type_problem(method, content_type)
        return None

    def _host_verdict(self, host: str) -> bool:
        verdict = self._hosts_seen.get(host)
        if verdict is None:
            if len(self._hosts_seen) >= 1024:  # a client sending ever new names
                self._hosts_seen.clear()
            verdict = self._hosts_seen[host] = self.host_allowed(host)
        return verdict

    def host_allowed(self, host: str) -> bool:
        if self.any_host:
            return True
        try:
            parts = urlsplit("//" + host.strip())
            parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
        except ValueError:
            return False
        name = (parts.hostname or "").rstrip(".")
        if not name or "@" in parts.netloc:
            return False
        if name == "localhost" or name.endswith(".localhost"):
            return True  # browsers resolve these to loopback themselves (RFC 6761)
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        return name in self.hosts or parts.netloc.lower().rstrip(".") in self.hosts

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        normal = _normal_origin(origin)
        if normal in self.origins:
            return True
        # The server's own pages (/docs) send their own origin on POST and PUT.
        parts = urlsplit(normal)
        return (
            host is not None
            and parts.scheme in ("http", "https")
            and parts.netloc == host.strip().lower()
        )


def _content_type_problem(method: str, content_type: str | None) -> StateboxError | None:
    essence = (content_type or "").split(";")[0].strip().lower()
    if essence in _SIMPLE_TYPES:
        what = "JSON as application/json" + (
            ", or a binary value with its own type (e.g. application/octet-stream)"
            if method == "PUT"
            else ""
        )
        return UnsupportedMediaTypeError(
            f"Content-Type {quoted(content_type)} is refused on a {method} body: it is what any "
            f"web page may send unasked; send {what}"
        )
    if method == "POST" and not _is_json_type(essence):
        shown = (
            "no Content-Type" if content_type is None else f"Content-Type {quoted(content_type)}"
        )
        return UnsupportedMediaTypeError(
            'a POST body must be JSON, sent with "Content-Type: application/json" '
            f"(this one had {shown})"
        )
    return None
