"""The HTTP wire of `presence serve` (`http.wire.HttpWire`, a response in
one write: tests/unit/test_http_corked.py) on a real server: what HTTP/1.1
allows still works:
pipelined requests answered in order, ``Expect: 100-continue``, the
websocket upgrade on the same listener."""

from __future__ import annotations

import asyncio

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
