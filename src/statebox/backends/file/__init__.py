"""``file:///absolute/dir`` — persistent state in Dagu's on-disk layout.

Records at ``<dir>/v1/<scope>/<hex(namespace)>/<hex(key)>.json`` are Dagu's own: Dagu
reads what statebox writes and statebox reads what Dagu writes. ``file://`` alone means
``$DAGU_DAG_STATE_DIR``. See ``docs/file-backend.md`` for the layout, the locking and
crash rules, and what listing costs.
"""

from __future__ import annotations

from ._layout import FileOptions, parse_file_url
from .backend import FileBackend

__all__ = ["FileBackend", "FileOptions", "parse_file_url"]
