"""An item's own history: kept in its record, one field ``h:<stream entry
id>`` per event-stream entry (an intake and its assignment recorded as one
entry share one field, its two entries concatenated); its entries leave out
the item's id, which the key names, and every reader puts it back, for the
entries written so and for those that name it (written before). An item
written before the history moved into the record has its older entries in
the list ``work:<id>:history``: every reader gives those first.

Readers: `Store.get_work` (GET /api/v1/work/{id}), `archive.records`, the
KPI readers' `item_histories`, and the scripts' `history_of` (the history
an offer after a hand-off carries). And the item's and the agent's records
write no field whose absence reads the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgpack
from redis.asyncio import Redis

from presence.center import parse_center
from presence.kpi.events import Event
from presence.kpi.history import item_histories, item_times
from presence.store import NewItem, Store, archive, new_work_id
from presence.store.scripts import helpers

T0 = 1_800_000_000_000

CENTER: dict[str, Any] = {
    "queues": [{"name": "q", "auto_accept": True}],
    "agents": [{"id": "a0", "queues": ["q"], "capacity": 100}],
}

# the scripts' own reader, as a stand-alone EVAL script of the shared helpers
HISTORY_OF = (
    "local __keys, __args = KEYS, ARGV\n"
    f"{helpers()}\n"
    "enter(__keys, __args)\n"
    "return cmsgpack.pack(history_of(__args[2]))"
)


async def available_agent(redis_url: str, tag: str, clock: Callable[[], float]) -> Store:
    """A store on its own prefix (`tag` and a random suffix) with CENTER
    synced, `a0` connected and Available, and routing inline on each write."""
    store = Store(Redis.from_url(redis_url), f"{tag}{uuid.uuid4().hex[:8]}", clock=clock)
    await store.sync_center(parse_center(CENTER))
    await store.conn_open("a0", "c0", 3600)
    await store.set_status("a0", "Available", "", "a0")
    store.scripts.route_inline(256, 512, lambda _: None)
    return store


# when `completed_at_once`'s item is completed
DONE = T0 + 5


async def completed_at_once(redis_url: str, tag: str) -> tuple[Store, str]:
    """A store of `available_agent` and an item a0 was given by its intake
    at T0 and completed ("done") at DONE."""
    now = T0
    store = await available_agent(redis_url, tag, lambda: now / 1000)
    wid = new_work_id()
    await store.create_work_many([NewItem(wid, "q", "chat", 0, {})])
    now = DONE
    await store.complete("a0", wid, "done")
    return store, wid


async def test_entries_leave_the_item_out_and_every_reader_puts_it_back(redis_server: str) -> None:
    store, wid = await completed_at_once(redis_server, "hist")
    r, k = store.redis, store.keys

    rec = await r.hgetall(k.work(wid))
    fields = sorted(
        (f for f in rec if f.startswith(b"h:")), key=lambda f: [int(x) for x in f[2:].split(b"-")]
    )
    assert len(fields) == 2, rec  # the intake and its assignment: one stream entry
    raw: list[Any] = []
    for f in fields:
        u = msgpack.Unpacker(raw=False)
        u.feed(rec[f])
        raw.extend(u)
    # written short (`history_entry` in _lib_core.lua): `e` for `ev`, `ts` as
    # `t`, its difference from the field's millisecond (this test's clock is
    # not Redis's), the accept without the create's queue, channel and ts
    assert [e["e"] for e in raw] == ["create", "accept", "complete"]
    assert all("work" not in e and "ev" not in e and "ts" not in e for e in raw)
    assert [int(f[2:].split(b"-")[0]) + raw[i]["t"] for i, f in ((0, fields[0]), (2, fields[1]))] == [
        T0,
        T0 + 5,
    ]
    assert raw[1] == {"e": "accept", "a": "a0", "v": "auto"}
    assert not await r.exists(k.work_history(wid))
    # entries as written before the history moved into the record: the list,
    # older than any field, one entry naming its item and one not
    await r.rpush(
        k.work_history(wid),
        msgpack.packb({"ev": "note", "ts": T0 - 2, "work": wid, "agent": "a0"}),
        msgpack.packb({"ev": "note", "ts": T0 - 1, "agent": "a0"}),
        # and one an older server appended since (a rolling upgrade): by ts, last
        msgpack.packb({"ev": "csat", "ts": DONE + 1, "agent": "a0"}),
    )

    evs = ["note", "note", "create", "accept", "complete", "csat"]
    item = await store.get_work(wid)
    assert item is not None
    assert [h["ev"] for h in item["history"]] == evs
    # every reader gives the entries back with the stream entry's names
    assert item["history"][2:5] == [
        {"ev": "create", "queue": "q", "channel": "chat", "priority": 0, "ts": T0, "work": wid},
        {
            "ev": "accept",
            "queue": "q",
            "channel": "chat",
            "agent": "a0",
            "via": "auto",
            "ts": T0,
            "work": wid,
        },
        {
            "ev": "complete",
            "queue": "q",
            "channel": "chat",
            "agent": "a0",
            "by": "agent",
            "disposition": "done",
            "ts": T0 + 5,
            "work": wid,
        },
    ]
    assert all(h["work"] == wid for h in item["history"])
    [whole] = await archive.records(store, [wid])
    assert [(h["ev"], h["work"]) for h in whole["work"]["history"]] == [(e, wid) for e in evs]
    events = (await item_histories(store, [wid]))[wid]
    assert [(e.ev, e.work) for e in events] == [(e, wid) for e in evs]
    assert events[4].agent == "a0" and events[4].get("disposition") == "done"
    got = msgpack.unpackb(await r.eval(HISTORY_OF, 1, k.prefix, DONE, wid), raw=False)
    assert [(h["ev"], h["work"]) for h in got] == [(e, wid) for e in evs]
    assert got[2:5] == item["history"][2:5]
    await r.aclose()


async def test_history_fields_written_before_the_short_entries_read_as_they_are(redis_server: str) -> None:
    """A `h:` field written by the version before the short entries (a
    rolling upgrade, or an item kept from before): its entries have `ev`
    and every name in full, and every reader takes them as they are, in the
    order of the fields, beside short ones."""
    store, wid = await completed_at_once(redis_server, "histold")
    r, k = store.redis, store.keys
    # as the version before wrote them: a create+accept field, then a note
    # (their fields older than any of this run: their entries name their own ts)
    old_create = {"ev": "create", "queue": "q", "channel": "chat", "priority": 0, "ts": T0 - 10}
    old_accept = {
        "ev": "accept",
        "queue": "q",
        "channel": "chat",
        "agent": "a9",
        "via": "auto",
        "ts": T0 - 10,
    }
    old_note = {"ev": "note", "ts": T0 - 3, "author": "a9", "queue": "q", "channel": "chat"}
    await r.hset(
        k.work(wid),
        mapping={
            "h:1-0": msgpack.packb(old_create) + msgpack.packb(old_accept),
            "h:2-0": msgpack.packb(old_note),
        },
    )
    want = [{**e, "work": wid} for e in (old_create, old_accept, old_note)]
    item = await store.get_work(wid)
    assert item is not None
    assert item["history"][:3] == want
    assert [h["ev"] for h in item["history"][3:]] == ["create", "accept", "complete"]
    [whole] = await archive.records(store, [wid])
    assert whole["work"]["history"] == item["history"]
    events = (await item_histories(store, [wid]))[wid]
    assert [(e.ev, e.agent) for e in events[:3]] == [("create", ""), ("accept", "a9"), ("note", "")]
    got = msgpack.unpackb(await r.eval(HISTORY_OF, 1, k.prefix, DONE, wid), raw=False)
    assert got == item["history"]
    await r.aclose()


async def test_records_leave_out_what_reads_as_none_and_clear_what_was_set(redis_server: str) -> None:
    """A new item's record has no `expires` and, without an idempotency key,
    no `idem` (absent reads as none); an auto-assignment writes no `expires`
    and resets an agent's `missed` only when it is not 0 already; the end of
    an item clears a deadline it had (wrap-up) and writes none it had not."""
    ms = T0
    store = await available_agent(redis_server, "lean", lambda: ms / 1000)
    r, k = store.redis, store.keys
    await r.hset(k.agent("a0"), "missed", 2)

    first, second = new_work_id(), new_work_id()
    await store.create_work_many([NewItem(first, "q", "chat", 0, {})])
    rec = await r.hgetall(k.work(first))
    assert rec[b"state"] == b"assigned" and b"expires" not in rec and b"idem" not in rec
    assert await r.hget(k.agent("a0"), "missed") == b"0"
    await store.create_work_many([NewItem(second, "q", "chat", 0, {}, idempotency_key="crm-1")])
    assert await r.hget(k.work(second), "idem") == b"crm-1"

    ms += 10
    await store.complete("a0", first, "done")
    rec = await r.hgetall(k.work(first))
    assert rec[b"state"] == b"completed" and b"expires" not in rec
    deadline = await store.wrapup("a0", second)
    assert deadline > 0 and await r.hget(k.work(second), "expires") == str(deadline).encode()
    await store.complete("a0", second, "done")
    assert await r.hget(k.work(second), "expires") == b"0"
    for wid in (first, second):
        item = await store.get_work(wid)
        assert item is not None and "expires_at" not in item and item["state"] == "completed"
    assert await store.check() == []
    await r.aclose()


async def test_records_leave_out_their_id_and_no_skills_and_readers_put_the_id_back(
    redis_server: str,
) -> None:
    """A new item's record leaves out `id` (its key names it), `req` when
    it needs no skills and `priority` when it is 0; GET of the item, the
    agent's snapshot and the archive put the id back, and a record written
    before (with `id`) reads as it did. An item that needs skills, or has a
    priority, keeps them."""
    ms = T0
    store = await available_agent(redis_server, "noid", lambda: ms / 1000)
    r, k = store.redis, store.keys
    plain, skilled, old = new_work_id(), new_work_id(), new_work_id()
    await store.create_work_many(
        [NewItem(plain, "q", "chat", 0, {}), NewItem(skilled, "q", "chat", 5, {}, skills={"fr": 1})]
    )
    rec = await r.hgetall(k.work(plain))
    assert rec[b"state"] == b"assigned" and not {b"id", b"req", b"priority"} & set(rec)
    # a0 has no French: the item waits, with its skills
    assert await r.hget(k.work(skilled), "state") == b"queued"
    assert msgpack.unpackb(await r.hget(k.work(skilled), "req")) == {"fr": 1}
    assert await r.hget(k.work(skilled), "priority") == b"5"
    assert (await store.get_work(skilled) or {})["priority"] == 5
    # a record as written before: with its id and an empty `req`
    await store.create_work_many([NewItem(old, "q", "chat", 0, {})])
    await r.hset(k.work(old), mapping={"id": old, "req": msgpack.packb({})})

    for wid in (plain, old):
        item = await store.get_work(wid)
        assert item is not None and item["work_id"] == wid and item["state"] == "assigned"
        assert item["priority"] == 0
        assert (await store.get_work(wid, history=False) or {})["work_id"] == wid
    _, _, work = await store.agent_snapshot("a0")
    assert sorted(i["work_id"] for i in work) == sorted([plain, old])
    _, held = await store.agent_items("a0")
    assert sorted(i["work_id"] for i in held) == sorted([plain, old])
    whole = await archive.records(store, [plain, old])
    assert [w["work"]["work_id"] for w in whole] == [plain, old]
    assert await store.check() == []
    await r.aclose()


async def test_work_in_hand_of_before_moves_into_the_field_and_stale_ids_leave(redis_server: str) -> None:
    """An agent's work in hand is its field `w`: an agent written before has
    it in the set `agent:<id>:work`, which every reader adds; a rolling
    upgrade's older server ends an item with an SREM of that set, leaving the
    id in the field. `repair_hands` (each start) moves the set into the field
    and takes the stale id out."""
    ms = T0
    store = await available_agent(redis_server, "hand", lambda: ms / 1000)
    r, k = store.redis, store.keys
    old, new, ended = new_work_id(), new_work_id(), new_work_id()
    await store.create_work_many([NewItem(w, "q", "chat", 0, {}) for w in (old, new, ended)])
    assert sorted(msgpack.unpackb(await r.hget(k.agent("a0"), "w"))) == sorted([old, new, ended])
    # `old` as the version before held it: in the set
    await r.hset(k.agent("a0"), "w", msgpack.packb([new, ended]))
    await r.sadd(k.agent_work("a0"), old)
    assert sorted(i["work_id"] for i in (await store.agent_items("a0"))[1]) == sorted([old, new, ended])
    assert await store.check() == []
    # `ended` ended by an older server: completed, its id left in the field
    await store.complete("a0", ended, "done")
    await r.hset(k.agent("a0"), "w", msgpack.packb([new, ended]))
    assert any("is in a0's work in hand" in b for b in await store.check())
    assert await store.repair_hands() == 1
    assert sorted(msgpack.unpackb(await r.hget(k.agent("a0"), "w"))) == sorted([old, new])
    assert not await r.exists(k.agent_work("a0"))
    assert await store.check() == []
    # the set's item leaves the agent as any other
    ms += 5
    await store.complete("a0", old, "done")
    assert msgpack.unpackb(await r.hget(k.agent("a0"), "w")) == [new]
    assert await store.repair_hands() == 0
    await r.aclose()


async def test_an_item_assigned_by_its_intake_has_its_offer_and_accept_at_its_creation(
    redis_server: str,
) -> None:
    """An intake its own call assigns writes `at`, not `offered_at` and
    `accepted_at` (both its `created`): GET of the item, the KPI readers'
    accept times and the completion's handle time read them as `created`;
    a record written before, with the two fields, reads as it did."""
    ms = T0
    store = await available_agent(redis_server, "at", lambda: ms / 1000)
    r, k = store.redis, store.keys
    wid = new_work_id()
    await store.create_work_many([NewItem(wid, "q", "chat", 0, {})])
    rec = await r.hgetall(k.work(wid))
    assert b"at" in rec and b"offered_at" not in rec and b"accepted_at" not in rec, rec
    item = await store.get_work(wid)
    assert item is not None
    assert (item["created"], item["offered_at"], item["accepted_at"]) == (T0, T0, T0)
    ms += 7
    await store.complete("a0", wid, "done")
    assert await r.lrange(k.queue_handle("q"), 0, -1) == [b"7"]  # from its accept, at T0
    assert await store.check() == []
    # as the version before wrote an auto-assigned item: both fields, no `at`
    old = new_work_id()
    await r.hset(
        k.work(old),
        mapping={
            "queue": "q",
            "channel": "chat",
            "state": "completed",
            "created": T0 - 100,
            "offered_at": T0 - 50,
            "accepted_at": T0 - 40,
        },
    )
    item = await store.get_work(old)
    assert item is not None and (item["offered_at"], item["accepted_at"]) == (T0 - 50, T0 - 40)
    done = [Event("complete", ms, work=w, agent="a0", queue="q", channel="chat") for w in (wid, old)]
    _, accepts = await item_times(store, done)
    assert accepts == {wid: T0, old: T0 - 40}
    await r.aclose()
