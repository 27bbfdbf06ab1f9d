"""route.lua against the reference policy, on random small centers.

Each scenario is built in a real Redis through the Store API (queues,
agents, sockets, statuses, items, some work already in hand), its snapshot
is read back and given to `presence.router.policy.route`, then one
`route.lua` call is made: the offers it commits, in the order it commits
them, must be the policy's decisions. Seeded, so a failure names its seed.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis

from presence.center import parse_center
from presence.router.policy import AgentState, ItemState, QueueState, Snapshot, route
from presence.store import Store, new_work_id

SEEDS = range(120)
CHANNELS = {
    "voice": {"weight": 100, "cap": 1},
    "chat": {"weight": 25, "cap": 0},
    "email": {"weight": 10, "cap": 0},
    "case": {"weight": 30, "cap": 2},
}
SKILLS = ("english", "billing", "spanish")
NAMES = ("ann", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo")


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t

    def tick(self, rng: random.Random) -> None:
        # 0 or 1 ms: ties in age and idle time are common, as tie-breaks must be exact
        self.t += rng.choice((0, 0.001))


@pytest.fixture
async def redis(redis_server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server)
    yield client
    await client.aclose()


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _center(rng: random.Random, cid: str) -> tuple[dict[str, Any], list[str]]:
    nq = rng.randint(1, 3)
    queues = []
    for i in range(nq):
        queues.append(
            {
                "name": f"q{i}",
                "strategy": rng.choice(("most_available", "least_active", "longest_idle")),
                "priority": rng.choice((0, 5, 5, 10)),
                "auto_accept": rng.random() < 0.2,
            }
        )
    names = rng.sample(NAMES, rng.randint(2, 8))
    agents = []
    for i, aid in enumerate(names):
        member = rng.sample([q["name"] for q in queues], rng.randint(1, nq))
        agents.append(
            {
                "id": aid,
                "capacity": rng.choice((50, 100, 100, 150)),
                "skills": {s: rng.randint(1, 10) for s in SKILLS if rng.random() < 0.6},
                # a private queue to put work in this agent's hands before the scenario
                "queues": [*member, f"own{i}"],
            }
        )
        queues.append({"name": f"own{i}", "priority": -100})
    body = {"center": {"id": cid}, "channels": CHANNELS, "queues": queues, "agents": agents}
    return body, [q["name"] for q in queues[:nq]]


async def _build(store: Store, clock: Clock, rng: random.Random, body: dict[str, Any]) -> None:
    await store.sync_center(parse_center(body))
    for i, a in enumerate(body["agents"]):
        aid = a["id"]
        await store.conn_open(aid, f"c{i}", 3600)
        await store.set_status(aid, "Available", "", aid)
        clock.tick(rng)
        for _ in range(rng.randint(0, 3)):
            ch = rng.choice(list(CHANNELS))
            await store.create_work(new_work_id(clock()), f"own{i}", ch, 0, {}, {})
            await store.route([f"own{i}"])
            offers, _ = await store.agent_items(aid)
            for o in offers:
                if rng.random() < 0.7:
                    await store.accept(aid, o["work_id"])
                    if rng.random() < 0.4:
                        clock.t += rng.choice((0.001, 0.002))
                        await store.complete(aid, o["work_id"], "done")
        if rng.random() < 0.2:
            await store.set_status(aid, "Break", "", aid)
        if rng.random() < 0.15:
            await store.conn_close(aid, f"c{i}", 3600)


async def _items(
    store: Store, clock: Clock, rng: random.Random, queues: list[str], agents: list[str]
) -> None:
    r = store.redis
    for _ in range(rng.randint(1, 12)):
        clock.tick(rng)
        skills = {s: rng.randint(1, 10) for s in SKILLS if rng.random() < 0.3}
        wid, _ = await store.create_work(
            new_work_id(clock()),
            rng.choice(queues),
            rng.choice(list(CHANNELS)),
            rng.choice((-1, 0, 0, 0, 3)),
            {"subject": "x"},
            skills,
        )
        if rng.random() < 0.2:
            await r.sadd(store.keys.work_declined(wid), *rng.sample(agents, rng.randint(1, 2)))
        if rng.random() < 0.15:
            await r.hset(store.keys.work(wid), "missed_by", rng.choice(agents))


async def snapshot(store: Store, queues: list[str]) -> Snapshot:
    """The routing snapshot of the scenario's queues, read from Redis."""
    r, k = store.redis, store.keys
    agents = []
    for aid in sorted(_s(a) for a in await r.smembers(k.agents)):
        h = {_s(f): v for f, v in (await r.hgetall(k.agent(aid))).items()}
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
            )
        )
    qstates, items = [], []
    for q in queues:
        strategy = _s(await r.hget(k.queue(q), "strategy"))
        qstates.append(QueueState(q, strategy, int(float(await r.zscore(k.queues, q) or 0))))
        for wid in (_s(w) for w in await r.zrange(k.queue_waiting(q), 0, -1)):
            h = {_s(f): v for f, v in (await r.hgetall(k.work(wid))).items()}
            ch = _s(h["channel"])
            items.append(
                ItemState(
                    id=wid,
                    queue=q,
                    channel=ch,
                    weight=int(h["weight"]),
                    cap=CHANNELS[ch]["cap"],
                    skills=msgpack.unpackb(h["req"]) or {},
                    priority=int(h["priority"]),
                    created=int(h["created"]),
                    declined_by=frozenset(_s(a) for a in await r.smembers(k.work_declined(wid))),
                    missed_by=_s(h.get("missed_by", b"")),
                )
            )
    return Snapshot.of(agents, qstates, items)


