"""Retention (PRESENCE_RETENTION_DAYS): a finished item's records expire
together, set by the script that finishes it; open items never expire; an
item that routes again is kept again; a report of a day whose items are
gone is still right, from the roll-ups."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgpack
import pytest
from redis.asyncio import Redis

from presence.center import parse_center
from presence.kpi.rollup import HOUR_MS, Rollup, read_rollups
from presence.store import Store, new_work_id
from presence.store import cases as case_store
from presence.store.keys import Keys
from tests.harness import agent, available, post_work, token, write_center
from tests.helpers import open_case
from tests.integration.conftest import ServerFactory

DAY_MS = 86_400_000
CENTER = {
    "queues": [{"name": "q", "auto_accept": False}],
    "agents": [{"id": "a0", "queues": ["q"], "capacity": 100}],
}


async def _store(url: str, days: float) -> Store:
    store = Store(Redis.from_url(url), f"ret{uuid.uuid4().hex[:8]}")
    center = parse_center(CENTER)
    await store.sync_center(center, retention_days=days)
    await case_store.sync_config(store, center)
    await store.conn_open("a0", "c0", 3600)
    await store.set_status("a0", "Available", "", "a0")
    return store


@pytest.fixture
async def store(redis_server: str) -> AsyncIterator[Store]:
    store = await _store(redis_server, 2.0)
    yield store
    await store.redis.aclose()


async def _in_hand(store: Store, idem: str = "") -> str:
    wid = (
        await store.intake_work(new_work_id(), "q", "chat", 0, {"customer": {"name": "x"}}, {}, idem)
    ).work_id
    await store.route(["q"])
    await store.accept("a0", wid)
    return wid


async def _ttls(store: Store, wid: str, idem: str = "") -> dict[str, int]:
    k = store.keys
    # (an item's history is in its record; `history` is the list of an item
    # written before, an extra record like the case's)
    names = {
        "work": k.work(wid),
        "history": k.work_history(wid),
        "case": k.case(wid),
        "comments": k.case_comments(wid),
        "messages": k.case_messages(wid),
    }
    if idem:
        names["idem"] = k.idempotency(idem)
    return {n: await store.redis.pttl(key) for n, key in names.items()}


def _near(ms: int, want: int) -> bool:
    return want - 60_000 < ms <= want


async def test_finished_items_expire_with_their_records(store: Store) -> None:
    done = await _in_hand(store, idem="k-done")
    await case_store.add_note(store, done, "a0", "before the end")
    held = await _in_hand(store, idem="k-held")
    # as an item written before the history moved into the record: a list too
    await store.redis.rpush(store.keys.work_history(done), msgpack.packb({"ev": "note", "ts": 1}))
    await store.complete("a0", done, "solved")
    ttl = await _ttls(store, done, "k-done")
    # the item, its history and comments expire 2 days after it ended; the
    # idempotency record keeps its own, shorter day
    assert _near(ttl["work"], 2 * DAY_MS) and _near(ttl["history"], 2 * DAY_MS), ttl
    assert _near(ttl["comments"], 2 * DAY_MS), ttl
    assert 0 < ttl["idem"] <= DAY_MS, ttl
    # an item in hand is kept, whatever its age
    held_ttl = await _ttls(store, held)
    assert held_ttl["work"] == -1 and held_ttl["history"] == -2, held_ttl

    # a note written after the end expires with the item, not later
    late = await _in_hand(store)
    await store.complete("a0", late, "solved")
    assert await store.redis.pttl(store.keys.case_comments(late)) == -2
    await case_store.add_note(store, late, "sue", "after the end")
    assert _near(await store.redis.pttl(store.keys.case_comments(late)), 2 * DAY_MS)

    # a cancelled item too
    gone = (await store.intake_work(new_work_id(), "q", "voice", 0, {}, {})).work_id
    await store.set_status("a0", "Break", "", "a0")
    await store.cancel(gone, "hangup")
    assert _near(await store.redis.pttl(store.keys.work(gone)), 2 * DAY_MS)
    assert any(f.startswith(b"h:") for f in await store.redis.hkeys(store.keys.work(gone)))
    await store.complete("a0", held, "solved")
    assert await store.check() == []


async def test_a_case_that_routes_again_is_kept_again(store: Store) -> None:
    ref = f"conv-{uuid.uuid4().hex[:6]}"
    first = await open_case(store, "q", message={"text": "hello"}, thread=ref)
    wid = first.work_id
    await store.route(["q"])
    await store.accept("a0", wid)
    await store.complete("a0", wid, "solved")
    ttl = await _ttls(store, wid)
    assert ttl.pop("comments") == -2  # none written
    assert ttl.pop("history") == -2  # in the record
    assert all(_near(t, 2 * DAY_MS) for t in ttl.values()), ttl
    again = await open_case(store, "q", message={"text": "one more thing"}, thread=ref)
    assert (again.work_id, again.outcome) == (wid, "reopened")
    # open again: nothing of it may expire under the agent's hands
    assert set((await _ttls(store, wid)).values()) == {-1, -2}
    assert await store.redis.pttl(store.keys.case_messages(wid)) == -1
    await store.route(["q"])
    await store.accept("a0", wid)
    await store.complete("a0", wid, "solved")
    assert await store.check() == []


async def test_zero_keeps_forever(redis_server: str) -> None:
    store = await _store(redis_server, 0)
    try:
        wid = await _in_hand(store)
        await store.complete("a0", wid, "solved")
        assert await store.redis.pttl(store.keys.work(wid)) == -1
    finally:
        await store.redis.aclose()


async def test_the_day_of_expired_items_still_reports(redis_server: str) -> None:
    # 0.3 s of retention: the items are gone right after the hour is rolled up
    store = await _store(redis_server, 0.3 / 86400)
    try:
        now = store.now_ms()
        hour = now - now % HOUR_MS
        ids = [await _in_hand(store) for _ in range(3)]
        for wid in ids:
            await store.complete("a0", wid, "solved")
        late = Store(store.redis, store.keys.center, clock=lambda: (hour + 2 * HOUR_MS) / 1000)
        roll = Rollup(late, retention_days=31)
        before = (await read_rollups(late, hour, hour + HOUR_MS)) or {hour: await roll.roll_hour(hour)}
        await asyncio.sleep(0.5)
        for wid in ids:
            assert await store.redis.exists(store.keys.work(wid), store.keys.work_history(wid)) == 0
        # rolled again with the items gone, from the same events: the same figures
        again = await roll.roll_hour(hour)
        center = before[hour]["center"][""]
        assert (center.offered, center.handled) == (3, 3)
        assert again["center"][""].to_dict() == center.to_dict()
        assert again["queue"]["q"].to_dict() == before[hour]["queue"]["q"].to_dict()
        # and the stored roll-up answers for the day once the events are trimmed
        stored = await read_rollups(late, hour, hour + HOUR_MS)
        assert stored[hour]["center"][""].handled == 3
    finally:
        await store.redis.aclose()


async def test_a_report_of_expired_items_is_right(server_factory: ServerFactory, redis_server: str) -> None:
    # 2 s of retention: the items are gone moments after they end
    server = server_factory(env={"PRESENCE_RETENTION_DAYS": str(2 / 86400)})
    cid = server.center_id
    alice = await agent(server, "alice")
    await available(alice)
    now = int(time.time() * 1000)
    hour = now - now % HOUR_MS
    ids = []
    for name in ("山田 花子", "山田 花子", "ACME"):
        r = await asyncio.to_thread(post_work, server, customer={"name": name})
        assert r.status_code == 201, r.text
        wid = r.json()["id"]
        ids.append(wid)
        offer = await alice.expect("offer")
        assert offer["work_id"] == wid
        assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
        done = await alice.request({"type": "work.complete", "work_id": wid, "disposition": "ok"})
        assert done["type"] == "ok", done
    client = Redis.from_url(redis_server)
    try:
        # the hour rolled up while its items are still there (the server does
        # it every hour; here by hand, with a clock hours on), and the next
        # one, in case the items crossed into it
        late = Store(client, cid, clock=lambda: (hour + 3 * HOUR_MS) / 1000)
        await Rollup(late, retention_days=31).roll_hour(hour)
        await Rollup(late, retention_days=31).roll_hour(hour + HOUR_MS)
        k = Keys(cid)
        for _ in range(50):
            if not await client.exists(*[k.work(w) for w in ids]):
                break
            await asyncio.sleep(0.2)
        assert await client.exists(*[k.work(w) for w in ids], *[k.work_history(w) for w in ids]) == 0
        rng = {"from": str(hour), "to": str(hour + 2 * HOUR_MS)}
        headers = {"Authorization": f"Bearer {token('supervisor', 'boss')}"}
        r = await asyncio.to_thread(
            httpx.get,
            f"{server.http}/api/v1/reports/kpis",
            params={"group_by": "customer", **rng},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == "rollup"
        rows = {row["customer"]: (row["offered"], row["answered"]) for row in body["rows"]}
        assert rows == {"山田 花子": (2, 2), "ACME": (1, 1)}
        csv = await asyncio.to_thread(
            httpx.get,
            f"{server.http}/api/v1/reports/kpis",
            params={"group_by": "queue", "format": "csv", **rng},
            headers=headers,
        )
        assert "support,3,3" in csv.content.decode("utf-8-sig")
    finally:
        await client.aclose()


async def test_items_kept_from_before_get_their_expiry(redis_server: str, tmp_path: Path) -> None:
    # a center that ran without a retention: finished items have no TTL
    clock = [time.time() - 3 * 86400]
    store = await _store(redis_server, 0)
    store.clock = lambda: clock[0]
    try:
        old = await _in_hand(store)
        await store.complete("a0", old, "solved")  # three days ago
        clock[0] = time.time()
        recent = await _in_hand(store)
        await store.complete("a0", recent, "solved")
        held = await _in_hand(store)
        assert await store.redis.pttl(store.keys.work(recent)) == -1
        path, _ = write_center(tmp_path / "c.toml", center_id=store.keys.center)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "PRESENCE_"))}
        env.update(REDIS_URL=redis_server, PRESENCE_CONFIG=str(path), PRESENCE_RETENTION_DAYS="2")
        run = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "presence", "retain"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert "2 finished items" in run.stdout, run.stdout
        # the recent one expires two days after it ended; the old one's time had passed
        assert _near(await store.redis.pttl(store.keys.work(recent)), 2 * DAY_MS)
        await asyncio.sleep(0.05)
        assert await store.redis.exists(store.keys.work(old), store.keys.work_history(old)) == 0
        assert await store.redis.pttl(store.keys.work(held)) == -1
        await store.complete("a0", held, "solved")
        assert _near(await store.redis.pttl(store.keys.work(held)), 2 * DAY_MS)
    finally:
        await store.redis.aclose()


async def test_a_case_s_replies_expire_with_it(store: Store) -> None:
    wid = new_work_id()
    await open_case(
        store,
        "q",
        work_id=wid,
        data={"subject": "hi"},
        case={"subject": "hi"},
        message={"channel": "chat", "text": "hello"},
    )
    await store.route(["q"])
    await store.accept("a0", wid)
    await case_store.reply(store, wid, "a0", "Hello, how can I help?")
    assert await store.redis.pttl(store.keys.case_replies(wid)) == -1  # in hand: kept
    await store.complete("a0", wid, "solved")
    assert _near(await store.redis.pttl(store.keys.case_replies(wid)), 2 * DAY_MS)
    assert _near(await store.redis.pttl(store.keys.case_messages(wid)), 2 * DAY_MS)
