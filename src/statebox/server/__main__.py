"""``python -m statebox.server [--store URL] [--host H] [--port P] [--tokens FILE] …``."""

from __future__ import annotations

from .main import main

raise SystemExit(main())
