"""The HTTP wire of `presence serve` (`http.wire.HttpWire`, a response in
one write: tests/unit/test_http_corked.py) on a real server: what HTTP/1.1
allows still works:
pipelined requests answered in order, ``Expect: 100-continue``, the
websocket upgrade on the same listener."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from presence.http.wire import HttpWire
from tests.harness import ServerProcess, agent, token

HEALTHZ = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:"))
    return head, await asyncio.wait_for(reader.readexactly(length), 10)


async def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(HEALTHZ + b"GET /nothing-here HTTP/1.1\r\nhost: x\r\n\r\n" + HEALTHZ)
        statuses = [(await _response(reader))[0].split(b" ")[1] for _ in range(3)]
        assert statuses == [b"200", b"404", b"200"]
    finally:
        writer.close()


async def test_expect_100_continue_gets_its_interim_reply_before_the_body(server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        body = b'{"queue": "support", "channel": "chat", "subject": "continue"}'
        auth = f"authorization: Bearer {token('service', 'crm', center=server.center_id)}\r\n".encode()
        writer.write(
            b"POST /api/v1/work HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + auth
            + b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        head, reply = await _response(reader)
        assert head.startswith(b"HTTP/1.1 201"), head + reply
    finally:
        writer.close()


async def test_a_websocket_upgrades_on_the_same_listener(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    assert alice.snapshot["agent"]["agent_id"] == "alice"
    await alice.close()


@contextlib.contextmanager
def _plain_server(keep_alive: float) -> Iterator[int]:
    """uvicorn with `HttpWire` and a `keep_alive` in seconds, serving 200s."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(
        app, http=HttpWire, loop="uvloop", timeout_keep_alive=keep_alive, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


async def test_keep_alive_closes_a_connection_idle_that_long_not_one_in_use() -> None:
    with _plain_server(keep_alive=0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            # a request every 0.3 s for 1.5 s: never idle 0.5 s, kept open
            for _ in range(5):
                writer.write(HEALTHZ)
                head, _ = await _response(reader)
                assert head.startswith(b"HTTP/1.1 200")
                await asyncio.sleep(0.3)
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # then idle: closed
            assert 0.1 <= time.monotonic() - started < 2.0
        finally:
            writer.close()
