"""Overflow (after N seconds, or while nobody of the queue is signed in),
skill relaxation step by step, and the position and expected wait of a
queued item, with short timers."""

from __future__ import annotations

import asyncio

import pytest
import redis

from presence.store.keys import Keys
from tests.harness import DrivenClock, agent, available, get_work, post_work
from tests.integration.conftest import ServerFactory, check_center

pytestmark = pytest.mark.in_process

CENTER = """
[[queues]]
name = "tier1"
overflow_to = "tier2"
overflow_after = 10

[[queues]]
name = "tier2"

[[queues]]
name = "us"
overflow_to = "emea"
overflow_when_unstaffed = true

[[queues]]
name = "emea"

[[queues]]
name = "jp"
relax = [{after = 8, lower = 2}, {after = 16, drop = ["japanese"]}]

[[agents]]
id = "t1"
queues = ["tier1"]

[[agents]]
id = "t2"
queues = ["tier2"]

[[agents]]
id = "usa"
queues = ["us"]

[[agents]]
id = "eu"
queues = ["emea"]

[[agents]]
id = "ken"
queues = ["jp"]
skills = {japanese = 5}

[[agents]]
id = "carol"
queues = ["jp"]
skills = {english = 5}
"""


async def test_overflow_after_waiting(server_factory: ServerFactory) -> None:
    clock = DrivenClock()
    server = server_factory(CENTER, clock=clock)
    t2 = await agent(server, "t2")
    await available(t2)
    wid = post_work(server, queue="tier1").json()["id"]
    clock.advance(9)  # the threshold is 10 s
    assert not [m for m in await t2.quiet(0.3) if m["type"] == "offer"]
    assert get_work(server, wid)["state"] == "queued"
    clock.advance(2)
    offer = await t2.expect("offer", timeout=5)
    assert offer["work_id"] == wid
    item = get_work(server, wid)
    assert item["queue"] == "tier1"  # still its own queue's item
    assert next(h for h in item["history"] if h["ev"] == "overflow")["to"] == "tier2"
    # declined by t2: back to waiting, still borrowed by tier2, and t1 can take it
    await t2.request({"type": "offer.decline", "work_id": wid})
    t1 = await agent(server, "t1")
    await available(t1)
    assert (await t1.expect("offer"))["work_id"] == wid
    await t1.request({"type": "offer.accept", "work_id": wid})
    await t1.request({"type": "work.complete", "work_id": wid})


async def test_overflow_when_unstaffed(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    eu = await agent(server, "eu")
    await available(eu)
    wid = post_work(server, queue="us").json()["id"]
    offer = await eu.expect("offer", timeout=2)
    assert offer["work_id"] == wid
    await eu.request({"type": "offer.accept", "work_id": wid})
    # with a US agent signed in (even busy or away) nothing overflows
    usa = await agent(server, "usa")
    second = post_work(server, queue="us").json()["id"]
    await asyncio.sleep(0.6)
    assert get_work(server, second)["state"] == "queued"
    assert not [m for m in await eu.quiet(0.2) if m["type"] == "offer"]
    await available(usa)
    assert (await usa.expect("offer"))["work_id"] == second
    await eu.request({"type": "work.complete", "work_id": wid})


async def test_skill_relaxation_step_by_step(server_factory: ServerFactory) -> None:
    clock = DrivenClock()
    server = server_factory(CENTER, clock=clock)
    ken = await agent(server, "ken")
    carol = await agent(server, "carol")
    await available(ken)
    await available(carol)
    a = post_work(server, queue="jp", channel="email", skills={"japanese": 7}).json()["id"]
    b = post_work(server, queue="jp", channel="email", skills={"japanese": 9, "english": 3}).json()["id"]

    async def offers() -> list[str]:
        return [m["work_id"] for c in (ken, carol) for m in await c.quiet(0.3) if m["type"] == "offer"]

    clock.advance(7)  # before the first step (8 s): nobody qualifies
    assert await offers() == []
    clock.advance(2)  # japanese lowered by 2: ken (5) takes a (7 -> 5), not b (9 -> 7)
    offer = await ken.expect("offer", timeout=4)
    assert offer["work_id"] == a
    assert await offers() == []
    clock.advance(8)  # past the second step (16 s): japanese dropped, carol takes b
    offer = await carol.expect("offer", timeout=4)
    assert offer["work_id"] == b
    steps = [h["step"] for h in get_work(server, b)["history"] if h["ev"] == "relax"]
    assert steps == [1, 2]
    # the offer still shows what was asked for at intake
    assert offer["skills"] == {"japanese": 9, "english": 3}


async def test_position_and_expected_wait(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    first = post_work(server, queue="tier2", channel="voice").json()["id"]
    item = get_work(server, first)
    assert item["position"] == 1 and item["expected_wait_seconds"] is None
    assert item["estimate"] == {"average_handle_seconds": None, "samples": 0, "agents": 0}
    t2 = await agent(server, "t2")
    await available(t2)
    await t2.expect("offer")
    await t2.request({"type": "offer.accept", "work_id": first})
    await asyncio.sleep(0.2)
    await t2.request({"type": "work.complete", "work_id": first})
    held = post_work(server, queue="tier2", channel="voice").json()["id"]
    await t2.expect(lambda m: m["type"] == "offer" and m["work_id"] == held)
    await t2.request({"type": "offer.accept", "work_id": held})
    waiting = [post_work(server, queue="tier2", channel="voice").json()["id"] for _ in range(2)]
    one, two = (get_work(server, w) for w in waiting)
    assert (one["position"], two["position"]) == (1, 2)
    assert one["estimate"]["samples"] == 1 and one["estimate"]["agents"] == 1
    aht = one["estimate"]["average_handle_seconds"]
    assert 0.1 <= aht < 5
    assert one["expected_wait_seconds"] == round(aht, 1) or abs(one["expected_wait_seconds"] - aht) < 0.11
    assert abs(two["expected_wait_seconds"] - 2 * aht) < 0.21
    assert "position" not in get_work(server, held)


async def test_checker_sees_a_bad_borrowed_entry(server_factory: ServerFactory, redis_server: str) -> None:
    server = server_factory(CENTER)
    cid = server.center_id
    wid = post_work(server, queue="tier2").json()["id"]
    keys = Keys(cid)
    r = redis.Redis.from_url(redis_server)
    try:
        # an item that waits in tier2 but is indexed as borrowed by tier1: a breach
        r.zadd(keys.queue_borrowed("tier1"), {wid: 1})
        breaches = check_center(redis_server, cid)
        assert any("borrowed by tier1" in b for b in breaches), breaches
        r.zrem(keys.queue_borrowed("tier1"), wid)
        assert check_center(redis_server, cid) == []
    finally:
        r.close()
