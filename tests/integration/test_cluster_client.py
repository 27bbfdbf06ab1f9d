"""What REDIS_URL names: a standalone Redis or any node of a cluster
(`open_redis` and PRESENCE_REDIS_MODE), and what the store needs of a
cluster: its function library on every primary, again on a primary that
lost it, and one center's calls all on the shard that holds its slot."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import MovedError

from presence.center import load_center
from presence.store import NewItem, Store, new_work_id
from presence.store.client import Cluster, open_redis, shard_of
from presence.store.events import Feed
from presence.store.keys import Keys
from presence.store.replication import NotReplicated, Replication
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
                assert c.exists(store.keys.metrics, store.keys.queues, store.keys.work_open) == 3
        assert len(set(shards.values())) == 3
    finally:
        await client.aclose()


def _waits(url: str) -> int:
    with redis.Redis.from_url(url, decode_responses=True) as c:
        return int(c.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


async def test_a_redis_without_replicas_is_not_waited_for(redis_server: str) -> None:
    client = await open_redis(redis_server)
    try:
        before = _waits(redis_server)
        await _routed(Store(client, "nowait" + new_work_id(), replication=Replication(client)))
        assert _waits(redis_server) == before
        # a number is a requirement: no replica, no acknowledgement
        strict = Store(client, "strict" + new_work_id(), replication=Replication(client, 1, timeout=0.05))
        with pytest.raises(NotReplicated, match="0 of 1 replica"):
            await strict.sync_center(load_center(None))
        assert _waits(redis_server) > before
    finally:
        await client.aclose()


def _presence_check(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": url}
    argv = [sys.executable, "-m", "presence", "check", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


async def test_check_verifies_every_center_and_names_its_shard(redis_cluster: LocalCluster) -> None:
    redis_cluster.wait_ok()
    client = await open_redis(redis_cluster.url)
    # two centers on each shard that owns slots, chosen by their hash tag's
    # owner: random names alone all fell on one shard once in CI (1 in 243)
    by_port: dict[int, list[str]] = {}
    for i in range(200):
        cid = f"chk{i}{new_work_id()[-6:]}"
        names = by_port.setdefault(redis_cluster.owner(Keys(cid).prefix).port, [])
        if len(names) < 2:
            names.append(cid)
    centers = [cid for names in by_port.values() for cid in names]
    try:
        for cid in centers:
            await _routed(Store(client, cid))
    finally:
        await client.aclose()
    out = _presence_check(redis_cluster.url, "--all")
    assert out.returncode == 0, out.stdout + out.stderr
    owners = {cid: redis_cluster.owner(Keys(cid).prefix).port for cid in centers}
    assert len(set(owners.values())) == len(by_port) > 1  # the centers are spread over the shards
    for cid, port in owners.items():
        slot = redis_cluster.slot(Keys(cid).prefix)
        assert f"all invariants hold in center {cid} (shard 127.0.0.1:{port}, slot {slot})" in out.stdout
    # one center named, a breach in another: only what was asked is checked
    with redis_cluster.owner(Keys(centers[1]).prefix).client() as c:
        c.delete(Keys(centers[1]).work_open)  # its one item is lost
    one = _presence_check(redis_cluster.url, "--center", centers[0])
    assert one.returncode == 0 and centers[1] not in one.stdout, one.stdout
    every = _presence_check(redis_cluster.url, "--all")
    assert every.returncode == 1, every.stdout
    assert f"invariant breach(es) in center {centers[1]} (shard" in every.stdout


def _getkeys(cluster: LocalCluster) -> int:
    """``COMMAND GETKEYS`` calls on every node of `cluster` so far."""
    total = 0
    for node in cluster.nodes:
        if node.alive:
            with node.client() as c:
                stats = c.info("commandstats")
                total += int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0))
    return total


@pytest.mark.parametrize("wait", [False, True], ids=["fcall", "fcall+wait"])
async def test_a_script_call_finds_its_slot_without_asking_redis(
    redis_cluster: LocalCluster, wait: bool
) -> None:
    """redis-py asks a node ``COMMAND GETKEYS`` for the slot of every FCALL
    (it parses only EVAL's keys itself): two round trips per hot-path call,
    each with the whole batch's arguments. `Cluster` reads the key from the
    call, alone (``FCALL``) and in the pipeline of ``FCALL`` + ``WAIT`` alike.
    Fails if redis-py stops calling the override (a renamed hook)."""
    redis_cluster.wait_ok()
    client = await open_redis(redis_cluster.url)
    try:
        replication = Replication(client) if wait else None
        store = Store(client, "slot" + new_work_id(), replication=replication)
        await store.sync_center(load_center(None))
        before = _getkeys(redis_cluster)
        for i in range(5):
            item = NewItem(new_work_id(), "support", "chat", 0, {"subject": f"{i}"})
            [made] = await store.create_work_many([item])
            assert isinstance(made, tuple), made
        assert _getkeys(redis_cluster) - before == 0
    finally:
        await client.aclose()


async def test_script_calls_take_a_lean_lane_to_the_primary_and_follow_a_moved_slot(
    redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A center's script calls go on a lean lane (store/client.py `Cluster.lean`)
    to the primary redis-py's slot map names, not through redis-py's command
    path; a call that meets MOVED after its slot moved is handed to redis-py,
    which follows it and corrects its map, and the calls after it are lean
    again, on the new primary. Each call applies once (the intakes' count)."""
    redis_cluster.wait_ok()
    client = await open_redis(redis_cluster.url)
    assert isinstance(client, Cluster)
    through_redis_py: list[str] = []
    plain = client.execute_command

    async def counted(*args: object, **kwargs: object) -> object:
        through_redis_py.append(str(args[0]))
        return await plain(*args, **kwargs)

    try:
        store = Store(client, "lean" + new_work_id())
        await store.sync_center(load_center(None))

        async def intake(n: int) -> None:
            for i in range(n):
                item = NewItem(new_work_id(), "support", "chat", 0, {"subject": f"{i}"})
                [made] = await store.create_work_many([item])
                assert isinstance(made, tuple), made

        monkeypatch.setattr(client, "execute_command", counted)
        await intake(3)
        assert "FCALL" not in through_redis_py
        slot = redis_cluster.slot(store.keys.prefix)
        source = redis_cluster.owner_of_slot(slot)
        target = next(n for n in redis_cluster.primaries() if n is not source)
        redis_cluster.migrate_slot(slot, target)
        await intake(1)  # MOVED on the lane: redis-py takes it
        assert through_redis_py.count("FCALL") == 1
        await intake(3)
        assert through_redis_py.count("FCALL") == 1
        assert client.get_node_from_key(store.keys.prefix).port == target.port
        with target.client() as c:
            assert c.zcard(store.keys.queue_waiting("support")) == 7
    finally:
        await client.aclose()


async def test_the_event_feed_reads_on_its_own_connection_to_the_channels_primary(
    redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a standalone Redis (tests/faults/test_faults_feed.py): a plain
    connection to the primary redis-py's slot map names, no ClusterPubSub;
    a map gone stale (the SSUBSCRIBE answered MOVED) is an error the hub's
    listener answers by reading the slots again and subscribing anew."""
    channel = "presence:{feedc}:events"
    client = await open_redis(redis_cluster.url)
    feed = Feed(client, channel)
    try:
        await feed.open()
        assert feed._direct is not None and feed._pubsub is None
        assert feed.node == f"127.0.0.1:{redis_cluster.owner(channel).port}"
        for i in range(20):
            await client.spublish(channel, b"event %d" % i)
        assert [await feed.get() for _ in range(20)] == [b"event %d" % i for i in range(20)]
        await feed.close()
        owner = redis_cluster.owner(channel).port
        other = next(n for n in client.get_primaries() if n.port != owner)
        # (on the class: NodesManager has __slots__)
        monkeypatch.setattr(type(client.nodes_manager), "get_node_from_slot", lambda *a, **k: other)
        with pytest.raises(MovedError):
            await feed.open()
    finally:
        await feed.close()
        await client.aclose()
