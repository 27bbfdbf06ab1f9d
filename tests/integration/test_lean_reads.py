"""The intake reply's read (`Store.get_work(history=False)`) goes on a lean
lane (store/client.py `execute`): a lane's HGETALL is the flat reply, redis-py's
connections (no lane free) and its cluster client make it a dict; the item is
the same either way."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from presence.center import load_center
from presence.store import NewItem, Store, new_work_id
from presence.store.client import Pool, execute, execute_many, open_redis


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
