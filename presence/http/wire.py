"""The HTTP wire: uvicorn's httptools protocol, one write per response.

uvicorn writes a response's head when the app sends ``http.response.start``
and its body when the app sends ``http.response.body``: two writes, so two
system calls and two TCP segments for every small JSON reply, and the
client woken twice (once for a head it cannot use yet). Here the writes an
HTTP connection makes in one turn of the event loop go out together at the
end of that turn (`Corked`): a response sent whole (every reply of the
API) is one write. Nothing waits longer than the turn: a streamed body or
a ``100 Continue`` still leaves before the app next waits for anything.

`presence serve` gives this class to uvicorn (``http=HttpWire``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class Corked:
    """A transport whose writes of one loop turn are joined into one.

    Everything else is the transport's; `close` sends what is held first.
    """

    __slots__ = ("_flushing", "_held", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._flushing = False

    def write(self, data: bytes) -> None:
        self._held.append(data)
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self.flush)

    def writelines(self, lines: list[bytes]) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        self._flushing = False
        held, self._held = self._held, []
        if held and not self.transport.is_closing():
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class HttpWire(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through `Corked`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # the protocol's own writes (a 400, a pipelined reply) and its
        # cycles' share the one queue, so they stay in order
        self.transport = Corked(transport, self.loop)  # type: ignore[assignment]

    def handle_websocket_upgrade(self) -> None:
        # the websocket protocol gets the socket itself: its frames are
        # written at once, as they are made (ws/wire.py)
        corked = self.transport
        if isinstance(corked, Corked):
            corked.flush()
            self.transport = corked.transport
        super().handle_websocket_upgrade()
