"""The statebox server: every operation over HTTP, for many workers (``statebox[server]``).

    from statebox.server import create_app, serve
    serve("sqlite:////var/lib/statebox/state.db", port=8787, tokens="tokens.yaml")

or ``statebox serve`` / ``python -m statebox.server``. The web framework is imported on
first use, so :mod:`statebox.wire.codec` (shared with the ``http://`` remote store) needs
nothing beyond statebox itself.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import ServerConfig
    from .main import serve

__all__ = ["ServerConfig", "create_app", "serve"]

_EXPORTS = {"ServerConfig": ".config", "create_app": ".app", "serve": ".main"}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = import_module(_EXPORTS[name], __name__)
    except ImportError as exc:
        from ..core.install import extra_hint

        raise ImportError(
            f"the statebox server needs its extra ({exc.name} is missing): "
            f"run: {extra_hint('server')}"
        ) from exc
    return getattr(module, name)
