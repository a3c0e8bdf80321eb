"""uvicorn's HTTP protocol, with each response sent in one write.

uvicorn writes a response's head and its body with two ``transport.write`` calls, and
uvloop sends each at once: two system calls and two TCP segments for every answer, the
client woken twice. On loopback that was a third of the server's CPU time per request.
Here the writes a response makes within one turn of the event loop are joined and sent
together at the end of that turn — the same bytes, one send.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol"]


class _CoalescingTransport:
    """Holds what is written until the loop's next turn, then writes it at once."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: bytearray | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = bytearray(data)
            self._loop.call_soon(self.flush)
        else:
            self._pending += data

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending)

    def close(self) -> None:
        self.flush()  # what was written goes out before the connection closes
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Flow control keeps the real transport; the request cycles write through this.
        self.transport = _CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
