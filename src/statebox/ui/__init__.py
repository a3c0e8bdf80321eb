"""The web page of ``statebox serve`` (issue #18): browse keyspaces, read values and their
history as diffs, edit safely, watch runs and leases — at ``/ui``.

A face that only serves files: :mod:`.routes` answers ``index.html`` and the page's
assets (``assets/``: plain ES modules and one stylesheet, no build step, no CDN), each
with a strict Content-Security-Policy. Every piece of data comes from the browser
calling the server's own HTTP API with the user's token; this package reads no state.
It is mounted through the ``statebox.routers`` entry point (``ui``), so the server
never imports it.
"""

from __future__ import annotations

__all__: list[str] = []
