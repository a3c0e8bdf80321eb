"""Passwords out of what is printed: store URLs and messages, for logs and start-up lines.

A store URL can carry a secret in several forms, all of which libpq reads:
``postgresql://user:pw@host/db``, ``postgresql://host/db?password=pw`` (any case, its
name percent-encoded or not, ``sslpassword=`` too), and, inside a driver's message, the
conninfo form ``host=h password=pw`` or ``password='p w'``. Each is replaced by ``***``.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["MASK", "redact_text", "redact_url"]

MASK: Final = "***"
#: Parameter names (lower-cased, percent-decoded) whose values are secrets.
_SECRET_WORDS: Final = ("pass", "secret", "token")

# scheme://user:password@ — the password runs to the last "@" before any blank or quote.
_USERINFO: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:'\"]*):[^\s'\"]*@")
# name=value, name = 'quoted value', as in query strings and libpq conninfo strings.
_PAIR: Final = re.compile(r"([\w%.-]+)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'\"]*)")


def _is_secret_name(name: str) -> bool:
    lowered = unquote(name).lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _mask_pair(match: re.Match[str]) -> str:
    name, equals, value = match.groups()
    if not value or not _is_secret_name(name):
        return match.group(0)
    return f"{name}{equals}{MASK}"


def redact_text(text: str) -> str:
    """``text`` (a message, a log line, a conninfo string) with every password masked."""
    if "=" not in text and "@" not in text:
        return text  # the common case: nothing that could hold one
    return _PAIR.sub(_mask_pair, _USERINFO.sub(rf"\1:{MASK}@", text))


def redact_url(url: str) -> str:
    """A store URL without its passwords (``user:***@``, ``?password=***``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL one can split: mask what looks like a secret
        return redact_text(url)
    masked = parts
    if password is not None:
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        host = parts.netloc.rpartition("@")[2]
        masked = masked._replace(netloc=f"{user}:{MASK}@{host}")
    if parts.query:
        pairs = []
        for pair in parts.query.split("&"):
            name, equals, value = pair.partition("=")
            pairs.append(f"{name}={MASK}" if equals and value and _is_secret_name(name) else pair)
        masked = masked._replace(query="&".join(pairs))
    # Rebuilt only when something was masked: urlunsplit drops an empty "//" authority.
    return url if masked == parts else urlunsplit(masked)
