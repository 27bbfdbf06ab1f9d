"""Routing inside the batched calls (`Scripts.route_inline`, _lib_router.lua),
and the settings the scripts keep between calls (_lib_config.lua).

An intake routes the queue it added to, and a completion or a decline the
queues it freed an agent in, in the same script call, by the same function
as route.lua: so a center routed inline must commit exactly what a center
routed by a route.lua call right after each change commits. The kept
settings (channels, webhooks, queue settings) must follow every change of
them, and a flush.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis

from presence.center import parse_center
from presence.kpi.events import parse_events
from presence.protocol import decode_events
from presence.store import NewItem, Store, item_history, new_work_id
from presence.store.cases import sync_config, wait_figures
from presence.store.scripts import ref_key, retry_key

T0 = 1_800_000_000_000

CENTER: dict[str, Any] = {
    "queues": [
        {"name": "q", "auto_accept": True, "strategy": "least_active"},
        {"name": "v", "auto_accept": False, "priority": 5},
    ],
    "agents": [
        # chat weighs 25 units, email 10, voice 100 (nobody here can take one)
        {"id": "a0", "queues": ["q", "v"], "capacity": 50, "skills": {"fr": 3}},
        {"id": "a1", "queues": ["q"], "capacity": 25},
        {"id": "a2", "queues": ["q", "v"], "capacity": 25},
    ],
}


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> float:
        return self.ms / 1000


async def _store(redis_url: str, clock: Clock, center: dict[str, Any] = CENTER) -> Store:
    store = Store(Redis.from_url(redis_url), f"inline{uuid.uuid4().hex[:8]}", clock=clock)
    await store.sync_center(parse_center(center))
    for i in range(3):
        await store.conn_open(f"a{i}", f"c{i}", 3600)
        await store.set_status(f"a{i}", "Available", "", f"a{i}")
    return store


@pytest.fixture
async def pair(redis_server: str) -> AsyncIterator[tuple[Store, Store, set[str], Clock]]:
    """Two identical centers on one driven clock: the first routes inline
    (its queues left with more are collected), the second does not."""
    clock = Clock()
    inline, plain = await _store(redis_server, clock), await _store(redis_server, clock)
    more: set[str] = set()
    inline.scripts.route_inline(256, 512, more.update)
    yield inline, plain, more, clock
    await inline.redis.aclose()
    await plain.redis.aclose()


async def _commits(store: Store) -> list[tuple[str, ...]]:
    """Every offer and assignment of the center, in commit order."""
    out = []
    for _, ev in await store.redis.xrange(store.keys.event_stream):
        for e in parse_events(ev):
            if e.ev in ("offer", "accept"):
                out.append((e.ev, e.work, e.agent, e.queue, e.get("via")))
    return out


async def _record(store: Store, wid: str) -> tuple[dict[bytes, bytes], list[Any]]:
    """An item's record but its history fields, and its history: the
    fields are named by stream entry ids, which differ between centers
    (`item_history`)."""
    h = await store.redis.hgetall(store.keys.work(wid))
    return {f: v for f, v in h.items() if not f.startswith(b"h:")}, item_history(h, [], wid)


ITEMS = [
    # (queue, channel, priority, skills): more than the agents can hold, a
    # skill only a0 has, two queues of different priorities
    ("q", "chat", 0, {}),
    ("v", "voice", 0, {}),
    ("q", "chat", 5, {"fr": 2}),
    ("q", "email", 0, {}),
    ("v", "chat", 0, {}),
    ("q", "chat", -3, {}),
    ("q", "chat", 0, {"fr": 4}),
    ("v", "voice", 9, {}),
]


async def test_inline_routing_commits_what_route_lua_would(
    pair: tuple[Store, Store, set[str], Clock],
) -> None:
    inline, plain, more, clock = pair
    ids = [f"{i:02d}{uuid.uuid4().hex[:8]}" for i in range(len(ITEMS))]

    async def both(step: Any) -> None:
        """One change on both centers; the plain one then routes what it woke."""
        clock.ms += 7
        await step(inline)
        woke = await step(plain)
        await plain.route(sorted(set(woke or ())))

    for wid, (q, ch, prio, skills) in zip(ids, ITEMS, strict=True):

        async def create(
            s: Store, wid: str = wid, q: str = q, ch: str = ch, p: int = prio, sk: dict[str, int] = skills
        ) -> list[str]:
            await s.intake_work(wid, q, ch, p, {"subject": wid}, sk)
            return [q]

        await both(create)
        assert await _commits(inline) == await _commits(plain)
    at_intake = len(await _commits(plain))
    # completions and declines free agents: the next items go out at once
    for _ in range(4):
        held = [
            (i["agent_id"], i["work_id"], i["state"])
            for i in [await plain.get_work(w, history=False) for w in ids]
            if i and i["state"] in ("assigned", "offered")
        ]
        aid, wid, state = sorted(held)[0]
        if state == "offered":

            async def step(s: Store, aid: str = aid, wid: str = wid) -> list[str]:
                return await s.decline(aid, wid, "busy")
        else:

            async def step(s: Store, aid: str = aid, wid: str = wid) -> list[str]:
                return await s.complete(aid, wid, "done")

        await both(step)
        assert await _commits(inline) == await _commits(plain)
    # the comparison saw real routing: at intake, and after the completions
    assert 3 < at_intake < len(await _commits(plain))
    assert more <= {"q", "v"}
    for s in (inline, plain):
        assert await s.check() == []


async def test_an_intake_and_a_completion_route_in_their_own_call(
    pair: tuple[Store, Store, set[str], Clock],
) -> None:
    inline, _, more, _ = pair
    calls = inline.batched["work_complete"]
    pubsub = inline.redis.pubsub()
    await pubsub.ssubscribe(inline.keys.events_channel)
    # room for four chats: two for a0, one each for a1 and a2
    ids = [new_work_id() for _ in range(5)]
    for wid in ids:
        assert await inline.intake_work(wid, "q", "chat", 0, {}, {}) == (wid, True, "q")
    items = [await inline.get_work(w, history=False) for w in ids]
    assert [i["state"] for i in items if i] == ["assigned"] * 4 + ["queued"]
    # the completion names no queue to wake: it routed the last item itself
    holder = items[0]["agent_id"] if items[0] else ""
    before = calls.calls
    assert await inline.complete(holder, ids[0], "done") == []
    assert calls.calls == before + 1
    last = await inline.get_work(ids[4])
    assert last and last["state"] == "assigned" and last["agent_id"] == holder
    # its events went out with the completion's, as one message
    messages = []
    for _ in range(50):
        m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if m is not None:
            messages.append(list(decode_events(m["data"])))
    kinds = [[(e.message.get("type"), e.message.get("work_id")) for e in msg] for msg in messages]
    assert [("work.updated", ids[0]), ("work.assigned", ids[4])] in kinds
    assert not more
    # the history of an item routed at intake: both entries, in order
    item = await inline.get_work(ids[1])
    assert item and [h["ev"] for h in item["history"]] == ["create", "accept"]
    await pubsub.aclose()


async def test_without_inline_routing_the_calls_name_the_queues_to_wake(
    pair: tuple[Store, Store, set[str], Clock],
) -> None:
    _, plain, _, _ = pair
    wid = new_work_id()
    await plain.intake_work(wid, "q", "chat", 0, {}, {})
    assert (await plain.get_work(wid, history=False) or {})["state"] == "queued"
    assert (await plain.route(["q"]))[0] == 1
    aid = (await plain.get_work(wid, history=False) or {})["agent_id"]
    assert "q" in await plain.complete(aid, wid, "done")


async def test_kept_settings_follow_every_change(redis_server: str) -> None:
    clock = Clock()
    store = await _store(redis_server, clock)
    store.scripts.route_inline(256, 512, lambda _: None)
    r, k = store.redis, store.keys

    async def intake(q: str = "q", ch: str = "chat") -> dict[str, Any]:
        clock.ms += 1
        wid = new_work_id()
        await store.create_work_many([NewItem(wid, q, ch, 0, {})])
        item = await store.get_work(wid, history=False)
        assert item is not None
        return item

    first = await intake()
    assert first["state"] == "assigned" and first["weight"] == 25
    token = await r.get(k.settings_version)
    assert token
    # a queue's settings changed through the API: the next call reads them
    queue = parse_center(CENTER).queues["q"]
    await store.put_queue(dataclasses.replace(queue, auto_accept=False))
    assert await r.get(k.settings_version) != token
    assert (await intake())["state"] == "offered"
    # a new center file: channels and webhooks change with the restart's sync
    changed = {
        **CENTER,
        "channels": {"chat": {"weight": 5}, "sms": {"weight": 2}},
        "webhooks": [
            {"name": "crm", "url": "http://127.0.0.1:9/h", "secret": "s" * 16, "events": ["work.assigned"]}
        ],
    }
    center = parse_center(changed)
    await store.sync_center(center)
    await sync_config(store, center)
    sms = await intake("v", "sms")
    assert sms["weight"] == 2 and sms["state"] == "offered"
    await store.accept(sms["agent_id"], sms["work_id"])
    hooked = await r.xrange(k.webhook_stream("crm"))
    assert [msgpack.unpackb(e[b"h"])["type"] for _, e in hooked] == ["work.assigned"]
    # a flush takes the token with it: nothing kept from before is trusted
    await r.delete(
        *[key async for key in r.scan_iter(match=k.prefix.replace("{", "\\{").replace("}", "\\}") + "*")]
    )
    await store.sync_center(parse_center(CENTER))
    for i in range(3):
        await store.conn_open(f"a{i}", f"c{i}", 3600)
        await store.set_status(f"a{i}", "Available", "", f"a{i}")
    after = await intake()
    assert after["state"] == "assigned" and after["weight"] == 25
    assert await r.xlen(k.webhook_stream("crm")) == 0
    await r.aclose()


async def test_a_remembered_call_reads_the_token_with_its_reply(redis_server: str) -> None:
    """A remembered call reads the settings token in the MGET that looks its
    reply up (`recall`, _lib_config.lua), not with a GET of its own, and
    still sees a writer's change made between two calls: a channel's weight
    written directly, the token deleted with it as every writer does. (An
    intake made by the server keeps no reply, ANSWERS_ITS_RETRY: it reads
    the token alone; under a client's ref it keeps one.)"""
    clock = Clock()
    store = await _store(redis_server, clock)
    store.scripts.route_inline(256, 512, lambda _: None)
    r, k = store.redis, store.keys
    refs = iter(range(1, 100))

    async def intake(kept: bool = True) -> dict[str, Any]:
        clock.ms += 1
        wid = new_work_id()
        with retry_key(ref_key("a0", next(refs)) if kept else None):
            await store.create_work_many([NewItem(wid, "q", "chat", 0, {})])
        item = await store.get_work(wid, history=False)
        assert item is not None
        return item

    assert (await intake())["weight"] == 25
    await r.config_resetstat()
    assert (await intake())["weight"] == 25
    stats = await r.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1 and "cmdstat_get" not in stats
    await r.config_resetstat()
    assert (await intake(kept=False))["weight"] == 25
    stats = await r.info("commandstats")
    assert stats["cmdstat_get"]["calls"] == 1 and "cmdstat_mget" not in stats
    await r.hset(k.channels, "chat", msgpack.packb({"weight": 5}))
    await r.delete(k.settings_version)
    assert (await intake())["weight"] == 5
    await r.aclose()


async def test_kept_rules_and_hours_follow_their_writers(redis_server: str) -> None:
    """The retention rule and a queue's plan of hours are kept with the
    settings too: a re-sync with another retention, and the hourly renewal
    of the plans (queue_plan.lua), take effect on the next call."""
    clock = Clock()
    store = await _store(redis_server, clock)
    store.scripts.route_inline(256, 512, lambda _: None)
    r, k = store.redis, store.keys

    async def life(q: str) -> tuple[int, dict[str, str]]:
        """An item through intake, (accept,) completion: its TTL, and its accept event."""
        clock.ms += 1
        wid = new_work_id()
        await store.create_work_many([NewItem(wid, q, "chat", 0, {})])
        item = await store.get_work(wid, history=False)
        assert item is not None and item["agent_id"]
        clock.ms += 1000
        if item["state"] == "offered":
            await store.accept(item["agent_id"], wid)
        await store.complete(item["agent_id"], wid, "done")
        accept = [
            {"ev": e.ev, "agent": e.agent, **e.extra}
            for _, raw in await r.xrange(k.event_stream)
            for e in parse_events(raw)
            if e.ev == "accept" and e.work == wid
        ]
        return await r.pttl(k.work(wid)), accept[0]

    ttl, accept = await life("v")
    assert 89 * 86_400_000 < ttl <= 90 * 86_400_000 and "paused" not in accept
    # closed since before the item came (the plan: closed at the start, from T0)
    assert await store.scripts.call("queue_plan", k.prefix, clock.ms, "v", msgpack.packb([0, T0]))
    _, accept = await life("v")
    assert accept["paused"] == "1000"
    await store.sync_center(parse_center(CENTER), retention_days=0)
    ttl, _ = await life("q")
    assert ttl == -1
    await store.sync_center(parse_center(CENTER), retention_days=2)
    ttl, _ = await life("q")
    assert 86_400_000 < ttl <= 2 * 86_400_000
    await r.aclose()


async def test_a_read_only_call_reads_the_settings_without_a_token(redis_server: str) -> None:
    """A read-only function cannot set a new token after a writer deleted it
    (Redis refuses its writes): it reads the settings for itself, and the
    next writer sets the token."""
    clock = Clock()
    store = await _store(redis_server, clock)
    r, k = store.redis, store.keys
    await r.delete(k.settings_version)
    views = await store.views(["a0"])
    assert [v["agent_id"] for v in views] == ["a0"] and await r.get(k.settings_version) is None
    await store.set_status("a0", "Away", "", "a0")
    assert await r.get(k.settings_version)
    await r.aclose()


async def test_a_queues_expected_wait_counts_the_latest_fifty_handle_times(redis_server: str) -> None:
    """The list of recent handle times is trimmed only now and then (every
    451 pushes): it may hold more than 50, and the expected wait reads the
    latest 50."""
    clock = Clock()
    store = await _store(redis_server, clock)
    store.scripts.route_inline(256, 512, lambda _: None)
    for i in range(1, 71):
        clock.ms += 1
        wid = new_work_id()
        await store.create_work_many([NewItem(wid, "q", "chat", 0, {})])
        item = await store.get_work(wid, history=False)
        assert item is not None and item["state"] == "assigned"
        clock.ms += i  # handled for i ms
        await store.complete(item["agent_id"], wid, "done")
    assert await store.redis.llen(store.keys.queue_handle("q")) == 70
    for i in range(3):
        await store.set_status(f"a{i}", "Away", "", f"a{i}")
    wid = new_work_id()
    await store.create_work_many([NewItem(wid, "q", "chat", 0, {})])
    figures = await wait_figures(store, wid)
    assert figures is not None
    assert (figures.samples, figures.handle_ms) == (50, sum(range(21, 71)))
    await store.redis.aclose()


async def test_a_batch_of_intakes_routed_in_its_call_leaves_what_route_lua_would(
    pair: tuple[Store, Store, set[str], Clock],
) -> None:
    """New items of one call join their waiting set only if the router did
    not take them (_lib_queue.lua, `deferred`): the commits, the waiting
    sets (members and scores) and the invariants are those of a center
    routed by route.lua after the same batch."""
    inline, plain, _, clock = pair
    for round_ in range(3):
        clock.ms += 11
        batch = [
            (f"{round_}{i:02d}{uuid.uuid4().hex[:6]}", q, ch, prio)
            for i, (q, ch, prio, _) in enumerate(ITEMS[: 3 + 2 * round_])
        ]
        for s in (inline, plain):
            await s.create_work_many([NewItem(w, q, ch, p, {"subject": w}) for w, q, ch, p in batch])
        await plain.route(["q", "v"])
        assert await _commits(inline) == await _commits(plain)
        # and each new item's record, written once when routed at once
        for w, *_ in batch:
            assert await _record(inline, w) == await _record(plain, w)
        for q in ("q", "v"):
            waiting = [
                await s.redis.zrange(s.keys.queue_waiting(q), 0, -1, withscores=True) for s in (inline, plain)
            ]
            assert waiting[0] == waiting[1]
    # some waited: the comparison covered items the router did not take
    assert await plain.redis.zcard(plain.keys.queue_waiting("q")) > 0
    for s in (inline, plain):
        assert await s.check() == []


async def test_an_intake_into_a_queue_that_borrows_reads_its_borrowed_items(
    pair: tuple[Store, Store, set[str], Clock],
) -> None:
    """A new item is kept out of its waiting set, and the router skips the
    queue's borrowed set, only when one EXISTS found nothing waiting and
    nothing borrowed: with an overflowed item of `v` borrowed by `q` (its
    priority ahead of the new item's), the intake's own routing gives q's
    one agent the borrowed item, as route.lua after the intake does."""
    inline, plain, _, clock = pair
    borrowed_id, new_id = f"b{uuid.uuid4().hex[:8]}", f"n{uuid.uuid4().hex[:8]}"
    for s in (inline, plain):
        for aid in ("a0", "a2"):
            await s.set_status(aid, "Away", "", aid)
        clock.ms += 1
        await s.create_work_many([NewItem(borrowed_id, "v", "chat", 9, {})])
        k = s.keys
        await s.redis.hset(k.work(borrowed_id), "ovf", "q")
        score = float(await s.redis.hget(k.work(borrowed_id), "score") or 0)
        await s.redis.zadd(k.queue_borrowed("q"), {borrowed_id: score})
        assert await s.check() == []
    clock.ms += 1
    for s in (inline, plain):
        await s.create_work_many([NewItem(new_id, "q", "chat", 0, {})])
    await plain.route(["q"])
    assert await _commits(inline) == await _commits(plain)
    taken = await inline.get_work(borrowed_id, history=False)
    assert taken is not None and taken["agent_id"] == "a1"
    for s in (inline, plain):
        assert await s.redis.zrange(s.keys.queue_waiting("q"), 0, -1) == [new_id.encode()]
        assert await s.check() == []


async def test_a_batch_of_intakes_nobody_can_take_waits_whole(
    pair: tuple[Store, Store, set[str], Clock],
) -> None:
    """With nobody ready the router reads no queue: every new item of the
    call still joins its waiting set, in the set's order."""
    inline, plain, _, clock = pair
    for s in (inline, plain):
        for i in range(3):
            await s.set_status(f"a{i}", "Away", "", f"a{i}")
    clock.ms += 11
    batch = [(f"{i:02d}{uuid.uuid4().hex[:6]}", q, ch, prio) for i, (q, ch, prio, _) in enumerate(ITEMS)]
    for s in (inline, plain):
        await s.create_work_many([NewItem(w, q, ch, p, {"subject": w}) for w, q, ch, p in batch])
    for w, *_ in batch:
        item = await _record(inline, w)
        assert item[0] and item == await _record(plain, w)
    for q in ("q", "v"):
        waiting = [
            await s.redis.zrange(s.keys.queue_waiting(q), 0, -1, withscores=True) for s in (inline, plain)
        ]
        assert waiting[0] == waiting[1] and waiting[0]
    for s in (inline, plain):
        assert await s.check() == []


async def test_an_intake_alone_into_a_queue_with_items_waiting_routes_the_oldest_first(
    redis_server: str,
) -> None:
    """An intake alone in its call reads its item and its queue's waiting and
    borrowed sets in one EXISTS (`made_before`): a queue with an item
    waiting is not taken for empty, so the router reads that item too, and
    the oldest goes first."""
    clock = Clock()
    store = await _store(redis_server, clock)
    r, k = store.redis, store.keys
    # 3 agents, room for 4 chats: 4 older items, made without routing, wait
    older = [new_work_id() for _ in range(4)]
    await store.create_work_many([NewItem(w, "q", "chat", 0, {}) for w in older])
    assert await r.zcard(k.queue_waiting("q")) == 4
    store.scripts.route_inline(256, 512, lambda _: None)
    clock.ms += 1
    new = new_work_id()
    await store.create_work_many([NewItem(new, "q", "chat", 0, {})])
    states = {w: (await store.get_work(w, history=False) or {})["state"] for w in [*older, new]}
    assert [states[w] for w in older] == ["assigned"] * 4 and states[new] == "queued", states
    assert await r.zrange(k.queue_waiting("q"), 0, -1) == [new.encode()]
    assert await store.check() == []
    await r.aclose()


@pytest.mark.parametrize("declined", [False, True])
async def test_a_completion_reads_its_records_and_its_queue_in_one_exists(
    redis_server: str, declined: bool
) -> None:
    """A completion routed in its call reads the item's rare records and its
    queue's waiting and borrowed sets in one EXISTS (`retain`, `idle_read`):
    in a quiet queue that is its only EXISTS; with an item waiting, the freed
    agent gets it in the same call; a record the item has (a decline) still
    takes the retention TTL."""
    clock = Clock()
    # a1 alone serves q, with room for one chat
    others = [{**a, "queues": ["v"]} for a in (CENTER["agents"][0], CENTER["agents"][2])]
    store = await _store(redis_server, clock, {**CENTER, "agents": [CENTER["agents"][1], *others]})
    store.scripts.route_inline(256, 512, lambda _: None)
    r, k = store.redis, store.keys
    first, second = new_work_id(), new_work_id()
    await store.create_work_many([NewItem(first, "q", "chat", 0, {})])
    if declined:
        await r.sadd(k.work_declined(first), "someone")
    await r.config_resetstat()
    clock.ms += 1
    await store.complete("a1", first, "done")
    stats = await r.info("commandstats")
    assert stats["cmdstat_exists"]["calls"] == (2 if declined else 1)
    if declined:
        assert await r.pttl(k.work_declined(first)) > 0
    # a1 (room for one chat) holds the next one; a third waits for it
    await store.create_work_many([NewItem(second, "q", "chat", 0, {})])
    third = new_work_id()
    await store.create_work_many([NewItem(third, "q", "chat", 0, {})])
    assert (await store.get_work(third, history=False) or {})["state"] == "queued"
    clock.ms += 1
    await store.complete("a1", second, "done")
    assert (await store.get_work(third, history=False) or {})["agent_id"] == "a1"
    assert await store.check() == []
    await r.aclose()


async def test_a_status_change_routes_in_its_own_call(
    pair: tuple[Store, Store, set[str], Clock],
) -> None:
    """A change to Available routes the agent's queues in its own call: with
    nothing waiting it names no queue to wake (the dispatcher makes no
    route.lua call for it), and an item waiting is offered by the change
    itself; a change away from Available re-offers what the agent had open.
    Each commits what route.lua would right after the same change."""
    inline, plain, more, clock = pair
    calls = inline.batched["agent_status"]

    async def both(aid: str, status: str) -> list[str]:
        clock.ms += 7
        woke = await inline.set_status(aid, status, "", aid)
        await plain.route(sorted(await plain.set_status(aid, status, "", aid)))
        assert await _commits(inline) == await _commits(plain)
        return woke

    for aid in ("a0", "a1", "a2"):
        assert await both(aid, "Away") == []
    before = calls.calls
    assert await both("a1", "Available") == []
    assert calls.calls == before + 1 and not more
    assert await both("a1", "Away") == []
    # everyone away: an intake of queue v (a0 and a2) waits
    wid = new_work_id()
    for s in (inline, plain):
        await s.intake_work(wid, "v", "chat", 0, {}, {})
    assert (await inline.get_work(wid, history=False) or {})["state"] == "queued"
    assert await both("a2", "Available") == []
    item = await inline.get_work(wid, history=False)
    assert item and (item["state"], item["agent_id"]) == ("offered", "a2")
    # a2 goes away with the offer open: it rings a0 as soon as a0 is back
    assert await both("a2", "Away") == []
    assert (await inline.get_work(wid, history=False) or {})["state"] == "queued"
    assert await both("a0", "Available") == []
    item = await inline.get_work(wid, history=False)
    assert item and (item["state"], item["agent_id"]) == ("offered", "a0")
    assert not more
    for s in (inline, plain):
        assert await s.check() == []
