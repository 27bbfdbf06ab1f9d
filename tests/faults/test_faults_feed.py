"""A center's event feed on a standalone Redis (`events.Feed` over its own
connection, `events._Direct`): messages in order, the silence check's PING,
a lost connection and a refused password surfacing as errors the hub's
listener acts on. Against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError

from presence.store.client import redis_client
from presence.store.events import Feed
from tests.faults.conftest import PrivateRedis

pytestmark = pytest.mark.timeout(60)

CHANNEL = "presence:{feedtest}:events"


@pytest.fixture
async def client(private_redis: PrivateRedis) -> AsyncIterator[Redis]:
    c = redis_client(private_redis.url)
    yield c
    await c.aclose()


async def test_messages_come_in_order_on_the_feeds_own_connection(client: Redis) -> None:
    feed = Feed(client, CHANNEL)
    await feed.open()
    try:
        assert feed._direct is not None and feed._pubsub is None
        for i in range(50):
            await client.spublish(CHANNEL, b"event %d" % i)
        assert [await feed.get() for _ in range(50)] == [b"event %d" % i for i in range(50)]
    finally:
        await feed.close()


async def test_a_message_that_comes_in_pieces_is_handed_over_whole(client: Redis) -> None:
    feed = Feed(client, CHANNEL)
    await feed.open()
    try:
        big = bytes(range(256)) * 4096  # 1 MiB: many reads of the socket
        got = asyncio.ensure_future(feed.get())
        await asyncio.sleep(0.05)  # the feed waits: the first piece wakes it
        await client.spublish(CHANNEL, big)
        await client.spublish(CHANNEL, b"small")
        assert await asyncio.wait_for(got, 5) == big
        assert await asyncio.wait_for(feed.get(), 5) == b"small"
    finally:
        await feed.close()


async def test_a_quiet_feed_pings_and_lives_on(client: Redis) -> None:
    feed = Feed(client, CHANNEL, ping_after=0.2, silent_limit=0.6)
    await feed.open()
    try:
        got = asyncio.ensure_future(feed.get())
        # three silent limits of nothing published: the PONGs keep it alive
        await asyncio.sleep(1.8)
        assert not got.done()
        await client.spublish(CHANNEL, b"late")
        assert await asyncio.wait_for(got, 5) == b"late"
    finally:
        await feed.close()


async def test_a_lost_connection_is_an_error_for_the_listener(client: Redis) -> None:
    feed = Feed(client, CHANNEL)
    await feed.open()
    try:
        assert await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        with pytest.raises(RedisError):
            await asyncio.wait_for(feed.get(), 5)
    finally:
        await feed.close()
    # the listener opens the feed again: it works
    again = Feed(client, CHANNEL)
    await again.open()
    try:
        await client.spublish(CHANNEL, b"after")
        assert await asyncio.wait_for(again.get(), 5) == b"after"
    finally:
        await again.close()


async def test_a_password_is_given_and_a_wrong_one_refused(private_redis: PrivateRedis) -> None:
    admin = redis_client(private_redis.url)
    await admin.config_set("requirepass", "s3cret")
    host = f"127.0.0.1:{private_redis.port}/0"
    good, bad = redis_client(f"redis://:s3cret@{host}"), redis_client(f"redis://:wrong@{host}")
    try:
        feed = Feed(good, CHANNEL)
        await feed.open()
        try:
            await good.spublish(CHANNEL, b"authed")
            assert await asyncio.wait_for(feed.get(), 5) == b"authed"
        finally:
            await feed.close()
        with pytest.raises(AuthenticationError):
            await Feed(bad, CHANNEL).open()
    finally:
        await good.config_set("requirepass", "")
        for c in (admin, good, bad):
            await c.aclose()
