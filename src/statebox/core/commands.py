"""What the ``statebox`` command line hands the commands other faces add (the
``statebox.commands`` entry points: ``serve``, ``run``, ``validate``, ``runs``,
``schedule``): their ``register(subparsers, add_command)`` gets ``add_command``, the
function that adds a command with the common options. Here, so that no face imports
another for its type."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["AddCommand"]

#: ``add_command(subparsers, name, *, help, description, examples) -> parser``, the
#: common options (``--store``, ``--dag``, ``--run-id``, …) included.
AddCommand = Callable[..., argparse.ArgumentParser]
