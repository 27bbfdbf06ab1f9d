"""Batched agent calls (store/scripts.py `Batcher`): many sockets' accepts
and completes leave in one EVALSHA, yet each call is atomic on its own and
gets its own reply, errors included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgpack
import pytest
from redis.asyncio import Redis

from presence.center import parse_center
from presence.protocol import decode_events
from presence.store import ScriptError, Store, new_work_id


@pytest.fixture
async def store(redis_server: str) -> AsyncIterator[Store]:
    client = Redis.from_url(redis_server)
    store = Store(client, f"batch{uuid.uuid4().hex[:8]}")
    await store.sync_center(
        parse_center(
            {
                "queues": [{"name": "q", "auto_accept": False}],
                "agents": [{"id": f"a{i}", "queues": ["q"]} for i in range(20)],
            }
        )
    )
    yield store
    await client.aclose()


async def _offers(store: Store, n: int) -> dict[str, str]:
    """n agents Available, n items offered: agent -> offered item."""
    for i in range(n):
        await store.conn_open(f"a{i}", f"c{i}", 3600)
        await store.set_status(f"a{i}", "Available", "", f"a{i}")
    for _ in range(n):
        await store.intake_work(new_work_id(), "q", "chat", 0, {}, {})
    assert (await store.route(["q"]))[0] == n
    offered = {}
    for i in range(n):
        offers, _ = await store.agent_items(f"a{i}")
        assert len(offers) == 1
        offered[f"a{i}"] = offers[0]["work_id"]
    return offered


async def test_concurrent_calls_share_one_script_call_with_their_own_replies(store: Store) -> None:
    offered = await _offers(store, 20)
    accept = store.batched["offer_accept"]
    before = accept.calls
    # 19 good accepts and one for an item that is someone else's, all at once
    calls = [store.accept(aid, wid) for aid, wid in offered.items()]
    calls.append(store.accept("a0", offered["a1"]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert accept.calls - before <= 2  # the first call may leave alone
    assert results[:20] == [None] * 20
    wrong = results[20]
    assert isinstance(wrong, ScriptError) and wrong.code in ("not_yours", "conflict"), wrong
    for aid, wid in offered.items():
        _, work = await store.agent_items(aid)
        assert [w["work_id"] for w in work] == [wid]

    # the same item completed twice in one batch: exactly one succeeds
    complete = store.batched["work_complete"]
    before = complete.calls
    twice = await asyncio.gather(
        store.complete("a3", offered["a3"], "done"),
        store.complete("a3", offered["a3"], "again"),
        return_exceptions=True,
    )
    assert complete.calls - before <= 2
    assert twice[0] == ["q"]
    assert isinstance(twice[1], ScriptError) and twice[1].code == "conflict", twice[1]
    assert await store.check() == []


async def test_an_idle_call_is_sent_at_once_and_errors_reach_only_their_caller(store: Store) -> None:
    offered = await _offers(store, 2)
    with pytest.raises(ScriptError) as missing:
        await store.complete("a0", "no-such-item", "")
    assert missing.value.code == "not_found"
    # a runtime error in one call of a batch is that call's reply only
    raw = await store.scripts.many("offer_accept", store.keys.prefix, store.now_ms(), [("a0",), ("a1",)])
    assert [r[0] for r in raw] == [b"internal", b"internal"]
    # a Redis that lost the function library (a new one, FUNCTION FLUSH) is
    # given it again by the call that misses it, not an error
    await store.redis.function_flush()
    assert await store.redis.function_list() == []
    await store.accept("a0", offered["a0"])
    await store.accept("a1", offered["a1"])
    assert len(await store.redis.function_list()) == 1
    assert await store.check() == []


async def test_concurrent_status_changes_share_one_script_call(store: Store) -> None:
    """A burst of status changes (the sign-ins of a shift, a wallboard's
    agents) leaves in one or two script calls, each change with its own
    reply (an unknown status is refused to its caller only) and its own
    `status` event, in one pub/sub message per call."""
    pubsub = store.redis.pubsub()
    await pubsub.ssubscribe(store.keys.events_channel)
    try:
        for i in range(20):
            await store.conn_open(f"a{i}", f"c{i}", 3600)
        while await pubsub.get_message(timeout=0.3) is not None:
            pass  # the sign-ins' events
        calls = store.batched["agent_status"]
        before = calls.calls
        results = await asyncio.gather(
            *(store.set_status(f"a{i}", "Available", "", f"a{i}") for i in range(19)),
            store.set_status("a19", "Lunch?", "", "a19"),
            return_exceptions=True,
        )
        assert 1 <= calls.calls - before <= 2  # the first call may leave alone
        assert results[:19] == [["q"]] * 19
        bad = results[19]
        assert isinstance(bad, ScriptError) and (bad.code, bad.field) == ("invalid", "status"), bad
        events, messages = [], 0
        while (m := await pubsub.get_message(timeout=0.3)) is not None:
            if m["type"] == "smessage":
                events += decode_events(m["data"])
                messages += 1
        assert messages <= 2
        changed = sorted(e.to or "" for e in events if e.message["type"] == "status")
        assert changed == sorted(f"a{i}" for i in range(19))
        assert all(e.message["status"] == "Available" for e in events)
        for i in range(19):
            assert (await store.views([f"a{i}"]))[0]["status"] == "Available"
        assert (await store.views(["a19"]))[0]["status"] != "Available"
        assert await store.check() == []
    finally:
        await pubsub.aclose()


async def test_a_batched_call_publishes_its_events_as_one_message(store: Store) -> None:
    """route.lua offering 20 items publishes ONE pub/sub message holding the
    20 offers (an array-16 header past 15 events); a single event
    is still published on its own, as before."""
    pubsub = store.redis.pubsub()
    await pubsub.ssubscribe(store.keys.events_channel)

    async def published() -> list[bytes]:
        out = []
        while (m := await pubsub.get_message(timeout=0.3)) is not None:
            if m["type"] == "smessage":
                out.append(m["data"])
        return out

    try:
        for i in range(20):
            await store.conn_open(f"a{i}", f"c{i}", 3600)
            await store.set_status(f"a{i}", "Available", "", f"a{i}")
        subjects = [f"件名 {n}" for n in range(20)]
        for s in subjects:
            await store.intake_work(new_work_id(), "q", "chat", 0, {"subject": s}, {})
        before = await published()  # sign-ins and status changes: one message each
        assert len(before) == 40 and all(len(decode_events(m)) == 1 for m in before)
        assert (await store.route(["q"]))[0] == 20
        messages = await published()
        assert len(messages) == 1
        events = decode_events(messages[0])
        assert [e.message["type"] for e in events] == ["offer"] * 20
        assert sorted(e.message["subject"] for e in events) == sorted(subjects)
        assert len({e.to for e in events}) == 20
    finally:
        await pubsub.aclose()


async def test_counters_of_a_batched_call_are_written_once_per_field(store: Store, redis_server: str) -> None:
    """route.lua offering 20 items sums its counter increments and writes
    each field of `metrics` once (one HINCRBY by 20), not once per item
    (Redis's MONITOR shows the commands scripts run)."""
    for i in range(20):
        await store.conn_open(f"a{i}", f"c{i}", 3600)
        await store.set_status(f"a{i}", "Available", "", f"a{i}")
    for _ in range(20):
        await store.intake_work(new_work_id(), "q", "chat", 0, {}, {})
    metrics = store.keys.metrics
    seen: list[list[str]] = []
    watcher_client = Redis.from_url(redis_server)
    try:
        async with watcher_client.monitor() as m:

            async def watch() -> None:
                async for cmd in m.listen():
                    words = cmd["command"].split(" ")
                    if words[0] == "ECHO":
                        return
                    if len(words) > 1 and words[1] == metrics:
                        seen.append(words)

            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0.2)
            assert (await store.route(["q"]))[0] == 20
            await store.redis.echo("done")
            await asyncio.wait_for(watcher, 10)
    finally:
        await watcher_client.aclose()
    assert seen == [["HINCRBY", metrics, "offered|q|chat", "20"]]
    assert await store.redis.hget(metrics, "offered|q|chat") == b"20"


