"""Socket leases: a renewal that arrives after its socket closed must not
bring the socket back (the agent would be routable with no socket), while
a live socket whose lease was swept during a Redis outage is registered
again (conn_renew.lua and Hub._renew_leases)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from presence.center import Agent, Queue, parse_center
from presence.store import Store
from presence.store.keys import Keys
from tests.harness import agent, available
from tests.integration.conftest import ServerFactory


@pytest.fixture
async def store(redis_server: str) -> AsyncIterator[Store]:
    redis = Redis.from_url(redis_server)
    cid = f"lease{int(time.time() * 1e6)}"
    s = Store(redis, cid)
    await s.sync_center(parse_center({"center": {"id": cid}}))
    await s.put_queue(Queue("q"))
    await s.put_agent(Agent("a", queues=("q",)))
    yield s
    await redis.aclose()


async def test_late_renewal_does_not_revive_a_closed_socket(store: Store) -> None:
    await store.conn_open("a", "c1", 15)
    await store.set_status("a", "Available", "", "a")
    assert await store.redis.zscore(store.keys.queue_ready("q"), "a") is not None
    await store.conn_close("a", "c1", 30)
    gone = await store.renew_leases(["a|c1"], 15)
    assert gone == ["a|c1"]
    view = (await store.views(["a"]))[0]
    assert view["connected"] is False
    assert await store.redis.zscore(store.keys.queue_ready("q"), "a") is None
    assert await store.redis.zscore(store.keys.graces, "a") is not None
    assert await store.check() == []


async def test_renewal_pushes_back_a_live_lease(store: Store) -> None:
    await store.conn_open("a", "c1", 1)
    before = await store.redis.zscore(store.keys.leases, "a|c1")
    assert await store.renew_leases(["a|c1"], 60) == []
    after = await store.redis.zscore(store.keys.leases, "a|c1")
    assert before is not None and after is not None and after > before + 30_000


async def test_renewal_of_many_sockets_renews_only_the_live_ones(store: Store) -> None:
    # more members than one script call takes (500), closed ones among them:
    # each live lease is pushed back, each closed one reported and not revived
    members = [f"a|c{i}" for i in range(700)]
    for m in members:
        await store.conn_open("a", m[2:], 1)
    closed = members[::7]
    for m in closed:
        await store.conn_close("a", m[2:], 30)
    gone = await store.renew_leases(members, 60)
    assert gone == closed
    scores = await store.redis.zmscore(store.keys.leases, members)
    floor = store.now_ms() + 50_000
    for m, score in zip(members, scores, strict=True):
        if m in closed:
            assert score is None, m
        else:
            assert score is not None and score > floor, m


async def test_live_socket_whose_lease_was_swept_is_registered_again(server_factory: ServerFactory) -> None:
    # as after a Redis outage longer than the lease: the sweeper counted the
    # socket as gone, but it is open, so its hub registers it again
    server = server_factory(env={"PRESENCE_LEASE_SECONDS": "1.5"})
    alice = await agent(server, "alice")
    await available(alice)
    redis = Redis.from_url(server.redis_url)
    try:
        keys = Keys(server.center_id)
        members = [m.decode() for m in await redis.zrange(keys.leases, 0, -1) if m.startswith(b"alice|")]
        assert len(members) == 1
        await redis.zadd(keys.leases, {members[0]: 0})  # expired: the next sweep drops it
        gone = await alice.expect(lambda m: m.get("type") == "status" and m["connected"] is False)
        assert gone["status"] == "Available"
        back = await alice.expect(
            lambda m: m.get("type") == "status" and m["connected"] is True and m["ver"] > gone["ver"],
            timeout=5,
        )
        assert back["status"] == "Available"
        assert await redis.zscore(keys.graces, "alice") is None
        assert await redis.zscore(keys.queue_ready("support"), "alice") is not None
    finally:
        await redis.aclose()
