"""Where the store is: an explicit URL, ``STATEBOX_STORE``, or the default SQLite file."""

from __future__ import annotations

import os
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["default_store_url", "resolve_store_url", "statebox_home"]


def statebox_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$STATEBOX_HOME``, else ``$XDG_DATA_HOME/statebox``, else ``~/.local/share/statebox``."""
    # Imported here: pathlib imports urllib.parse and ipaddress, a cost at every start-up
    # that the CLI (default_store_url) avoids.
    from pathlib import Path

    return Path(_home(environ))


def _home(environ: Mapping[str, str] | None) -> str:
    env = os.environ if environ is None else environ
    if env.get("STATEBOX_HOME"):
        return os.path.expanduser(env["STATEBOX_HOME"])
    data_home = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(os.path.expanduser(data_home), "statebox")


def default_store_url(environ: Mapping[str, str] | None = None) -> str:
    path = os.path.join(_home(environ), "state.db")
    # Made absolute as Path.absolute() did: joined to the working directory, ".." kept
    # (os.path.abspath would drop it, which changes the path across a symbolic link).
    if not os.path.isabs(path):
        path = os.path.join(os.getcwd(), path)
    return "sqlite:///" + path  # absolute path: four slashes in all


def resolve_store_url(url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The explicit URL if given, else ``STATEBOX_STORE``, else the default location."""
    env = os.environ if environ is None else environ
    if url:
        return url
    if env.get("STATEBOX_STORE"):
        return env["STATEBOX_STORE"]
    return default_store_url(env)
