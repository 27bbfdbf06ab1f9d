"""Generated centers in a real Redis, for the routing oracle
(``tests/integration/test_policy_vs_lua.py``).

A `CenterSpec` is plain data (Hypothesis draws and shrinks it). `build`
makes it real through the store's own scripts, with a driven clock: the
center file, agents signing in (idle since the moment each became
available), work put in their hands, statuses and sockets, waiting items
with priorities, ages, skills, declines and missed offers, and one
escalation pass (overflow and skill relaxation, ``queue_escalate.lua``)
after the early items have waited. `snapshot` reads back what route.lua
will see, as a `presence.router.policy.Snapshot`, and `lua_route` makes one
route.lua call and returns what it committed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.asyncio import Redis

from presence.center import parse_center
from presence.kpi.events import parse_events
from presence.router.policy import (
    AgentState,
    ItemState,
    QueueState,
    Snapshot,
    ready_index,
    wait_score,
)
from presence.store import NewItem, Store
from presence.store import cases as case_store
from presence.store.scripts import ScriptError

# the queue whose items are pushed to agents to put work in their hands: no
# member, never served
PREP = "prep"
START = 1_700_000_000.0


class Clock:
    """The store's clock, in seconds; only the test moves it."""

    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: int) -> None:
        # in whole milliseconds, so stored times are exact
        self.t = round(self.t * 1000 + ms) / 1000


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    weight: int
    cap: int


