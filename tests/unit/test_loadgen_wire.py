"""The load generators' raw clients (loadtests/common.py): a request on a
connection the server has closed fails at once instead of waiting for an
answer that never comes, and a websocket whose handshake gets no answer
leaves no socket open; a stack leaves no files behind; the benchmark's
producer replaces a connection it lost."""

from __future__ import annotations

import asyncio

import pytest

from loadtests.bench_assign import produce
from loadtests.common import RawHttp, RawWs, Stack


async def test_a_request_on_a_connection_the_server_closed_fails_at_once() -> None:
    async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(closes, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await RawHttp.connect("127.0.0.1", port)
        for _ in range(100):
            if conn.closed:
                break
            await asyncio.sleep(0.01)
        assert conn.closed
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(conn.request("GET", "/"), 1.0)
    finally:
        server.close()


async def test_a_handshake_with_no_answer_leaves_no_socket_open() -> None:
    accepted: list[asyncio.StreamReader] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(reader)
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError):
            await RawWs.connect("127.0.0.1", port, "/ws/agent", lambda m: None, timeout=0.2)
        for _ in range(100):
            if accepted and accepted[0].at_eof():
                break
            await asyncio.sleep(0.01)
        assert accepted and accepted[0].at_eof()  # the client closed its end
    finally:
        server.close()


def test_a_stack_stopped_leaves_no_files_behind() -> None:
    # given a server and a Redis, it makes only its files (the center's): removed at stop
    stack = Stack(url="http://127.0.0.1:9", redis_url="redis://127.0.0.1:9/0").start()
    assert stack.tmp is not None and stack.tmp.exists()
    tmp = stack.tmp
    stack.stop()
    assert not tmp.exists()


async def test_the_producer_replaces_a_connection_lost_mid_request() -> None:
    # a server that drops every connection with a request unanswered: each
    # lost connection is replaced and the producer keeps its rate, rather
    # than losing the pool one connection per error
    async def drops(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(drops, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        st = await produce("127.0.0.1", port, "t", rate=40, duration=0.5, conns=1, batch=1, subject="s")
    finally:
        server.close()
    assert st["sent"] > 5, st
    assert st["err"] == st["sent"]
    assert len(st["errors"]) <= 10
