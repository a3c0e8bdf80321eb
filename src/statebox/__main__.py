"""``python -m statebox`` — the same as the ``statebox`` console script (and
``python -m statebox.cli``): for an environment whose scripts directory is not on PATH."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
