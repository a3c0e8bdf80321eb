"""The ``postgresql://`` store URL: libpq's own URL plus statebox's few options.

``postgresql://user[:password]@host[:port]/db?schema=NAME&pool_max=10`` (``postgres://``
too). statebox takes its options out of the query string and hands everything else to
libpq unchanged, so ``sslmode``, ``connect_timeout``, ``application_name`` … work as
documented by PostgreSQL.

================  =========  ==========================================================
option            default    meaning
================  =========  ==========================================================
``schema``        ``public``  the schema holding statebox's tables (created on first use),
                             so several deployments can share one database
``pool_min``      ``1``      connections the pool keeps open
``pool_max``      ``10``     connections the pool may open
``pool_timeout``  ``30``     seconds to wait for a free pooled connection; then one try
                             on a connection of its own, else the store is unavailable
``pipeline``      ``auto``   send a write's statements without waiting for each answer
                             (libpq pipeline mode): ``on``, ``off``, or ``auto`` — on
                             unless the server is on this machine (loopback or a unix
                             socket), where round trips cost less than the extra work
``statement_      ``30``     seconds one statement may run (waiting for a row another
timeout``                    session holds locked, say) before it is cancelled and the
                             operation reported unavailable; ``0``: no limit
================  =========  ==========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from ..core.errors import ConfigurationError, quoted
from ..core.redaction import redact_url

__all__ = ["PgOptions", "parse_pg_url"]

SCHEMES = ("postgresql", "postgres")
# A plain identifier: it is used as a schema name and inside the LISTEN channel name,
# and PostgreSQL truncates identifiers longer than 63 bytes.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# libpq defaults that suit a store (a URL can override each): fail fast on an unreachable
# host, name ourselves in pg_stat_activity, notice a dead peer on an idle connection
# (the watch listener waits on one) within about a minute.
_LIBPQ_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "statebox",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


@dataclass(frozen=True)
class PgOptions:
    #: What libpq connects with: the URL minus statebox's options.
    conninfo: str
    #: The URL with its password masked, for messages.
    display: str
    schema: str
    pool_min: int
    pool_max: int
    pool_timeout: float
    pipeline: bool
    #: Seconds (0: none) before the server cancels a statement: a row locked by another
    #: session makes a write wait, never for ever.
    statement_timeout: float = 30.0


def _int_option(url: str, options: dict[str, str], name: str, default: int, low: int) -> int:
    text = options.pop(name, None)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(
            f"invalid ?{name}={text} in {quoted(url)}: not an integer"
        ) from None
    if value < low:
        raise ConfigurationError(
            f"invalid ?{name}={value} in {quoted(url)}: must be at least {low}"
        )
    return value


def _parse_query(query: str) -> dict[str, str]:
    """The query as libpq reads it: percent-decoded, a "+" being a plus, not a space."""
    options: dict[str, str] = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            options[unquote(name)] = unquote(value)
    return options


def _mask_password(url: str) -> str:
    """``user:***@`` and ``?password=***`` (any case, any encoding of the name)."""
    return redact_url(url)


def parse_pg_url(url: str) -> PgOptions:
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            f"invalid PostgreSQL store URL {quoted(_mask_password(url))}: use "
            "postgresql://user@host:port/database[?schema=NAME]"
        )
    display = _mask_password(url)
    options = _parse_query(parts.query)
    schema = options.pop("schema", "public").strip()
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"invalid schema {quoted(schema)} in {quoted(display)}: use letters, digits and _ "
            "(not starting with a digit), at most 63 characters"
        )
    pool_min = _int_option(display, options, "pool_min", 1, 0)
    pool_max = _int_option(display, options, "pool_max", max(10, pool_min), 1)
    if pool_max < pool_min:
        raise ConfigurationError(
            f"invalid pool sizes in {quoted(display)}: ?pool_max={pool_max} is below "
            f"?pool_min={pool_min}"
        )
    timeout_text = options.pop("pool_timeout", "30")
    try:
        pool_timeout = float(timeout_text)
    except ValueError:
        pool_timeout = -1.0
    if not pool_timeout > 0:
        raise ConfigurationError(
            f"invalid ?pool_timeout={timeout_text} in {quoted(display)}: must be a positive "
            "number "
            "of seconds"
        )
    statement_timeout = _seconds_option(display, options, "statement_timeout", "30")
    pipeline = _pipeline_option(display, options.pop("pipeline", "auto"), parts.netloc, options)
    for name, value in _LIBPQ_DEFAULTS.items():
        options.setdefault(name, value)
    # libpq reads postgresql:// and postgres:// alike; normalize for older libpq. Its URI
    # parser percent-decodes but does not read "+" as a space: quote, never quote_plus.
    query = urlencode(options, quote_via=quote)
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=query))
    return PgOptions(
        conninfo, display, schema, pool_min, pool_max, pool_timeout, pipeline, statement_timeout
    )


def _seconds_option(url: str, options: dict[str, str], name: str, default: str) -> float:
    """A number of seconds, 0 or more (0: no limit)."""
    text = options.pop(name, default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e9:  # also refuses nan and inf
        raise ConfigurationError(
            f"invalid {name}={quoted(text)} in {quoted(url)}: must be a number of seconds "
            "(0 for no limit)"
        )
    return value


_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "[::1]"}


def _pipeline_option(url: str, value: str, netloc: str, options: dict[str, str]) -> bool:
    if value in ("on", "off"):
        return value == "on"
    if value != "auto":
        raise ConfigurationError(f"invalid ?pipeline={value} in {quoted(url)}: use on, off or auto")
    # Hosts as libpq sees them: a host= parameter wins over the URL's; "h1:5432,h2" lists
    # several; a path is a unix-socket directory; none at all is the default socket.
    hosts = options.get("host", netloc.rpartition("@")[2])
    names = [h.strip() for h in hosts.split(",")]
    return not all(_is_local(name) for name in names)


def _is_local(host: str) -> bool:
    if host.startswith("/"):
        return True
    if host.startswith("["):  # [::1]:5432
        host = host.partition("]")[0] + "]"
    elif host.count(":") == 1:  # name:5432
        host = host.partition(":")[0]
    return host in _LOCAL_HOSTS or host.startswith("127.")
