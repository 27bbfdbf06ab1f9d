"""What REDIS_URL names: a standalone Redis or any node of a cluster
(`open_redis` and PRESENCE_REDIS_MODE), and what the store needs of a
cluster: its function library on every primary, again on a primary that
lost it, and one center's calls all on the shard that holds its slot."""

from __future__ import annotations

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from presence.center import load_center
from presence.store import NewItem, Store, new_work_id
from presence.store.client import open_redis, shard_of
from presence.store.scripts import library
from tests.cluster import LocalCluster

pytestmark = [pytest.mark.timeout(60), pytest.mark.cluster]


async def test_auto_finds_a_standalone_redis(redis_server: str) -> None:
    client = await open_redis(redis_server)
    try:
        assert type(client) is Redis
    finally:
        await client.aclose()


@pytest.mark.parametrize("node", [0, 3, 5])
async def test_auto_finds_a_cluster_from_any_node(redis_cluster: LocalCluster, node: int) -> None:
    """Any node will do, a replica included: the client reads the slots from it."""
    client = await open_redis(redis_cluster.nodes[node].url)
    try:
        assert isinstance(client, RedisCluster)
        assert len(client.get_primaries()) == 3
        assert await client.set("presence:{x}:probe", "1")
    finally:
        await client.aclose()


async def test_a_mode_that_does_not_match_is_refused_naming_the_variable(
    redis_server: str, redis_cluster: LocalCluster
) -> None:
    with pytest.raises(RuntimeError, match=r"PRESENCE_REDIS_MODE=standalone.*cluster_enabled:1"):
        await open_redis(redis_cluster.url, "standalone")
    with pytest.raises(RuntimeError, match=r"PRESENCE_REDIS_MODE=cluster.*cluster_enabled:0"):
        await open_redis(redis_server, "cluster")
    client = await open_redis(redis_cluster.url, "cluster")
    await client.aclose()


def libraries(c: redis.Redis) -> set[str]:
    return {dict(zip(lib[::2], lib[1::2], strict=True))["library_name"] for lib in c.function_list()}


async def _routed(store: Store) -> None:
    await store.sync_center(load_center(None))
    [made] = await store.create_work_many([NewItem(new_work_id(), "support", "chat", 0, {"subject": "s"})])
    assert isinstance(made, tuple), made
    assert await store.check() == []


async def test_the_library_is_on_every_primary_and_reloaded_on_a_new_one(redis_cluster: LocalCluster) -> None:
    redis_cluster.wait_ok()
    client = await open_redis(redis_cluster.url)
    name = library()[0].split("\n", 1)[0].split("name=")[1]
    try:
        store = Store(client, "lib" + new_work_id())
        await _routed(store)
        for primary in redis_cluster.primaries():
            with primary.client() as c:
                assert name in libraries(c), primary.port
        # the center's primary loses its functions (as a node given the slot
        # would have none): the next call loads them there and runs once
        owner = redis_cluster.owner(store.keys.prefix)
        with owner.client() as c:
            c.function_flush()
            created_before = c.zcard(store.keys.work_open)
        await store.create_work_many([NewItem(new_work_id(), "support", "chat", 0, {"subject": "again"})])
        with owner.client() as c:
            assert name in libraries(c)
            assert c.zcard(store.keys.work_open) == created_before + 1
        assert await store.check() == []
    finally:
        await client.aclose()


async def test_centers_spread_over_the_shards(redis_cluster: LocalCluster) -> None:
    """Every key of a center is in its one slot, so centers land on
    different primaries and each works on its own."""
    client = await open_redis(redis_cluster.url)
    try:
        shards = {}
        for i in range(12):
            store = Store(client, f"spread{i}")
            await _routed(store)
            node = shard_of(client, store.keys.prefix)
            assert node is not None
            shards[store.keys.center] = node.name
            with redis_cluster.owner(store.keys.prefix).client() as c:
                # everything the center wrote is on that one primary
                assert c.exists(store.keys.stats, store.keys.queues, store.keys.work_open) == 3
        assert len(set(shards.values())) == 3
    finally:
        await client.aclose()
