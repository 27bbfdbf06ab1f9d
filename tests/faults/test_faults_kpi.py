"""The live KPIs ride out a Redis timeout without rebuilding.

In the soak (docs/RELIABILITY.md), a 10 s stall of a loaded server made one
of the live task's reads time out; the task threw its tracker away and
rebuilt it from the streams, re-reading the whole day (a million entries at
200 items/s) on a process already behind: its memory doubled and the
offers' p99 went from 0.1 s to 38 s for minutes. A timeout leaves Redis's
data as it was, so the task carries on from its cursor; the items handled
meanwhile are counted exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from redis.asyncio import Redis as AsyncRedis

from presence.center import parse_center
from presence.kpi.live import LiveKpis
from presence.store import Store, new_work_id
from presence.store.client import open_redis
from tests.faults.conftest import PrivateRedis
from tests.faults.proxy import BlackholeProxy


async def handled(store: Store, n: int) -> None:
    """`n` items taken in, accepted and completed by whoever gets them."""
    for _ in range(n):
        wid = (await store.intake_work(new_work_id(), "support", "chat", 0, {}, {})).work_id
        await store.route(["support"])
        item = await store.get_work(wid, history=False)
        assert item is not None and item["state"] == "offered", item
        await store.accept(item["agent_id"], wid)
        await store.complete(item["agent_id"], wid, "ok")


def today_handled(live: LiveKpis) -> int:
    return int(live.last["center"]["today"]["handled"]) if live.last else -1


async def until(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_redis_timeout_keeps_the_live_tracker_and_loses_nothing(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="presence.kpi")
    proxy = BlackholeProxy(private_redis.port).start()
    direct = AsyncRedis.from_url(private_redis.url)
    # the live task's client goes through the proxy: the server's own client
    # (3 s socket timeout, a timeout never retried)
    slow = await open_redis(proxy.url)
    cid = "late" + uuid.uuid4().hex[:8]
    writer = Store(direct, cid)
    live = LiveKpis(Store(slow, cid), lambda msg: None, shared=False, interval=0.2)
    try:
        await writer.sync_center(
            parse_center({"queues": [{"name": "support"}], "agents": [{"id": "a0", "queues": ["support"]}]})
        )
        await writer.conn_open("a0", "c0", 3600)
        await writer.set_status("a0", "Available", "", "a0")
        await handled(writer, 3)
        live.start()
        await until(lambda: today_handled(live) == 3, 10)
        tracker = live.tracker
        assert tracker is not None
        # every open flow of the live task's client stops answering: its next
        # call times out; the client's next connection passes again
        assert proxy.freeze(subscribers_only=False) >= 1
        await handled(writer, 2)
        await until(lambda: today_handled(live) == 5, 15)
        await asyncio.sleep(0.5)  # a few ticks more: counted once, not again
        assert today_handled(live) == 5
        assert live.tracker is tracker, "rebuilt after a timeout"
        assert "live KPIs late" in caplog.text, caplog.text  # the timeout did happen
        assert "rebuilding" not in caplog.text, caplog.text
    finally:
        await live.stop()
        proxy.stop()
        await slow.aclose()
        await direct.aclose()
