"""`http.wire.Corked`: the writes of one loop turn leave as one, in order,
and nothing is held past the turn or a close."""

from __future__ import annotations

import asyncio
from typing import Any

from presence.http.wire import Corked


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


async def test_the_writes_of_one_turn_leave_as_one_write_at_its_end() -> None:
    raw = Transport()
    corked = Corked(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    corked.write(b"{}")
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    corked.write(b"next")
    await asyncio.sleep(0)
    assert raw.writes[1:] == [b"next"]


async def test_a_close_sends_what_is_held_first_and_a_closed_socket_gets_nothing() -> None:
    raw = Transport()
    corked = Corked(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"head")
    corked.write(b"body")
    corked.close()
    assert raw.writes == [b"headbody"] and raw.closed
    corked.write(b"late")
    await asyncio.sleep(0)
    assert raw.writes == [b"headbody"]


async def test_everything_else_is_the_transports() -> None:
    raw = Transport()
    corked = Corked(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    assert corked.get_extra_info("peername") == ("127.0.0.1", 1)
    assert not corked.is_closing()


class SocketTransport(Transport):
    """Enough of a TCP transport for uvicorn's protocol."""

    def get_extra_info(self, name: str) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        pass


async def _writes_of_one_response(protocol_class: type[Any]) -> list[bytes]:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    config = Config(app=app, lifespan="off", log_level="warning", access_log=False)
    config.load()
    raw = SocketTransport()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(raw)
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    for _ in range(10):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return raw.writes


async def test_a_response_is_one_write_where_uvicorn_makes_two() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from presence.http.wire import HttpWire

    assert len(await _writes_of_one_response(HttpToolsProtocol)) == 2
    (one,) = await _writes_of_one_response(HttpWire)
    assert one.startswith(b"HTTP/1.1 200 OK\r\n") and one.endswith(b"\r\n\r\n{}")
