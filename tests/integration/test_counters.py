"""The Prometheus counters, counted by the Lua scripts in the same call as
each event (`count` in _lib_core.lua), read back as `/metrics` reads them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from presence.center import parse_center
from presence.kpi import counters
from presence.store import Store, new_work_id


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def setup(redis_server: str) -> AsyncIterator[tuple[Store, Clock]]:
    client = Redis.from_url(redis_server)
    clock = Clock()
    store = Store(client, f"count{uuid.uuid4().hex[:8]}", clock)
    await store.sync_center(
        parse_center(
            {
                "queues": [{"name": "support"}, {"name": "auto", "auto_accept": True}],
                "agents": [
                    {"id": "ann", "queues": ["support", "auto"]},
                    {"id": "bob", "queues": ["support"]},
                ],
            }
        )
    )
    for aid in ("ann", "bob"):
        await store.conn_open(aid, f"c-{aid}", 3600)
    yield store, clock
    await client.aclose()


async def _offered_to(store: Store, aid: str) -> list[str]:
    offers, _ = await store.agent_items(aid)
    return [o["work_id"] for o in offers]


async def test_each_event_is_counted_once_with_its_latency(setup: tuple[Store, Clock]) -> None:
    store, clock = setup
    await store.set_status("ann", "Available", "", "ann")
    # w1: offered to ann, declined, offered to bob 5 s after intake, accepted, completed
    w1 = (await store.intake_work(new_work_id(), "support", "chat", 0, {}, {})).work_id
    await store.route(["support"])
    assert await _offered_to(store, "ann") == [w1]
    await store.set_status("bob", "Available", "", "bob")
    clock.t += 5
    await store.decline("ann", w1, "busy")
    await store.route(["support"])
    assert await _offered_to(store, "bob") == [w1]
    await store.accept("bob", w1)
    await store.complete("bob", w1, "done")
    # w2: offered to whoever has room, rescinded when they go on Break; then cancelled
    w2 = (await store.intake_work(new_work_id(), "support", "voice", 0, {}, {})).work_id
    await store.route(["support"])
    assert await _offered_to(store, "ann") == [w2] or await _offered_to(store, "bob") == [w2]
    holder = "ann" if await _offered_to(store, "ann") else "bob"
    await store.set_status(holder, "Break", "", holder)
    await store.cancel(w2, "hung up")
    # w3: auto-assigned to ann when routed, 100 s after it arrived
    await store.set_status("ann", "Available", "", "ann")
    w3 = (await store.intake_work(new_work_id(), "auto", "email", 0, {}, {})).work_id
    clock.t += 100
    await store.route(["auto"])
    assert (await store.agent_items("ann"))[1][0]["work_id"] == w3

    values, _ = await counters.read(store)
    assert {k: v for k, v in values.items() if not k.startswith("lat")} == {
        "created|support|chat": 1,
        "offered|support|chat": 2,
        "declined|support|chat": 1,
        "assigned|support|chat": 1,
        "completed|support|chat": 1,
        "created|support|voice": 1,
        "offered|support|voice": 1,
        "rescinded|support|voice": 1,
        "abandoned|support|voice": 1,
        "created|auto|email": 1,
        "assigned|auto|email": 1,
    }
    # an end is counted once, in `completed+|...` (which the checker sums too);
    # those counted before in `completed|...` add up with it
    assert await store.redis.hget(store.keys.metrics, "completed+|support|chat") == b"1"
    await store.redis.hincrby(store.keys.metrics, "completed|support|chat", 2)
    assert (await counters.read(store))[0]["completed|support|chat"] == 3
    await store.redis.hincrby(store.keys.metrics, "completed|support|chat", -2)
    # one assignment per queue: support after 5 s (bucket le=5), auto after 100 s (le=120)
    assert {k: v for k, v in values.items() if k.startswith("lat")} == {
        "lat|support|5": 1,
        "latsum|support": 5000,
        "lat|auto|120": 1,
        "latsum|auto": 100_000,
    }
