"""A closed socket's server side is freed when it closes, not by the
collector's rare full passes.

A server's collector runs its full pass seldom (app.GC_THRESHOLDS, and a
full pass waits for a quarter more long-lived objects): anything of a
closed socket left in a reference cycle waits for one. In the soak, ~30
reconnections a minute grew the server's RSS ~0.6 MB a minute that way:
first the wire and its scope (docs/RELIABILITY.md, "conn16"), then the
websockets protocol and its parser, and the HTTP protocol a websocket was
upgraded from ("cyc16"). The server runs in this process (in_process), so
its objects can be counted here, with the collector off.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest
from websockets.server import ServerProtocol

from presence.http.wire import HttpWire
from presence.ws.wire import Wire
from tests.harness import ServerProcess, WsClient, agent, supervisor

pytestmark = [pytest.mark.timeout(60), pytest.mark.in_process]

SERVER_SIDE = (Wire, ServerProtocol, HttpWire)


def _counts() -> dict[type, int]:
    found = dict.fromkeys(SERVER_SIDE, 0)
    for o in gc.get_objects():
        if type(o) in found:
            found[type(o)] += 1
    return found


@contextmanager
def _collector_off() -> Iterator[dict[type, int]]:
    """What was left of the server side, by class, once the block ends."""
    gc.collect()
    gc.disable()
    left: dict[type, int] = {}
    try:
        before = _counts()
        yield left
        after = _counts()
        left.update({cls: after[cls] - before[cls] for cls in SERVER_SIDE})
    finally:
        gc.enable()


async def _abort(c: WsClient) -> None:
    # no closing handshake: the client's TCP connection is reset
    c.conn.transport.abort()


async def _churn(server: ServerProcess, end: Callable[[WsClient], Awaitable[None]]) -> None:
    for i in range(20):
        c = await (agent(server, "alice") if i % 2 else supervisor(server))
        await end(c)
    await asyncio.sleep(0.5)


@pytest.mark.parametrize("end", [WsClient.close, _abort], ids=["closed", "aborted"])
async def test_ended_sockets_server_side_is_freed_without_the_collector(
    server: ServerProcess, end: Callable[[WsClient], Awaitable[None]]
) -> None:
    warm = await agent(server, "alice")
    await warm.close()
    await asyncio.sleep(0.3)
    with _collector_off() as left:
        await _churn(server, end)
    # 20 sockets opened and ended: each one's wire, websockets protocol and
    # the HTTP protocol it was upgraded from freed as it ended (before the
    # fixes, all 20 of each waited for a full collection)
    assert all(n <= 1 for n in left.values()), left


async def test_closed_http_connections_are_freed_without_the_collector(server: ServerProcess) -> None:
    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()

    await one()
    await asyncio.sleep(0.3)
    with _collector_off() as left:
        for _ in range(20):
            await one()
        await asyncio.sleep(0.5)
    assert left[HttpWire] <= 1, left
