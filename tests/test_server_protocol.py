"""The server's HTTP protocol sends each response in one write (uvicorn makes two)."""

from __future__ import annotations

import asyncio

from statebox.server.protocol import _CoalescingTransport


class _Recorder:
    """The transport's side that matters here: what was written, and when it closed."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def write(self, data: bytes) -> None:
        self.events.append(bytes(data))

    def is_closing(self) -> bool:
        return "closed" in self.events

    def close(self) -> None:
        self.events.append("closed")

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


def test_writes_of_one_turn_go_out_as_one() -> None:
    async def scenario() -> list[object]:
        real = _Recorder()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert real.events == []  # nothing sent yet: the loop has not turned
        await asyncio.sleep(0)
        transport.write(b"next")
        transport.close()  # what is pending is sent before the connection closes
        assert transport.get_extra_info("peername") == "info peername"
        return real.events

    events = asyncio.run(scenario())
    assert events == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"next", "closed"]
