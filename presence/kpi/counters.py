"""Prometheus counters kept in Redis, so they are right across processes.

With several server processes behind one port, a scrape reaches any one of
them; per-process counters would each tell a different part of the story.
So the counters live in Redis (hash ``metrics``), and the Lua script that
records an event also counts it (``count`` in ``store/lua/_lib_core.lua``): each
event is counted exactly once, in the same atomic call as the change, and
the counters survive restarts (monotonic, as Prometheus expects). An earlier
design counted the event stream from Python once a second; under load that
cost a tenth of a server's CPU.

Websocket connections are per process by nature: each process writes its
own counts into ``metrics:conns`` every second and `/metrics` sums the
processes heard from in the last `CONNS_STALE_MS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import msgpack

from presence.kpi import history
from presence.store import Store
from presence.tasks import Periodic

# fields of hash `metrics` the checker reads (count_item in _lib_core.lua), not counters
CHECKER_FIELDS = "stats|"
# the mark of a counter the checker also reads (an arrival or an end: `completed+|<queue>|<channel>`)
ENDED = "+"

# assignment latency buckets, seconds (intake -> assignment); LAT_MS and
# LAT_LE in _lib_core.lua are the same bounds
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
CONNS_STALE_MS = 10_000


def bucket_name(upper: float) -> str:
    return "+Inf" if upper == float("inf") else f"{upper:g}"


class Counters(Periodic):
    """The per-process task that reports this process's sockets."""

    name = "kpi-counters"
    tick_first = True

    def __init__(self, store: Store, conns: Callable[[], dict[str, int]], *, every: float = 1.0) -> None:
        self.store = store
        self.conns = conns
        super().__init__(every)
        self.process = f"{os.getpid()}@{os.uname().nodename}"
        self._written: dict[str, int] | None = None
        self._written_at = 0

    async def stop(self) -> None:
        await super().stop()
        # bounded: a shutdown must not hang on a Redis that went away
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.store.redis.hdel(self.store.keys.metrics_conns, self.process), 1.0)

    async def tick(self) -> None:
        now = self.store.now_ms()
        payload = self.report(now)
        if payload is not None:
            await self.store.redis.hset(self.store.keys.metrics_conns, self.process, payload)

    def report(self, now: int) -> bytes | None:
        """This process's counts to write now (remembered as written), or
        None when they need not be: unchanged and written recently (they are
        written again well inside CONNS_STALE_MS, so a process serving many
        idle centers writes next to nothing)."""
        conns = self.conns()
        if conns == self._written and now - self._written_at < CONNS_STALE_MS / 3:
            return None
        self._written, self._written_at = conns, now
        return bytes(msgpack.packb({**conns, "ts": now}))


async def read(store: Store) -> tuple[dict[str, int], dict[str, int]]:
    """The counters, and websocket connections by role summed over live processes."""
    k = store.keys
    raw = await store.redis.hgetall(k.metrics)
    # the `stats|` fields, the items' lives the checker adds up, are no Prometheus series
    names = {history._s(f): v for f, v in raw.items()}
    counters: dict[str, int] = {}
    for f, v in names.items():
        if "|" not in f or f.startswith(CHECKER_FIELDS):
            continue
        # an item's end counted once for the checker too (`completed+|q|ch`,
        # `count` in _lib_core.lua) adds to the counter counted before
        name, _, rest = f.partition("|")
        series = f"{name.removesuffix(ENDED)}|{rest}"
        counters[series] = counters.get(series, 0) + int(v)
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
