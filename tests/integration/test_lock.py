"""The leader lock (`presence.store.lock`) against a real Redis: one holder at
a time, expiry and takeover, a renewal or release that never touches another
holder's lock, and the demo's hand-over through it.

Time is driven where it can be: an expiry is played by deleting the key (what
Redis does when the TTL runs out), and a short PX is used only where Redis's
own clock is what the test checks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from presence.center import parse_center
from presence.demo import Demo
from presence.kpi.rollup import HOUR_MS, Rollup, day_name, hour_name
from presence.router.dispatcher import Dispatcher
from presence.store import Store
from presence.store.lock import Lock

LONG = 60_000  # ms: a TTL no test outlives


class Interleaved(Redis):
    """A real client that runs `between` once, right after its next command
    (named `after`, or any) returns: where another process's commands would
    land between two of ours."""

    between: Callable[[], Awaitable[None]] | None = None
    after: str | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = await super().execute_command(*args, **options)
        if self.between is not None and self.after in (None, str(args[0]).upper()):
            hook, self.between = self.between, None
            await hook()
        return reply


NOW = 1_800_000_000.0  # s: the store's clock (a whole hour)


@pytest.fixture
async def store(redis_server: str) -> AsyncIterator[Store]:
    client = Interleaved.from_url(redis_server)
    s = Store(client, f"lock{uuid.uuid4().hex[:8]}", clock=lambda: NOW)
    yield s
    keys = [k async for k in client.scan_iter(match=f"{s.keys.prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def lock(store: Store, holder: str, ttl_ms: int = LONG) -> Lock:
    return Lock(store, store.keys.kpi_lock("test"), ttl_ms, holder=holder)


async def test_one_holder_at_a_time(store: Store) -> None:
    a, b = lock(store, "a"), lock(store, "b")
    assert await a.acquire() and a.held
    assert not await b.acquire() and not b.held
    assert not await b.hold()
    assert await a.hold() and await a.renew()
    assert await store.redis.get(a.key) == b"a"
    # released by its holder: free for the other at once
    assert await a.release() and not a.held
    assert not await store.redis.exists(a.key)
    assert await b.acquire()
    assert await store.redis.get(b.key) == b"b"


async def test_acquire_keeps_a_hold_the_process_forgot(store: Store) -> None:
    """A holder that lost track of its hold (a restarted loop, same id) keeps
    it, with its TTL renewed, rather than waiting for it to run out."""
    await lock(store, "a").acquire()
    await store.redis.pexpire(store.keys.kpi_lock("test"), 1_000)
    again = lock(store, "a")
    assert await again.acquire()
    assert await store.redis.pttl(again.key) > 1_000


async def test_expiry_hands_the_lock_over(store: Store) -> None:
    # Redis's own clock is the thing under test: a TTL of 50 ms runs out
    a, b = lock(store, "a", ttl_ms=50), lock(store, "b")
    assert await a.acquire()
    assert not await b.acquire()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while await store.redis.pttl(a.key) != -2:  # -2: gone
        assert loop.time() < deadline, "the lock never expired"
        await asyncio.sleep(0.01)
    assert await b.acquire()
    # the old holder learns it lost the lock, and leaves the new one's alone
    assert not await a.renew() and not a.held
    assert not await a.hold()
    assert await store.redis.get(b.key) == b"b"
    assert await store.redis.pttl(b.key) > 50


async def test_renewal_refused_after_takeover(store: Store) -> None:
    """The lock expires and another process takes it while A renews: the
    takeover lands right after the first command A's renewal sends. A
    renewal of GET then PEXPIRE would then give B's lock A's TTL (B leads on
    A's renewals, and both believe they lead); the atomic one cannot."""
    a, b = lock(store, "a", ttl_ms=LONG), lock(store, "b", ttl_ms=5_000)
    assert await a.acquire()
    assert await a.renew()  # warm: the script library is loaded

    async def expire_and_take_over() -> None:
        await store.redis.delete(a.key)  # A's TTL ran out
        assert await b.acquire()

    assert isinstance(store.redis, Interleaved)
    store.redis.between = expire_and_take_over
    await a.renew()
    assert store.redis.between is None, "the takeover did not run"
    # B holds the lock with its own TTL, not A's
    assert await store.redis.get(b.key) == b"b"
    assert 0 < await store.redis.pttl(b.key) <= 5_000
    # and A is told, on its next renewal at the latest
    assert not await a.renew() and not a.held
    assert await b.renew()


async def test_release_refused_for_a_non_holder(store: Store) -> None:
    a, b = lock(store, "a"), lock(store, "b")
    assert await a.acquire()
    assert not await b.release()
    assert await store.redis.get(a.key) == b"a"
    # A outlived its TTL and B took over: A's late release leaves B's lock
    await store.redis.delete(a.key)
    assert await b.acquire()
    assert not await a.release()
    assert await store.redis.get(b.key) == b"b"
    assert await b.release()
    assert not await store.redis.exists(b.key)


async def test_a_lock_is_a_key_of_its_center(store: Store) -> None:
    with pytest.raises(ValueError, match="not a key of the center"):
        Lock(store, "elsewhere:lock", LONG)
    with pytest.raises(ValueError, match="positive"):
        Lock(store, store.keys.kpi_lock("x"), 0)
    # two locks of one process never share a holder id
    one, two = (Lock(store, store.keys.kpi_lock("x"), LONG) for _ in range(2))
    assert one.holder != two.holder


async def test_one_demo_runs_and_hands_over_when_stopped(store: Store) -> None:
    await store.sync_center(parse_center({}))
    demos = [
        Demo(store, Dispatcher(store), secret="s" * 32, lease=30, grace=5, base_url="http://x", seed=n)
        for n in (1, 2)
    ]
    key = store.keys.demo_lock
    loop = asyncio.get_running_loop()

    async def held_by(d: Demo, within: float) -> None:
        deadline = loop.time() + within
        while await store.redis.get(key) != d.me.encode():
            assert loop.time() < deadline, "the demo lock was not taken"
            await asyncio.sleep(0.02)

    first, second = demos
    first.start()
    try:
        await held_by(first, 10)
        second.start()
        await asyncio.sleep(0.2)
        assert await store.redis.get(key) == first.me.encode() and not second.lock.held
        # stopped, the holder releases the lock: the other takes over on its
        # next try (every 2 s), not after the lock's TTL (10 s)
        await first.stop()
        await held_by(second, 5)
    finally:
        for d in demos:
            await d.stop()
    assert not await store.redis.exists(key)


async def test_rollup_stops_when_its_lock_is_taken_over(store: Store) -> None:
    """Three closed hours are due; after the first, the run's lock has run out
    and another process holds it: the run stops there (its day still summed)
    and leaves the other's lock alone."""
    k = store.keys
    now_ms = int(NOW * 1000)
    first = now_ms - 4 * HOUR_MS
    await store.redis.hset(k.kpi_state, "rolled", first)
    rollup = Rollup(store, retention_days=31)
    other = Lock(store, k.kpi_lock("rollup"), LONG, holder="other")

    async def expire_and_take_over() -> None:
        await store.redis.delete(k.kpi_lock("rollup"))  # the run's TTL ran out
        assert await other.acquire()

    # right after hour 1 is written with its cursor (one MULTI, which the
    # client's hook does not see: the task's own step is wrapped instead)
    roll_part = rollup.roll_part
    taken: list[bool] = []

    async def part_then_take_over(*args: Any) -> list[str]:
        out = await roll_part(*args)
        if not taken:
            taken.append(True)
            await expire_and_take_over()
        return out

    rollup.roll_part = part_then_take_over  # type: ignore[method-assign]
    assert await rollup.run_once() == 1
    assert int(await store.redis.hget(k.kpi_state, "rolled")) == first + HOUR_MS
    assert await store.redis.exists(k.kpi_hour(hour_name(first)))
    assert not await store.redis.exists(k.kpi_hour(hour_name(first + HOUR_MS)))
    assert await store.redis.exists(k.kpi_day(day_name(first, ZoneInfo("UTC"))))
    assert await store.redis.get(k.kpi_lock("rollup")) == b"other"
    # with the lock free again, the next run does the rest
    assert await other.release()
    assert await rollup.run_once() == 2
