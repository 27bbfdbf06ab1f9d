"""The intake reply's read (`Store.get_work(history=False)`) goes on a lean
lane (store/client.py `execute`): a lane's HGETALL is the flat reply, redis-py's
connections (no lane free) and its cluster client make it a dict; the item is
the same either way."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from presence.center import load_center
from presence.store import NewItem, Store, new_work_id
from presence.store.client import Pool, execute, execute_many, open_redis, run_many


async def test_the_intake_read_is_the_same_on_a_lane_and_on_a_pooled_connection(
    redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await open_redis(redis_server)
    try:
        store = Store(client, "lean" + new_work_id())
        await store.sync_center(load_center(None))
        wid = new_work_id()
        [made] = await store.create_work_many([NewItem(wid, "support", "chat", 0, {"subject": "s"})])
        assert isinstance(made, tuple), made
        on_lane = await store.get_work(wid, history=False)
        pool = client.connection_pool
        assert isinstance(pool, Pool)
        monkeypatch.setattr(pool, "LANES", 0)
        monkeypatch.setattr(pool, "_idle_lanes", [])
        pooled = await store.get_work(wid, history=False)
        assert on_lane is not None and on_lane == pooled
        assert on_lane["subject"] == "s"
    finally:
        await client.aclose()


async def test_a_pipeline_on_a_lane_gives_each_reply_in_order_an_error_in_its_place(
    redis_server: str,
) -> None:
    """`execute_many` (FCALL + WAIT on one lane, store/scripts.py `_fcall_wait`):
    one write, the replies in order, an error reply as its exception where it
    came, and the lane usable after it."""
    client = await open_redis(redis_server)
    try:
        key = "presence:{lean" + new_work_id() + "}:x"
        replies = await execute_many(client, [("SET", key, "1"), ("WAIT", 0, 10)])
        assert replies == [b"OK", 0]
        replies = await execute_many(client, [("HGETALL", key), ("GET", key)])
        assert replies is not None
        assert isinstance(replies[0], ResponseError) and "WRONGTYPE" in str(replies[0])
        assert replies[1] == b"1"
        assert await execute(client, "GET", key) == b"1"
    finally:
        await client.aclose()


async def test_a_batch_of_reads_is_the_same_on_a_lane_on_pooled_connections_and_on_redis_py(
    redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_many` (the roll-up's item attributes, kpi/history.py): the same
    replies in order on a lane, with no lane free, and on a plain redis-py
    client; an error reply raised on each."""
    client = await open_redis(redis_server)
    plain = Redis.from_url(redis_server)
    try:
        key = "presence:{lean" + new_work_id() + "}:h"
        await execute(client, "HSET", key, "a", "1", "b", "2")
        reads = [("HMGET", key, "a", "x"), ("HMGET", key, "b")]
        bad = [("HMGET", key, "a"), ("GET", key)]
        on_lane = await run_many(client, reads)
        assert on_lane == [[b"1", None], [b"2"]]
        assert await run_many(plain, reads) == on_lane
        assert await run_many(client, []) == []
        for c in (client, plain):
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await run_many(c, bad)
        pool = client.connection_pool
        assert isinstance(pool, Pool)
        monkeypatch.setattr(pool, "LANES", 0)
        monkeypatch.setattr(pool, "_idle_lanes", [])
        assert await execute_many(client, reads) is None  # the pipeline's turn
        assert await run_many(client, reads) == on_lane
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await run_many(client, bad)
    finally:
        await client.aclose()
        await plain.aclose()