async def test_every_call_starts_afresh(store: Store) -> None:
    """The scripts are one function library, whose Lua state outlives each
    call: `enter` must empty every per-call cache. A channel added after
    the first calls (here: a center re-synced with one more) must appear in
    the agent's view, and its weight must count, in the very next call."""
    await store.conn_open("a0", "c0", 3600)
    await store.set_status("a0", "Available", "", "a0")
    assert (await store.views(["a0"]))[0]["by_channel"] == {}
    await store.intake_work(new_work_id(), "q", "chat", 0, {}, {})
    assert (await store.route(["q"]))[0] == 1
    assert (await store.views(["a0"]))[0]["by_channel"] == {"chat": 1}
    await store.sync_center(
        parse_center(
            {
                "channels": {"fax": {"weight": 7}},
                "queues": [{"name": "q", "auto_accept": False}],
                "agents": [{"id": f"a{i}", "queues": ["q"]} for i in range(20)],
            }
        )
    )
    wid = new_work_id()
    await store.intake_work(wid, "q", "fax", 0, {}, {})
    assert (await store.route(["q"]))[0] == 1
    view = (await store.views(["a0"]))[0]
    assert view["by_channel"] == {"chat": 1, "fax": 1}
    assert view["load"] == 25 + 7  # chat's default weight, then fax's
    await store.accept("a0", wid)
    await store.complete("a0", wid, "done")
    assert (await store.views(["a0"]))[0]["by_channel"] == {"chat": 1}
    assert await store.check() == []


