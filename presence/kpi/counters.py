"""Prometheus counters kept in Redis, so they are right across processes.

With several server processes behind one port, a scrape reaches any one of
them; per-process counters would each tell a different part of the story.
So the counters live in Redis (hash ``metrics``), derived from the event
stream: every second one process (a short lock) reads the entries after the
counters' cursor and adds them with ``kpi_count.lua``, which applies a
batch only if the cursor has not moved since it was read. Each event is
therefore counted exactly once, whichever process counts it, and the
counters survive restarts (monotonic, as Prometheus expects).

Websocket connections are per process by nature: each process writes its
own counts into ``metrics:conns`` every second and `/metrics` sums the
processes heard from in the last `CONNS_STALE_MS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgpack

from presence.kpi import history
from presence.kpi.engine import Event, parse_event
from presence.store import ScriptError, Store
from presence.tasks import Periodic

log = logging.getLogger("presence.kpi")

# assignment latency buckets, seconds (intake -> assignment)
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
COUNTED = {
    "create": "created",
    "reopen": "created",
    "offer": "offered",
    "accept": "assigned",
    "decline": "declined",
    "rescind": "rescinded",
    "complete": "completed",
    "abandon": "abandoned",
}
CONNS_STALE_MS = 10_000
BATCH = 5000


def bucket_name(upper: float) -> str:
    return "+Inf" if upper == float("inf") else f"{upper:g}"


def bucket_of(seconds: float) -> str:
    """The field name of the (non-cumulative) bucket holding `seconds`."""
    for b in BUCKETS:
        if seconds <= b:
            return bucket_name(b)
    return "+Inf"


def increments(events: Iterable[Event], created: dict[str, int]) -> dict[str, int]:
    """Counter increments for a batch of events (pure).

    Fields: ``<counter>|<queue>|<channel>`` for the counters in `COUNTED`;
    ``lat|<queue>|<le>``, ``latsum|<queue>`` (ms) and ``latn|<queue>`` for the
    assignment-latency histogram: for every assignment (an accepted offer or
    an auto-assignment, also the new owner's after a transfer) the time since
    the item arrived (intake, or its re-opening), read from `created`.
    """
    inc: dict[str, int] = {}

    def add(k: str, n: int = 1) -> None:
        inc[k] = inc.get(k, 0) + n

    for e in events:
        name = COUNTED.get(e.ev)
        if name is None:
            continue
        add(f"{name}|{e.queue}|{e.channel}")
        # other ways of taking an item (a pull, a forced push) are not routing
        if e.ev == "accept" and e.get("via", "accept") in ("accept", "auto") and e.work in created:
            ms = max(0, e.ts - created[e.work])
            add(f"lat|{e.queue}|{bucket_of(ms / 1000)}")
            add(f"latsum|{e.queue}", ms)
            add(f"latn|{e.queue}")
    return inc


# the fields `increments` and the arrival look-up read
_FIELDS = ("ev", "ts", "work", "agent", "queue", "channel", "via")
_BFIELDS = tuple(f.encode() for f in _FIELDS)


def counted_events(entries: Iterable[tuple[str, Mapping[Any, Any]]]) -> list[Event]:
    """The stream entries `increments` counts, decoded; the others are skipped
    unread (decoding every field of every entry was most of this task's cost
    at thousands of events per second)."""
    out: list[Event] = []
    for _, f in entries:
        names: tuple[Any, ...] = _BFIELDS if b"ev" in f else _FIELDS
        if history._s(f.get(names[0], "")) not in COUNTED:
            continue
        e = parse_event({n: f[n] for n in names if n in f})
        if e is not None:
            out.append(e)
    return out


class Counters(Periodic):
    """The per-process task that counts the stream and reports its sockets."""

    name = "kpi-counters"
    tick_first = True

    def __init__(self, store: Store, conns: Callable[[], dict[str, int]], *, every: float = 1.0) -> None:
        self.store = store
        self.conns = conns
        super().__init__(every)
        self.process = f"{os.getpid()}@{os.uname().nodename}"

    async def stop(self) -> None:
        await super().stop()
        # bounded: a shutdown must not hang on a Redis that went away
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.store.redis.hdel(self.store.keys.metrics_conns, self.process), 1.0)

    async def tick(self) -> None:
        await self.report_conns()
        while await self.count_once() >= BATCH:
            pass

    async def report_conns(self) -> None:
        counts = {**self.conns(), "ts": self.store.now_ms()}
        await self.store.redis.hset(self.store.keys.metrics_conns, self.process, msgpack.packb(counts))

    async def count_once(self) -> int:
        """Count the next batch of events; returns how many entries were read."""
        k = self.store.keys
        if not await self.store.redis.set(k.kpi_lock("count"), self.process, nx=True, px=10_000):
            return 0
        try:
            raw = await self.store.redis.hget(k.metrics, "cursor")
            cursor = history._s(raw) if raw else ""
            entries = await history.read_stream(
                self.store, k.event_stream, "(" + cursor if cursor else "-", limit=BATCH
            )
            entries = entries[:BATCH]
            if not entries:
                return 0
            events = counted_events(entries)
            arrivals, _ = await history.item_times(self.store, events)
            created = {e.work: e.ts for e in events if e.ev in ("create", "reopen")}
            created.update(arrivals)
            inc = increments(events, created)
            args: list[Any] = []
            for f, n in inc.items():
                args += [f, n]
            try:
                await self.store.scripts.call(
                    "kpi_count", k.prefix, self.store.now_ms(), cursor, entries[-1][0], *args
                )
            except ScriptError:
                return 0  # another process counted this batch
            return len(entries)
        finally:
            await self.store.release_lock("count", self.process)


async def read(store: Store) -> tuple[dict[str, int], dict[str, int]]:
    """The counters, and websocket connections by role summed over live processes."""
    k = store.keys
    raw = await store.redis.hgetall(k.metrics)
    counters = {history._s(f): int(v) for f, v in raw.items() if b"|" in f}
    now = store.now_ms()
    conns: dict[str, int] = {"agent": 0, "supervisor": 0}
    stale = []
    for proc, blob in (await store.redis.hgetall(k.metrics_conns)).items():
        c = msgpack.unpackb(blob, raw=False)
        if now - int(c.get("ts", 0)) > CONNS_STALE_MS:
            stale.append(proc)
            continue
        for role, n in c.items():
            if role != "ts":
                conns[role] = conns.get(role, 0) + int(n)
    if stale:
        # a process that died without saying goodbye
        await store.redis.hdel(k.metrics_conns, *stale)
    return counters, conns