async def lua_decisions(store: Store, queues: list[str]) -> list[tuple[str, str]]:
    """Run route.lua once; the (item, agent) offers it committed, in order."""
    r, k = store.redis, store.keys
    last = await r.xrevrange(k.event_stream, count=1)
    start = "(" + _s(last[0][0]) if last else "-"
    await store.route(queues, budget=1000, scan=1000)
    out = []
    for _, ev in await r.xrange(k.event_stream, start, "+"):
        e = {_s(f): _s(v) for f, v in ev.items()}
        if e["ev"] == "offer" or (e["ev"] == "accept" and e.get("via") == "auto"):
            out.append((e["work"], e["agent"]))
    return out


async def _drop(r: Redis, prefix: str) -> None:
    keys = [key async for key in r.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + "*")]
    if keys:
        await r.delete(*keys)


async def test_route_lua_matches_the_reference_policy(redis: Redis) -> None:
    compared = decided = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        clock = Clock()
        cid = f"pvl{seed}x{rng.randrange(10**6)}"
        store = Store(redis, cid, clock=clock)
        body, queues = _center(rng, cid)
        try:
            await _build(store, clock, rng, body)
            await _items(store, clock, rng, queues, [a["id"] for a in body["agents"]])
            snap = await snapshot(store, queues)
            expected = [(d.work_id, d.agent_id) for d in route(snap)]
            clock.t += 0.01
            got = await lua_decisions(store, queues)
            assert got == expected, f"seed {seed}: route.lua {got} != policy {expected}\n{snap}"
            assert await store.check() == [], f"seed {seed}"
            compared += 1
            decided += len(expected)
        finally:
            await _drop(redis, store.keys.prefix)
    # the scenarios must actually exercise routing, not compare empty lists
    assert compared == len(SEEDS)
    assert decided > len(SEEDS)


async def test_a_wrong_policy_would_be_caught(redis: Redis) -> None:
    """The comparison can fail: flipping the tie-break must disagree with Lua."""
    clock = Clock()
    store = Store(redis, "pvlneg", clock=clock)
    body = {
        "center": {"id": "pvlneg"},
        "queues": [{"name": "q0"}],
        "agents": [{"id": "ba", "queues": ["q0"]}, {"id": "ab", "queues": ["q0"]}],
    }
    try:
        await store.sync_center(parse_center(body))
        for i, aid in enumerate(("ba", "ab")):
            await store.conn_open(aid, f"c{i}", 3600)
            await store.set_status(aid, "Available", "", aid)
        await store.create_work(new_work_id(clock()), "q0", "chat", 0, {}, {})
        snap = await snapshot(store, ["q0"])
        expected = [(d.work_id, d.agent_id) for d in route(snap)]
        reversed_ids = Snapshot.of(
            [AgentState(**{**_fields(a), "id": a.id[::-1]}) for a in snap.agents], snap.queues, snap.items
        )
        wrong = [(d.work_id, d.agent_id[::-1]) for d in route(reversed_ids)]
        got = await lua_decisions(store, ["q0"])
        assert got == expected and expected[0][1] == "ab"
        assert got != wrong
    finally:
        await _drop(redis, store.keys.prefix)


def _fields(a: AgentState) -> dict[str, Any]:
    return {f: getattr(a, f) for f in AgentState.__slots__}
