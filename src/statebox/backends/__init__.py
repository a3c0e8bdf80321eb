"""Backends, opened by URL scheme. Each driver module is imported only when used."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..core.errors import ConfigurationError, quoted
from ..core.install import extra_hint
from .base import Backend

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .sealing.backend import SealedBackend, seal_backend
    from .sealing.keyring import generate_key, key_file_path
    from .sealing.rotate import ROTATED_BY, RotateReport, rotate

__all__ = [
    "ROTATED_BY",
    "Backend",
    "RotateReport",
    "SealedBackend",
    "generate_key",
    "key_file_path",
    "open_backend",
    "register_backend",
    "rotate",
    "seal_backend",
]

# The sealing layer's names, for the faces (which import no backend module but this
# one and the contract): imported when first asked for, not at every start-up.
_SEALING = {
    "SealedBackend": "statebox.backends.sealing.backend",
    "seal_backend": "statebox.backends.sealing.backend",
    "generate_key": "statebox.backends.sealing.keyring",
    "key_file_path": "statebox.backends.sealing.keyring",
    "rotate": "statebox.backends.sealing.rotate",
    "RotateReport": "statebox.backends.sealing.rotate",
    "ROTATED_BY": "statebox.backends.sealing.rotate",
}


def __getattr__(name: str) -> object:
    module = _SEALING.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    __import__(module)
    return getattr(sys.modules[module], name)


# scheme -> (module, class, pip extra that provides its driver or None)
_REGISTRY: dict[str, tuple[str, str, str | None]] = {
    "memory": ("statebox.backends.memory", "MemoryBackend", None),
    "sqlite": ("statebox.backends.sqlite", "SqliteBackend", None),
    "file": ("statebox.backends.file", "FileBackend", None),
    "postgresql": ("statebox.backends.postgres", "PostgresBackend", "postgres"),
    "postgres": ("statebox.backends.postgres", "PostgresBackend", "postgres"),
    "http": ("statebox.backends.http", "HttpBackend", None),  # stdlib http.client only
    "https": ("statebox.backends.http", "HttpBackend", None),
}
_FACTORIES: dict[str, Callable[[str], Backend]] = {}


def register_backend(scheme: str, factory: Callable[[str], Backend]) -> None:
    """Make ``scheme://`` URLs open with ``factory(url)`` (for third-party backends)."""
    _FACTORIES[scheme] = factory


def _scheme(url: str) -> str:
    # The default store is a sqlite:/// file: recognised without urllib.parse (which
    # imports ipaddress), a cost every command-line start-up would pay.
    if url.startswith("sqlite:///"):
        return "sqlite"  # exactly what urlsplit answers for such a URL
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).scheme.lower()
    except ValueError as exc:  # e.g. an unbalanced "[" in the host part
        from ..core.redaction import redact_text  # an error path: no import cost otherwise

        raise ConfigurationError(f"invalid store URL {quoted(redact_text(url))}: {exc}") from exc


def open_backend(url: str) -> Backend:
    """Open the backend a store URL names (``memory://``, ``sqlite:///…``, …), with the
    values of secret keyspaces sealed at rest (``sealing.seal_backend``: the policy and
    keys come from the environment; the remote store's server seals them itself)."""
    from .sealing.backend import seal_backend

    return seal_backend(_open(url))


def _open(url: str) -> Backend:
    scheme = _scheme(url)
    if scheme in _FACTORIES:
        return _FACTORIES[scheme](url)
    if scheme not in _REGISTRY:
        known = ", ".join(f"{s}://" for s in sorted({*_REGISTRY, *_FACTORIES}))
        from ..core.redaction import redact_url  # a mistyped scheme may still carry a password

        raise ConfigurationError(
            f"unsupported store URL {quoted(redact_url(url))}: known schemes are {known}"
        )
    module_name, class_name, extra = _REGISTRY[scheme]
    try:
        __import__(module_name)  # importlib.import_module, without importing importlib
    except ImportError as exc:
        if extra is None:
            raise
        raise ConfigurationError(
            f"the {scheme}:// store needs an optional driver ({exc.name} is missing): "
            f"run: {extra_hint(extra)}"
        ) from exc
    factory: Callable[[str], Backend] = getattr(sys.modules[module_name], class_name)
    return factory(url)
