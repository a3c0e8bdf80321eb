"""Where the store is: an explicit URL, ``STATEBOX_STORE``, or the default SQLite file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["default_store_url", "resolve_store_url", "statebox_home"]


def statebox_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$STATEBOX_HOME``, else ``$XDG_DATA_HOME/statebox``, else ``~/.local/share/statebox``."""
    # Imported here: a command given its store (STATEBOX_STORE, --store) never needs it,
    # and pathlib imports urllib.parse and ipaddress, a cost at every start-up.
    from pathlib import Path

    env = os.environ if environ is None else environ
    if env.get("STATEBOX_HOME"):
        return Path(env["STATEBOX_HOME"]).expanduser()
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "statebox"


def default_store_url(environ: Mapping[str, str] | None = None) -> str:
    path = (statebox_home(environ) / "state.db").absolute()
    return "sqlite:///" + str(path)  # absolute path: four slashes in all


def resolve_store_url(url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The explicit URL if given, else ``STATEBOX_STORE``, else the default location."""
    env = os.environ if environ is None else environ
    if url:
        return url
    if env.get("STATEBOX_STORE"):
        return env["STATEBOX_STORE"]
    return default_store_url(env)
