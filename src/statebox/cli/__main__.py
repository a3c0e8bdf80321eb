"""``python -m statebox.cli`` — the same as the ``statebox`` console script."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
