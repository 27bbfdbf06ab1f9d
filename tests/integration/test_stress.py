"""Exactly once under stress: two server processes, one center, 200 agents.

Agents on real websockets (half JSON, half msgpack, spread over both
processes) accept, decline, let offers time out, wrap up, complete, go on
Break and back, drop their socket and come back (sometimes past the grace
period), while items pour in over HTTP to both processes and some are
cancelled. Throughout, the test tracks every `work.assigned`: no item may
ever be held by two agents. Afterwards the center's event stream is replayed
to prove no item was ever offered to a second agent while an offer was open,
and `presence check` must report no breach. Seeded; bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from presence.kpi.events import parse_events
from presence.store.keys import Keys
from tests.harness import JSON, MSGPACK, ServerProcess, WsClient, agent, token
from tests.integration.conftest import ServerFactory

SEED = 20240503
AGENTS = 200
TRAFFIC_SECONDS = 14.0
ITEMS_PER_SECOND = 40  # per producer; one producer per process
# Each producer posts this many items, at ITEMS_PER_SECOND where the host
# allows: a count, not a duration, so that a starved run (the suite's own
# load on 2 cores) carries the same traffic, only slower, and the path
# counts below hold on any host. The agents stop 4 s after the last post.
ITEMS_PER_PRODUCER = int(ITEMS_PER_SECOND * TRAFFIC_SECONDS)
CAP_SECONDS = 50.0  # a run slower than this stops posting (and fails on its count)
QUEUES = ("sales", "support", "billing")


def center_toml(rng: random.Random) -> str:
    parts = [
        "[rules]\nmissed_offers_limit = 3\n",
        '[[queues]]\nname = "sales"\nstrategy = "most_available"\npush_timeout = 0.7\nwrapup_seconds = 0.4\n',
        '[[queues]]\nname = "support"\nstrategy = "least_active"\npush_timeout = 0.7\npriority = 5\n'
        "wrapup_seconds = 0.4\n",
        '[[queues]]\nname = "billing"\nstrategy = "longest_idle"\npush_timeout = 0.7\nauto_accept = true\n'
        "wrapup_seconds = 0.4\n",
    ]
    for i in range(AGENTS):
        queues = rng.sample(QUEUES, rng.randint(1, 3))
        skills = "{spanish = 5}" if rng.random() < 0.3 else "{}"
        parts.append(
            f'[[agents]]\nid = "a{i:03d}"\ncapacity = {rng.choice((50, 100, 100, 150))}\n'
            f"queues = {queues!r}\nskills = {skills}\n".replace("'", '"')
        )
    return "\n".join(parts)


class End:
    """When the agents stop: moved once the producers are done."""

    def __init__(self, at: float) -> None:
        self.at = at


@dataclass
class Tally:
    holders: dict[str, str] = field(default_factory=dict)
    doubles: list[str] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    created: list[str] = field(default_factory=list)

    def hold(self, wid: str, aid: str) -> None:
        prev = self.holders.setdefault(wid, aid)
        if prev != aid:
            self.doubles.append(f"{wid} held by {prev} and {aid}")


class Agent:
    def __init__(self, aid: str, servers: list[ServerProcess], rng: random.Random, tally: Tally) -> None:
        self.aid = aid
        self.servers = servers
        self.rng = rng
        self.tally = tally
        self.subprotocol = MSGPACK if int(aid[1:]) % 2 else JSON
        self.client: WsClient | None = None
        self.in_hand: dict[str, float] = {}  # work id -> when to finish it
        self.wrapping: set[str] = set()
        self.back_at = 0.0  # end of a Break

    async def connect(self) -> None:
        server = self.rng.choice(self.servers)
        for _ in range(20):
            try:
                self.client = await agent(server, self.aid, subprotocol=self.subprotocol)
                break
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{self.aid} could not connect")
        snap = self.client.snapshot
        for w in snap["work"]:
            self.tally.hold(w["work_id"], self.aid)
            self.in_hand.setdefault(w["work_id"], time.monotonic() + 0.2)
        await self.send({"type": "status.set", "status": "Available"})

    async def send(self, msg: dict[str, Any]) -> None:
        assert self.client is not None
        await self.client.send(msg)

    def on(self, m: dict[str, Any], now: float) -> list[dict[str, Any]]:
        kind = m.get("type", "")
        self.tally.events[kind] += 1
        out: list[dict[str, Any]] = []
        if kind == "error":
            self.tally.errors[m.get("code", "?")] += 1
        elif kind == "offer.rescinded":
            self.tally.events[f"rescinded:{m['reason']}"] += 1
        elif kind == "work.assigned":
            self.tally.hold(m["work_id"], self.aid)
            self.in_hand[m["work_id"]] = now + self.rng.uniform(0.05, 0.8)
        elif kind == "work.updated" and m.get("state") == "completed":
            self.in_hand.pop(m["work_id"], None)
            self.wrapping.discard(m["work_id"])
        elif kind == "offer":
            roll = self.rng.random()
            if roll < 0.62:
                out.append({"type": "offer.accept", "work_id": m["work_id"]})
            elif roll < 0.8:
                out.append({"type": "offer.decline", "work_id": m["work_id"], "reason": "busy"})
            # else: let it ring out (push timeout)
        return out

    async def run(self, end: End) -> None:
        await self.connect()
        while time.monotonic() < end.at:
            try:
                await self.step(end.at)
            except ConnectionClosed:
                self.tally.events["dropped"] += 1
                await self.connect()

    async def step(self, until: float) -> None:
        assert self.client is not None
        client = self.client
        msgs, client.inbox = client.inbox, []
        with contextlib.suppress(TimeoutError):
            msgs.append(await client.recv(0.1))
        now = time.monotonic()
        for m in msgs:
            for reply in self.on(m, now):
                await self.send(reply)
        for wid, due in list(self.in_hand.items()):
            if due <= now:
                del self.in_hand[wid]
                if wid not in self.wrapping and self.rng.random() < 0.3:
                    self.wrapping.add(wid)
                    await self.send({"type": "work.wrapup", "work_id": wid})
                    self.in_hand[wid] = now + self.rng.uniform(0.1, 0.6)  # some run past the limit
                else:
                    self.wrapping.discard(wid)
                    await self.send({"type": "work.complete", "work_id": wid, "disposition": "ok"})
        if self.back_at and now >= self.back_at:
            self.back_at = 0.0
            await self.send({"type": "status.set", "status": "Available"})
        roll = self.rng.random()
        if roll < 0.004 and now + 2 < until:
            # drop the socket; past the 0.8 s grace the agent goes Offline
            await client.close()
            self.tally.events["disconnects"] += 1
            await asyncio.sleep(self.rng.uniform(0.05, 1.5))
            await self.connect()
        elif roll < 0.012 and not self.back_at:
            await self.send({"type": "status.set", "status": "Break", "reason": "Coffee"})
            self.back_at = now + self.rng.uniform(0.2, 1.0)


async def produce(
    server: ServerProcess, other: ServerProcess, rng: random.Random, tally: Tally, until: float
) -> None:
    """Post ITEMS_PER_PRODUCER items to `server` at a steady rate (at most
    until `until`); cancel some through `other`."""
    headers = {"Authorization": f"Bearer {token('service', 'crm')}"}
    channels = ("chat", "chat", "email", "email", "voice", "sms")
    # a few posts in flight, as an integration's pool keeps them: on a starved
    # machine one post at a time falls behind the rate (each answer waits
    # for the cores), and the run would carry less than it claims
    in_flight = asyncio.Semaphore(4)

    async def post(http: httpx.AsyncClient, body: dict[str, Any], roll: float, pick: int) -> None:
        try:
            r = await http.post(f"{server.http}/api/v1/work", json=body)
            assert r.status_code == 201, r.text
            wid = r.json()["id"]
            tally.created.append(wid)
            if roll < 0.1:
                # the caller hangs up: at once (queued or offered) or later (often taken by then)
                recent = tally.created[-30:]
                victim = wid if roll < 0.05 else recent[pick % len(recent)]
                c = await http.post(f"{other.http}/api/v1/work/{victim}/cancel")
                assert c.status_code in (200, 409), c.text
                tally.events[f"cancel:{c.status_code}"] += 1
        finally:
            in_flight.release()

    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        n = 0
        start = time.monotonic()
        posts: list[asyncio.Task[None]] = []
        while n < ITEMS_PER_PRODUCER and time.monotonic() < until:
            body = {
                "channel": rng.choice(channels),
                "queue": rng.choice(QUEUES),
                "priority": rng.choice((0, 0, 0, 1, 5)),
                "skills": {"spanish": 3} if rng.random() < 0.1 else {},
                "subject": f"item {n}",
                "customer": {"id": f"c{n}", "name": "Zoë"},
            }
            roll, pick = rng.random(), rng.randrange(30)
            await in_flight.acquire()
            posts.append(asyncio.create_task(post(http, body, roll, pick)))
            n += 1
            lag = start + n / ITEMS_PER_SECOND - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
        # every post's answer checked (an assertion in one fails the run)
        await asyncio.gather(*posts)


def replay(redis_url: str, center: str) -> tuple[list[str], Counter[str]]:
    """Replay the center's event stream: no second offer while one is open."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = client.xrange(Keys(center).event_stream, "-", "+")
    finally:
        client.close()
    state: dict[str, tuple[str, str]] = {}  # work id -> (state, agent)
    bad: list[str] = []
    seen: Counter[str] = Counter()
    # (an intake assigned at once is one entry for two events: parse_events)
    events = [e for _, raw in entries for e in parse_events(raw)]
    for e in events:
        wid, ev, aid = e.work, e.ev, e.agent
        if not wid:
            continue
        seen[ev] += 1
        st, holder = state.get(wid, ("queued", ""))
        if ev == "offer":
            if st != "queued":
                bad.append(f"{wid} offered to {aid} while {st} to {holder}")
            state[wid] = ("offered", aid)
        elif ev == "accept":
            ok = (st == "offered" and holder == aid) or (st == "queued" and e.get("via") == "auto")
            if not ok:
                bad.append(f"{wid} accepted by {aid} while {st} to {holder}")
            state[wid] = ("assigned", aid)
        elif ev in ("decline", "rescind"):
            if st != "offered" or holder != aid:
                bad.append(f"{wid} {ev} by {aid} while {st} to {holder}")
            state[wid] = ("queued", "")
        elif ev in ("complete", "abandon"):
            state[wid] = ("ended", "")
    return bad, seen


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_two_processes_200_agents_exactly_once(server_factory: ServerFactory, tmp_path: Any) -> None:
    rng = random.Random(SEED)
    config = tmp_path / "stress.toml"
    cid = "stress" + str(rng.randrange(10**6))
    config.write_text(f'[center]\nid = "{cid}"\n' + center_toml(rng), "utf-8")
    env = {"PRESENCE_GRACE_SECONDS": "0.8"}
    servers = [server_factory(config=config, env=env), server_factory(config=config, env=env)]
    tally = Tally()
    agents = [Agent(f"a{i:03d}", servers, random.Random(SEED + i), tally) for i in range(AGENTS)]
    begin = time.monotonic()
    end = End(begin + CAP_SECONDS + 4)
    tasks = [asyncio.create_task(a.run(end)) for a in agents]
    await asyncio.sleep(1.5)  # most agents are in before the first items
    stop = begin + CAP_SECONDS
    producers = [
        asyncio.create_task(produce(servers[i], servers[1 - i], random.Random(SEED - i), tally, stop))
        for i in (0, 1)
    ]
    try:
        await asyncio.gather(*producers)
        end.at = min(end.at, time.monotonic() + 4)  # the last items handled, then stop
        await asyncio.gather(*tasks)
    finally:
        for t in (*producers, *tasks):
            t.cancel()
        for a in agents:
            if a.client is not None:
                with contextlib.suppress(Exception):
                    await a.client.close()
    assert not tally.doubles, tally.doubles[:10]
    for server in servers:
        assert not server.check(), server.check()
    bad, seen = replay(servers[0].redis_url, cid)
    assert not bad, bad[:10]
    # the run did exercise every path it claims to
    ev = tally.events
    print(f"created {len(tally.created)}; stream {dict(seen)}")
    print(f"agents saw {dict(ev)}; errors {dict(tally.errors)}")
    assert len(tally.created) == 2 * ITEMS_PER_PRODUCER, len(tally.created)
    assert seen["offer"] > 300 and seen["accept"] > 250 and seen["complete"] > 200, seen
    # abandons are ~1.8 % of the items (the cancels that find an item not yet
    # taken): ~18 on a quiet machine, fewer when the suite starves the run
    # (its items are taken sooner)
    assert seen["decline"] > 30 and seen["abandon"] > 2 and seen["wrapup"] > 30, seen
    assert ev["rescinded:timeout"] > 10 and ev["rescinded:declined"] > 30, ev
    assert ev["rescinded:status"] > 0 and ev["disconnects"] > 5 and ev["cancel:200"] > 3, ev
    assert not set(tally.errors) - {"conflict", "not_yours", "not_found"}, tally.errors