@dataclass(frozen=True)
class QueueSpec:
    name: str
    strategy: str
    priority: int
    auto_accept: bool = False
    overflow_to: str = ""
    overflow_after: float = 0.0
    overflow_when_unstaffed: bool = False
    # (after seconds, lower levels by, drop skills)
    relax: tuple[tuple[float, int, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class WorkSpec:
    """An item put in an agent's hands before routing: pushed, then left
    offered, accepted, in wrap-up, or completed (which makes the agent idle
    since then)."""

    channel: str
    fate: str  # offered | assigned | wrapup | completed


@dataclass(frozen=True)
class AgentSpec:
    id: str
    capacity: int
    skills: dict[str, int]
    queues: tuple[str, ...]
    status: str = "Available"
    connected: bool = True
    work: tuple[WorkSpec, ...] = ()
    # ms on the clock before it signs in (0: the same ms as the one before)
    tick: int = 1


@dataclass(frozen=True)
class ItemSpec:
    queue: str
    channel: str
    priority: int = 0
    skills: dict[str, int] | None = None
    # ms on the clock before it arrives
    tick: int = 1
    # orders items that arrive in the same ms (by id)
    key: int = 0
    declined: tuple[str, ...] = ()
    missed_by: str = ""
    # arrives after the escalation pass (so never overflowed or relaxed by it)
    late: bool = False
    # a block of this many identical items, arriving together
    count: int = 1


@dataclass(frozen=True)
class CenterSpec:
    channels: tuple[ChannelSpec, ...]
    queues: tuple[QueueSpec, ...]
    agents: tuple[AgentSpec, ...]
    items: tuple[ItemSpec, ...]
    # ms the early items wait before the escalation pass
    wait_ms: int = 0
    # the call: queues named (repeats and unknown names included; none: all
    # of `queues`), budget, scan
    served: tuple[str, ...] = ()
    budget: int = 256
    scan: int = 512

    def queue(self, name: str) -> QueueSpec | None:
        return next((q for q in self.queues if q.name == name), None)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def center_body(cid: str, spec: CenterSpec) -> dict[str, Any]:
    queues: list[dict[str, Any]] = []
    for q in spec.queues:
        body: dict[str, Any] = {
            "name": q.name,
            "strategy": q.strategy,
            "priority": q.priority,
            "auto_accept": q.auto_accept,
        }
        if q.overflow_to:
            body |= {
                "overflow_to": q.overflow_to,
                "overflow_after": q.overflow_after,
                "overflow_when_unstaffed": q.overflow_when_unstaffed,
            }
        if q.relax:
            body["relax"] = [{"after": a, "lower": low, "drop": list(d)} for a, low, d in q.relax]
        queues.append(body)
    queues.append({"name": PREP, "priority": -1000})
    return {
        "center": {"id": cid},
        "channels": {c.name: {"weight": c.weight, "cap": c.cap} for c in spec.channels},
        "queues": queues,
        "agents": [
            {"id": a.id, "capacity": a.capacity, "skills": a.skills, "queues": list(a.queues)}
            for a in spec.agents
        ],
    }


async def push(store: Store, wid: str, agent_id: str, mode: str = "push") -> tuple[str, list[str]]:
    """A supervisor's push (or reassign, or an agent's transfer) of `wid` to `agent_id`."""
    return await case_store.transfer(store, wid, mode, "supervisor:oracle", to_agent=agent_id)


async def escalate(store: Store) -> list[str]:
    reply = await store.scripts.raw("queue_escalate", store.keys.prefix, store.now_ms(), 100_000)
    return [_s(q) for q in reply]


async def sign_in(store: Store, clock: Clock, a: AgentSpec, serial: itertools.count[int]) -> None:
    """Sign `a` in and bring it to the spec's state: work in hand, status, socket."""
    conn = f"c-{a.id}"
    clock.advance_ms(a.tick)
    await store.conn_open(a.id, conn, 3600)
    await store.set_status(a.id, "Available", "", a.id)
    for w in a.work:
        wid = f"h{next(serial):05d}"
        await store.intake_work(wid, PREP, w.channel, 0, {}, {})
        try:
            await push(store, wid, a.id)
        except ScriptError:
            # no room or at the channel's cap: the item stays in PREP, unseen
            continue
        if w.fate == "offered":
            continue
        await store.accept(a.id, wid)
        if w.fate == "wrapup":
            await store.wrapup(a.id, wid)
        elif w.fate == "completed":
            clock.advance_ms(1)
            await store.complete(a.id, wid, "done")
    if a.status != "Available":
        # open offers are rescinded (back to PREP); work in hand stays
        await store.set_status(a.id, a.status, "", a.id)
    if not a.connected:
        await store.conn_close(a.id, conn, 3600)


async def build(store: Store, clock: Clock, cid: str, spec: CenterSpec) -> dict[str, ItemSpec]:
    """Make `spec` real in Redis, through the store's scripts; the spec of each item made."""
    await store.sync_center(parse_center(center_body(cid, spec)))
    serial = itertools.count()
    for a in spec.agents:
        await sign_in(store, clock, a, serial)
    r, k = store.redis, store.keys
    made: dict[str, ItemSpec] = {}
    for late in (False, True):
        for it in (i for i in spec.items if i.late == late):
            clock.advance_ms(it.tick)
            n = next(serial)
            ids = [f"w{it.key:02d}{n:04d}{j:04d}" for j in range(it.count)]
            if len(ids) == 1:
                await store.intake_work(ids[0], it.queue, it.channel, it.priority, {}, it.skills or {})
            else:
                calls = [NewItem(wid, it.queue, it.channel, it.priority, {}, it.skills or {}) for wid in ids]
                for created in await store.create_work_many(calls):
                    assert not isinstance(created, ScriptError), created
            for wid in ids:
                made[wid] = it
                # as a decline and a timed-out offer leave them
                if it.declined:
                    await r.sadd(k.work_declined(wid), *it.declined)
                if it.missed_by:
                    await r.hset(k.work(wid), "missed_by", it.missed_by)
        if not late:
            clock.advance_ms(spec.wait_ms)
            await escalate(store)
    return made


async def snapshot(store: Store, queues: Sequence[str]) -> Snapshot:
    """What route.lua sees of `queues`: every agent, and the items waiting
    there (overflowed ones with the queue that borrows them), read in one
    round trip. Asserts what the model takes for granted: a waiting item's
    score is its wait score, and it is borrowed by at most its `ovf` queue."""
    r, k = store.redis, store.keys
    aids = sorted(_s(a) for a in await r.smembers(k.agents))
    pipe = r.pipeline(transaction=False)
    for aid in aids:
        pipe.hgetall(k.agent(aid))
    pipe.hgetall(k.channels)
    for q in queues:
        pipe.hget(k.queue(q), "strategy")
        pipe.zscore(k.queues, q)
        pipe.zrange(k.queue_waiting(q), 0, -1, withscores=True)
        pipe.zrange(k.queue_borrowed(q), 0, -1)
    replies = await pipe.execute()
    agent_hashes, channel_hash = replies[: len(aids)], replies[len(aids)]
    caps = {_s(ch): int(msgpack.unpackb(v).get("cap", 0)) for ch, v in channel_hash.items()}
    agents = []
    for aid, raw in zip(aids, agent_hashes, strict=True):
        h = {_s(f): v for f, v in raw.items()}
        agents.append(
            AgentState(
                id=aid,
                capacity=int(h["cap"]),
                load=int(h.get("load", 0)),
                items=int(h.get("n", 0)),
                by_channel={f[2:]: int(v) for f, v in h.items() if f.startswith("c:")},
                skills={f[3:]: int(v) for f, v in h.items() if f.startswith("sk:")},
                queues=frozenset(msgpack.unpackb(h["queues"])),
                routable=h.get("routable") == b"1",
                connected=int(h.get("conns", 0)) > 0,
                idle_since=int(h.get("idle", 0)),
                status=_s(h.get("status", b"")),
            )
        )
    qstates: list[QueueState] = []
    waiting: list[tuple[str, str, float]] = []
    lender: dict[str, str] = {}
    for i, q in enumerate(queues):
        strategy, prio, members, lent = replies[len(aids) + 1 + 4 * i : len(aids) + 5 + 4 * i]
        qstates.append(QueueState(q, _s(strategy), int(float(prio))))
        waiting += [(q, _s(w), score) for w, score in members]
        for w in lent:
            assert _s(w) not in lender, f"{_s(w)} is borrowed by two queues"
            lender[_s(w)] = q
    pipe = r.pipeline(transaction=False)
    for _, wid, _ in waiting:
        pipe.hgetall(k.work(wid))
        pipe.smembers(k.work_declined(wid))
    replies = await pipe.execute()
    items = []
    for n, (q, wid, score) in enumerate(waiting):
        h = {_s(f): v for f, v in replies[2 * n].items()}
        ch = _s(h["channel"])
        item = ItemState(
            id=wid,
            queue=q,
            channel=ch,
            weight=int(h["weight"]),
            cap=caps[ch],
            skills=(msgpack.unpackb(h["req"]) if h.get("req") else None) or {},
            priority=int(h.get("priority", 0)),
            created=int(h["created"]),
            declined_by=frozenset(_s(a) for a in replies[2 * n + 1]),
            missed_by=_s(h.get("missed_by", b"")),
            overflow_to=lender.get(wid, ""),
        )
        assert _s(h["queue"]) == q and _s(h["state"]) == "queued", (wid, h)
        assert score == wait_score(item), (wid, score, wait_score(item))
        if item.overflow_to:
            assert _s(h.get("ovf", b"")) == item.overflow_to, (wid, h)
        items.append(item)
    return Snapshot.of(agents, qstates, items)


async def ready_indexes(store: Store, queues: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    """Each queue's ready index as Redis holds it: (agent id, score), in order."""
    pipe = store.redis.pipeline(transaction=False)
    for q in queues:
        pipe.zrange(store.keys.queue_ready(q), 0, -1, withscores=True)
    return {
        q: [(_s(a), int(score)) for a, score in got]
        for q, got in zip(queues, await pipe.execute(), strict=True)
    }


def model_indexes(snap: Snapshot) -> dict[str, list[tuple[str, int]]]:
    return {q.name: ready_index(snap, q) for q in snap.queues}


@dataclass(frozen=True)
class Committed:
    """What one route.lua call committed."""

    # (work id, agent id, serving queue, "offer" | "auto"), in commit order
    decisions: list[tuple[str, str, str, str]]
    more: list[str]


async def lua_route(store: Store, queues: Sequence[str], budget: int, scan: int) -> Committed:
    """Run route.lua once; what it committed, from the center's event stream."""
    r, k = store.redis, store.keys
    last = await r.xrevrange(k.event_stream, count=1)
    start = "(" + _s(last[0][0]) if last else "-"
    n, more = await store.route(queues, budget=budget, scan=scan)
    out = []
    for _, ev in await r.xrange(k.event_stream, start, "+") or []:
        for e in parse_events(ev or {}):
            if e.ev == "offer":
                out.append((e.work, e.agent, e.queue, "offer"))
            elif e.ev == "accept" and e.get("via") == "auto":
                out.append((e.work, e.agent, e.queue, "auto"))
    assert n == len(out), f"route.lua counted {n} assignments, its events show {len(out)}"
    return Committed(out, more)


async def drop(r: Redis, prefix: str) -> None:
    """Delete every key of a center."""
    match = prefix.replace("{", "\\{").replace("}", "\\}") + "*"
    keys = [key async for key in r.scan_iter(match=match, count=1000)]
    for start in range(0, len(keys), 1000):
        await r.delete(*keys[start : start + 1000])
