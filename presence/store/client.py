"""The Redis connection: one client per process, built for failing fast.

Every process (the server, ``presence check``, the load tests) connects
through `redis_client`, so a Redis outage looks the same everywhere: a
clear error within seconds, never a hang.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError


def redis_client(url: str) -> Redis:
    # Short timeouts and a bounded retry: a Redis outage must turn into a
    # clear error within seconds, never a hang (readyz, websocket errors).
    # A blocking pool: a burst of more concurrent calls than connections
    # (a reconnect storm, a flood of intake) waits briefly for a free
    # connection instead of failing at once with "Too many connections".
    # The asyncio `Retry` (not `redis.retry.Retry`, whose synchronous loop
    # never sees the awaited error): after a Redis restart every pooled
    # connection is stale, and each must reconnect and retry, not fail.
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=False,
        socket_timeout=3.0,
        socket_connect_timeout=2.0,
        # Retry only a connection that failed (stale after a restart, refused
        # while Redis comes back): the command did not reach Redis, except
        # if it crashed mid-command (RELIABILITY.md). Not a timeout: the
        # script may be running on a slow or paused Redis, and a second run
        # of a non-idempotent change (create, accept) would apply it twice.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
        health_check_interval=10,
        max_connections=256,
        timeout=5.0,
    )
    client = Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


async def wait_for_redis(redis: Redis, url: str, patience: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            await redis.ping()
            return
        except RedisError as exc:
            if loop.time() > deadline:
                raise RuntimeError(
                    f"Redis at REDIS_URL={url} did not answer for {patience:.0f}s: {exc}"
                ) from exc
            await asyncio.sleep(0.2)


async def warm(redis: Redis, connections: int) -> None:
    """Open `connections` pooled connections now, at start-up.

    In a reconnect storm the event loop is saturated by handshakes; a pool
    that must grow then opens its connections on that loop, and their
    connect timeouts fire before the loop gets back to them ("Timeout
    connecting to server": 1013 for the sockets waiting on them). Opened
    while the loop is idle, the storm's socket starts (at most
    `context.STARTS_AT_ONCE` at once) and the background tasks find them
    ready. Concurrent pings: each holds a connection of its own.
    """
    await asyncio.gather(*(redis.ping() for _ in range(connections)))
