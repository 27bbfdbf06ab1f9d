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
    """uvicorn's httptools protocol writing through `Corked`, with a lazy
    keep-alive timer.

    uvicorn arms a keep-alive timer when a response completes and cancels it
    when the next request arrives: a uvloop timer made and closed per
    request, which at a few hundred requests a second on an idle loop costs
    as much as the request's routing. Here the timer stays armed while the
    connection is used: it fires `timeout_keep_alive` after it was set,
    finds when the connection last fell idle, and closes it only if it has
    been idle that long since (else it is set again for the rest); a busy
    connection's timer is set again when its response completes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # the protocol's own writes (a 400, a pipelined reply) and its
        # cycles' share the one queue, so they stay in order
        self.transport = Corked(transport, self.loop)  # type: ignore[assignment]
        # loop time the connection last fell idle (None: a request is in hand)
        self._idle_since: float | None = None

    def _unset_keepalive_if_required(self) -> None:
        # busy again: the timer, if armed, finds it so when it fires
        self._idle_since = None

    def on_response_complete(self) -> None:
        # uvicorn's, but for the timer (armed only if it is not yet)
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        idle = self._idle_since
        if idle is None:
            return  # in use: armed again when its response completes
        left = idle + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self.timeout_keep_alive_handler)
        else:
            super().timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def handle_websocket_upgrade(self) -> None:
        # the websocket protocol gets the socket itself: its frames are
        # written at once, as they are made (ws/wire.py)
        corked = self.transport
        if isinstance(corked, Corked):
            corked.flush()
            self.transport = corked.transport
        super().handle_websocket_upgrade()
        # The parser's callbacks are this protocol's bound methods: a cycle,
        # which uvicorn breaks in `connection_lost`. After an upgrade the
        # socket is the websocket protocol's and this one never gets that
        # call, so every websocket's HTTP protocol, parser and request waited
        # for the collector's rare full pass (docs/RELIABILITY.md, "cyc16").
        # Nothing parses HTTP on this connection any more.
        self.parser = None  # type: ignore[assignment]
