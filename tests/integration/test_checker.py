"""`presence check` can fail: Redis corrupted on purpose is caught, each
breach printed, and the command exits 1 (0 on a healthy center)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from presence.center import load_center
from presence.store import Store, new_work_id
from tests.harness import write_center

CENTER = """
[[queues]]
name = "support"

[[agents]]
id = "ann"
queues = ["support"]

[[agents]]
id = "bo"
queues = ["support"]
"""


class Scene:
    """A small live center: ann holds one item, bo has one offered, one waits."""

    def __init__(self, store: Store, config: Path, redis_url: str) -> None:
        self.store = store
        self.config = config
        self.redis_url = redis_url
        self.held = self.offered = self.queued = ""

    async def build(self) -> Scene:
        s = self.store
        await s.sync_center(load_center(self.config))
        for i, aid in enumerate(("ann", "bo")):
            await s.conn_open(aid, f"c{i}", 3600)
            await s.set_status(aid, "Available", "", aid)
        ids = []
        for _ in range(2):
            wid = (await s.intake_work(new_work_id(), "support", "chat", 0, {}, {})).work_id
            ids.append(wid)
        await s.route(["support"])
        for aid in ("ann", "bo"):
            offers, _ = await s.agent_items(aid)
            assert len(offers) == 1
            if aid == "ann":
                self.held = offers[0]["work_id"]
                await s.accept(aid, self.held)
            else:
                self.offered = offers[0]["work_id"]
        self.queued = (await s.intake_work(new_work_id(), "support", "email", 0, {}, {})).work_id
        return self

    def check(self) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "REDIS_URL": self.redis_url, "PRESENCE_CONFIG": str(self.config)}
        return subprocess.run(
            [sys.executable, "-m", "presence", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
async def scene(redis_server: str, tmp_path: Path) -> AsyncIterator[Scene]:
    config, cid = write_center(tmp_path / "center.toml", CENTER)
    redis = Redis.from_url(redis_server)
    store = Store(redis, cid)
    yield await Scene(store, config, redis_server).build()
    pattern = store.keys.prefix.replace("{", "\\{").replace("}", "\\}") + "*"
    keys = [k async for k in redis.scan_iter(match=pattern)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_a_healthy_center_passes(scene: Scene) -> None:
    out = scene.check()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all invariants hold" in out.stdout and "BREACH" not in out.stdout


Corruption = Callable[[Scene], Awaitable[list[str]]]


async def _two_holders(sc: Scene) -> list[str]:
    k = sc.store.keys
    await sc.store.redis.sadd(k.agent_work("bo"), sc.held)
    # agents are visited in set order: either may be named first
    return [f"item {sc.held} is held by two agents: {a} and {b}" for a, b in (("ann", "bo"), ("bo", "ann"))]


async def _over_capacity(sc: Scene) -> list[str]:
    await sc.store.redis.hset(sc.store.keys.agent("bo"), "load", 500)
    return [
        "agent bo holds 500 units, over its capacity of 100",
        "agent bo load is 500 but its items weigh 25",
    ]


async def _dropped_from_queue(sc: Scene) -> list[str]:
    k = sc.store.keys
    await sc.store.redis.zrem(k.queue_waiting("support"), sc.queued)
    return [f"item {sc.queued} is queued but not waiting in its queue support"]


async def _lost_item(sc: Scene) -> list[str]:
    k = sc.store.keys
    await sc.store.redis.zrem(k.work_open, sc.offered)
    return ["items lost: 3 created, but 2 open + 0 completed + 0 abandoned = 2"]


async def _voice_over_cap(sc: Scene) -> list[str]:
    k = sc.store.keys
    r = sc.store.redis
    for n in range(2):
        wid = f"fake-voice-{n}"
        await r.hset(
            k.work(wid), mapping={"state": "assigned", "agent": "ann", "channel": "voice", "weight": 0}
        )
        await r.sadd(k.agent_work("ann"), wid)
    return ["agent ann holds 2 voice items, over the cap of 1"]


@pytest.mark.parametrize(
    "corrupt", [_two_holders, _over_capacity, _dropped_from_queue, _lost_item, _voice_over_cap]
)
async def test_each_corruption_is_caught_and_printed(scene: Scene, corrupt: Corruption) -> None:
    assert scene.check().returncode == 0
    expected = await corrupt(scene)
    out = scene.check()
    assert out.returncode == 1, out.stdout + out.stderr
    breaches = [
        line.removeprefix("BREACH: ") for line in out.stdout.splitlines() if line.startswith("BREACH")
    ]
    if corrupt is _two_holders:
        assert set(expected) & set(breaches), breaches
    else:
        for sentence in expected:
            assert sentence in breaches, (sentence, breaches)
    assert "invariant breach(es) in center" in out.stdout


async def test_several_breaches_are_all_printed(scene: Scene) -> None:
    held_twice = await _two_holders(scene)
    over = (await _over_capacity(scene))[0]
    dropped = await _dropped_from_queue(scene)
    out = scene.check()
    assert out.returncode == 1
    breaches = [
        line.removeprefix("BREACH: ") for line in out.stdout.splitlines() if line.startswith("BREACH")
    ]
    assert set(held_twice) & set(breaches), breaches
    assert {over, *dropped} <= set(breaches), breaches
    assert f"{len(breaches)} invariant breach(es)" in out.stdout


async def test_items_counted_in_the_older_stats_hash_still_add_up(scene: Scene) -> None:
    """A center's items counted before the counters moved into `metrics`
    (the hash `stats`, which no script writes now) and those counted since
    (`metrics`' stats|* fields) add up: no item lost, none counted twice."""
    r, k = scene.store.redis, scene.store.keys
    assert not await r.exists(k.stats)
    counted = await r.hmget(k.metrics, "stats|created", "stats|completed", "stats|abandoned")
    assert [int(v or 0) for v in counted] == [0, 0, 0]
    # the arrivals are counted in the counters the checker sums (`created+|<queue>|<channel>`)
    arrived = [f for f in await r.hkeys(k.metrics) if f.startswith(b"created+|")]
    assert sum(int(v) for v in await r.hmget(k.metrics, arrived)) == 3
    # as an older version counted them: in `stats`
    await r.hdel(k.metrics, *arrived)
    await r.hset(k.stats, mapping={"created": 3, "completed": 0})
    s = scene.store
    await s.complete("ann", scene.held, "done")
    await s.cancel(scene.queued, "gone")
    assert await r.hget(k.stats, "created") == b"3"
    # the ends are counted since in the counters the checker sums
    # (`completed+|<queue>|<channel>`), and were in stats|completed before:
    # an end counted so by an older version adds up with them
    ended = {f: v for f, v in (await r.hgetall(k.metrics)).items() if b"+|" in f}
    assert sorted(ended.values()) == [b"1", b"1"] and not await r.hexists(k.metrics, "stats|completed")
    out = scene.check()
    assert out.returncode == 0, out.stdout + out.stderr
    # an item made and completed by an older version meanwhile (a rolling
    # upgrade): counted in stats|created and stats|completed
    await r.hincrby(k.metrics, "stats|created", 1)
    await r.hincrby(k.metrics, "stats|completed", 1)
    out = scene.check()
    assert out.returncode == 0, out.stdout + out.stderr
    await r.hincrby(k.metrics, "stats|created", -1)
    await r.hincrby(k.metrics, "stats|completed", -1)
    await r.hincrby(k.stats, "created", 1)
    out = scene.check()
    assert "items lost: 4 created, but 1 open + 1 completed + 1 abandoned = 3" in out.stdout