async def test_a_completion_sent_again_as_redis_py_retries_it_answers_as_the_first(store: Store) -> None:
    """A batch of completions keeps no reply under a key made by the server:
    the same command sent again (redis-py's retry after a lost reply: the
    same arguments, the clock included) finds each item completed by its
    agent at that instant and answers as the first did, applying nothing
    twice; a call that failed fails alike, and another completion of a
    completed item is still refused."""
    offered = await _offers(store, 3)
    for aid, wid in offered.items():
        await store.accept(aid, wid)
    (a0, w0), (a1, w1), (a2, w2) = offered.items()
    r, k = store.redis, store.keys
    now = store.now_ms()
    calls = [(a0, w0, "done"), (a1, w1, "done"), (a0, w2, "done")]  # the last is not a0's
    kept = set(await r.keys(k.prefix + "ref:*"))
    first = await store.scripts.many("work_complete", k.prefix, now, calls)
    stream = await r.xlen(k.event_stream)
    counted = await r.hgetall(k.metrics)
    again = await store.scripts.many("work_complete", k.prefix, now, calls)
    assert [x[0] for x in first] == [b"ok", b"ok", b"not_yours"]
    assert [x[0] for x in again] == [x[0] for x in first]
    assert await r.xlen(k.event_stream) == stream and await r.hgetall(k.metrics) == counted
    assert set(await r.keys(k.prefix + "ref:*")) == kept
    # not a retry: another instant, or another disposition
    later = await store.scripts.many("work_complete", k.prefix, now + 1, [(a0, w0, "done")])
    other = await store.scripts.many("work_complete", k.prefix, now, [(a1, w1, "sold")])
    assert later[0][0] == other[0][0] == b"conflict"
    await store.complete(a2, w2, "done")
    assert await store.check() == []


def _intake(wid: str, queue: str = "q", channel: str = "chat", idem: str = "") -> tuple[object, ...]:
    """work_create's arguments for one item (as Store.create_work_many sends them)."""
    return (wid, queue, channel, 0, msgpack.packb({}), msgpack.packb({}), idem, 86400, "")


@pytest.mark.parametrize("n", [1, 3])
async def test_an_intake_sent_again_as_redis_py_retries_it_answers_as_the_first(store: Store, n: int) -> None:
    """An intake batch keeps no reply under a key made by the server: the
    same command sent again (redis-py's retry after a lost reply) finds the
    items it made (one EXISTS for the batch when it made none) and answers
    as the first did, making nothing twice; an item with an idempotency key
    is `created` again, not `existing`; a call that was refused is refused
    alike."""
    await _offers(store, 1)  # a0 Available, holding one offer
    r, k = store.redis, store.keys
    ids = [new_work_id() for _ in range(n)]
    calls = [_intake(w, idem=f"k-{w}" if i == 0 else "") for i, w in enumerate(ids)]
    calls.append(_intake(new_work_id(), channel="fax"))
    now = store.now_ms()
    kept = set(await r.keys(k.prefix + "ref:*"))
    first = await store.scripts.many("work_create", k.prefix, now, calls)
    stream, counted = await r.xlen(k.event_stream), await r.hgetall(k.metrics)
    again = await store.scripts.many("work_create", k.prefix, now, calls)
    assert [x[:3] for x in first[:n]] == [[b"ok", w.encode(), b"created"] for w in ids]
    assert first[n][0] == b"invalid"
    assert again == first
    assert await r.xlen(k.event_stream) == stream and await r.hgetall(k.metrics) == counted
    assert set(await r.keys(k.prefix + "ref:*")) == kept
    assert await r.zcard(k.queue_waiting("q")) == n
    assert await store.check() == []
