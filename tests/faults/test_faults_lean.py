"""The lean command path of the store's pool (`client.Pool.execute`, every
script call of the hot path): it retries a call whose connection broke, as
redis-py does, never one that timed out, and never reuses a connection a
call left mid-reply. Against a real Redis, through a TCP proxy that breaks
or withholds a reply once armed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

import pytest
import uvloop
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from presence.store.client import Pool, execute, redis_client
from tests.faults.conftest import PrivateRedis
from tests.faults.proxy import Meddler

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def _through(private_redis: PrivateRedis, mode: str, timeout: float = 3.0):  # type: ignore[no-untyped-def]
    proxy = Meddler(private_redis.port, b"INCR", mode)
    await proxy.start()
    client = redis_client(f"redis://127.0.0.1:{proxy.port}/0")
    assert isinstance(client.connection_pool, Pool)
    client.connection_pool.connection_kwargs["socket_timeout"] = timeout
    direct = Redis.from_url(private_redis.url)
    try:
        yield proxy, client, direct
    finally:
        await client.aclose()
        await direct.aclose()
        await proxy.stop()


async def test_a_call_whose_connection_broke_is_retried_on_a_fresh_one(private_redis: PrivateRedis) -> None:
    async with _through(private_redis, "drop") as (proxy, client, direct):
        assert await execute(client, "INCR", "n") == 1
        proxy.armed = True
        # the INCR ran, its reply was lost with the connection: retried once,
        # and run again (why every script that writes carries a retry key)
        assert await execute(client, "INCR", "n") == 3
        assert proxy.seen == 3
        assert int(await direct.get("n")) == 3


async def test_a_call_that_timed_out_is_not_retried(private_redis: PrivateRedis) -> None:
    async with _through(private_redis, "hold", timeout=0.5) as (proxy, client, direct):
        assert await execute(client, "INCR", "n") == 1
        proxy.armed = True
        with pytest.raises(RedisTimeoutError):
            await execute(client, "INCR", "n")
        # sent once, applied once: a timeout is never retried
        assert proxy.seen == 2
        assert int(await direct.get("n")) == 2
        # the lane that timed out was closed (its reply may still come): the
        # next call goes on a fresh connection and gets its own answer
        assert await execute(client, "INCR", "n") == 3
        assert proxy.seen == 3


async def test_a_cancelled_call_leaves_no_reply_behind(private_redis: PrivateRedis) -> None:
    async with _through(private_redis, "hold") as (proxy, client, _):
        assert await execute(client, "INCR", "n") == 1
        proxy.armed = True
        call = asyncio.ensure_future(execute(client, "INCR", "n"))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await execute(client, "INCR", "n") == 3


async def test_an_error_reply_raises_and_the_lane_stays_usable(private_redis: PrivateRedis) -> None:
    async with _through(private_redis, "drop") as (_, client, _direct):
        await execute(client, "SET", "s", "text")
        with pytest.raises(ResponseError):
            await execute(client, "INCR", "s")
        assert await execute(client, "GET", "s") == b"text"


async def test_calls_past_the_lanes_wait_for_the_pool_and_all_close(private_redis: PrivateRedis) -> None:
    client = redis_client(private_redis.url)
    pool = client.connection_pool
    assert isinstance(pool, Pool)
    pool.LANES = 2
    try:
        replies = await asyncio.gather(*(execute(client, "INCR", "c") for _ in range(20)))
        assert sorted(replies) == list(range(1, 21))
        assert len(pool._lanes) == 2
    finally:
        await client.aclose()
    assert not any(conn.is_connected for conn in pool._lanes)


class _Resetter:
    """A TCP proxy in front of Redis whose `reset` breaks every client
    connection with a RST (SO_LINGER 0), as a peer host's crash or a
    firewall's reject does: uvloop then closes the client's transport
    underneath redis-py, which still counts the connection as open."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._clients: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def reset(self) -> None:
        for writer in self._clients:
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.transport.abort()
        self._clients.clear()

    async def stop(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.append(writer)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                with contextlib.suppress(OSError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
            finally:
                dst.close()

        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def test_a_call_on_a_connection_uvloop_closed_is_retried_on_a_fresh_one(private_redis: PrivateRedis) -> None:
    # uvloop, as `presence serve` runs: a reset connection's transport is
    # closed at once, and a write to it raises RuntimeError, not OSError
    async def scenario() -> None:
        proxy = _Resetter(private_redis.port)
        await proxy.start()
        client = redis_client(f"redis://127.0.0.1:{proxy.port}/0")
        try:
            assert await execute(client, "INCR", "n") == 1
            proxy.reset()
            await asyncio.sleep(0.2)  # the RST reaches the idle lane
            # a lost connection before the command left: retried on a new one
            assert await execute(client, "INCR", "n") == 2
        finally:
            await client.aclose()
            await proxy.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


async def test_a_lane_is_on_the_urls_database(private_redis: PrivateRedis) -> None:
    client = redis_client(f"redis://127.0.0.1:{private_redis.port}/5")
    other = Redis.from_url(f"redis://127.0.0.1:{private_redis.port}/0")
    mine = Redis.from_url(f"redis://127.0.0.1:{private_redis.port}/5")
    try:
        await execute(client, "SET", "k", "v")
        assert await mine.get("k") == b"v"
        assert await other.get("k") is None
    finally:
        await client.aclose()
        await other.aclose()
        await mine.aclose()


async def test_only_the_call_whose_time_is_up_fails(private_redis: PrivateRedis) -> None:
    # one timer keeps every call's deadline: a call answered in time, made
    # after the one held back, is not failed with it, nor held past its own
    async with _through(private_redis, "hold", timeout=0.5) as (proxy, client, _):
        assert await execute(client, "INCR", "n") == 1
        proxy.armed = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        slow = asyncio.ensure_future(execute(client, "INCR", "n"))
        await asyncio.sleep(0.2)
        assert await execute(client, "GET", "n") == b"2"  # on another lane
        with pytest.raises(RedisTimeoutError):
            await slow
        assert 0.45 <= loop.time() - started < 1.5
        assert await execute(client, "GET", "n") == b"2"


async def test_a_lane_whose_auth_gets_no_answer_times_out_as_redis_does() -> None:
    # a Redis that takes the connection and answers nothing (paused, or its
    # host): the AUTH of a new lane fails with redis-py's TimeoutError, the
    # one a caller catching RedisError sees, not the builtin one
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = redis_client(f"redis://:s3cret@127.0.0.1:{port}/0")
    assert isinstance(client.connection_pool, Pool)
    client.connection_pool.connection_kwargs["socket_timeout"] = 0.3
    try:
        with pytest.raises(RedisTimeoutError):
            await execute(client, "PING")
    finally:
        await client.aclose()
        server.close()


async def test_a_command_asks_for_the_running_loop_once(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # on Python 3.11 each asyncio.get_running_loop() is a getpid system call
    client = redis_client(private_redis.url)
    try:
        await execute(client, "PING")  # the lane opened, its PING due later
        asked = 0
        running = asyncio.get_running_loop

        def counted() -> asyncio.AbstractEventLoop:
            nonlocal asked
            asked += 1
            return running()

        monkeypatch.setattr(asyncio, "get_running_loop", counted)
        for _ in range(10):
            await execute(client, "INCR", "n")
        monkeypatch.undo()
        assert asked == 10
    finally:
        await client.aclose()
