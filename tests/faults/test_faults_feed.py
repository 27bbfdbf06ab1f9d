"""A center's event feed on a standalone Redis (`events.Feed` over its own
connection, `events._Direct`): messages in order, the silence check's PING,
a lost connection and a refused password surfacing as errors the hub's
listener acts on. Against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError

from presence.store.client import redis_client
from presence.store.events import Feed
from tests.faults.conftest import PrivateRedis

pytestmark = pytest.mark.timeout(60)

CHANNEL = "presence:{feedtest}:events"


@asynccontextmanager
async def opened(redis: Redis, channel: str, **kw: float) -> AsyncIterator[Feed]:
    """A `Feed` opened, and closed after however the block ends."""
    feed = Feed(redis, channel, **kw)
    await feed.open()
    try:
        yield feed
    finally:
        await feed.close()


@pytest.fixture
async def client(private_redis: PrivateRedis) -> AsyncIterator[Redis]:
    c = redis_client(private_redis.url)
    yield c
    await c.aclose()


async def test_messages_come_in_order_on_the_feeds_own_connection(client: Redis) -> None:
    async with opened(client, CHANNEL) as feed:
        assert feed._direct is not None and feed._pubsub is None
        for i in range(50):
            await client.spublish(CHANNEL, b"event %d" % i)
        assert [await feed.get() for _ in range(50)] == [b"event %d" % i for i in range(50)]


async def test_a_message_that_comes_in_pieces_is_handed_over_whole(client: Redis) -> None:
    async with opened(client, CHANNEL) as feed:
        big = bytes(range(256)) * 4096  # 1 MiB: many reads of the socket
        got = asyncio.ensure_future(feed.get())
        await asyncio.sleep(0.05)  # the feed waits: the first piece wakes it
        await client.spublish(CHANNEL, big)
        await client.spublish(CHANNEL, b"small")
        assert await asyncio.wait_for(got, 5) == big
        assert await asyncio.wait_for(feed.get(), 5) == b"small"


async def test_a_quiet_feed_pings_and_lives_on(client: Redis) -> None:
    async with opened(client, CHANNEL, ping_after=0.2, silent_limit=0.6) as feed:
        got = asyncio.ensure_future(feed.get())
        # three silent limits of nothing published: the PONGs keep it alive
        await asyncio.sleep(1.8)
        assert not got.done()
        await client.spublish(CHANNEL, b"late")
        assert await asyncio.wait_for(got, 5) == b"late"


async def test_a_lost_connection_is_an_error_for_the_listener(client: Redis) -> None:
    async with opened(client, CHANNEL) as feed:
        assert await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        with pytest.raises(RedisError):
            await asyncio.wait_for(feed.get(), 5)
    # the listener opens the feed again: it works
    async with opened(client, CHANNEL) as again:
        await client.spublish(CHANNEL, b"after")
        assert await asyncio.wait_for(again.get(), 5) == b"after"


async def test_a_password_is_given_and_a_wrong_one_refused(private_redis: PrivateRedis) -> None:
    admin = redis_client(private_redis.url)
    await admin.config_set("requirepass", "s3cret")
    host = f"127.0.0.1:{private_redis.port}/0"
    good, bad = redis_client(f"redis://:s3cret@{host}"), redis_client(f"redis://:wrong@{host}")
    try:
        async with opened(good, CHANNEL) as feed:
            await good.spublish(CHANNEL, b"authed")
            assert await asyncio.wait_for(feed.get(), 5) == b"authed"
        with pytest.raises(AuthenticationError):
            await Feed(bad, CHANNEL).open()
    finally:
        await good.config_set("requirepass", "")
        for c in (admin, good, bad):
            await c.aclose()
