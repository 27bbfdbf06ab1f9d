"""What the supervisor's floor costs Redis: the waiting list and business hours.

Starts a private Redis and measures, with the baseline of the same run:

* the wallboard's queue figures (``queue_stats.lua``, once a second per
  process with a wallboard) for --queues queues of --waiting items each,
  without the waiting list (the baseline) and with it (25 items per queue);
* one item's life (intake, routing, completion) in a queue without hours
  (the baseline) and in a queue with business hours (a plan to read on
  intake and on the accept).

It prints commands run inside the scripts per call (``INFO commandstats``,
exact on any machine), the reply's bytes and the FCALL time (noisy on a
shared machine).

    python -m loadtests.bench_floor --queues 10 --waiting 100 --items 2000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from loadtests.common import free_port
from presence import protocol
from presence.center import parse_center
from presence.embedded import EmbeddedRedis
from presence.store import NewItem, Store, new_work_id

HOURS = {
    "time_zone": "Asia/Tokyo",
    "hours": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "open": "00:00", "close": "24:00"}],
    "holidays": ["2000-01-01"],
}


async def _inside(r: Redis) -> tuple[float, float, float]:
    """(commands run by scripts, FCALL calls, FCALL usec) since the last reset."""
    stats = await r.info("commandstats")
    own = ("cmdstat_fcall", "cmdstat_info", "cmdstat_config|resetstat", "cmdstat_function|load")
    inside = sum(v["calls"] for k, v in stats.items() if k not in own)
    f = stats.get("cmdstat_fcall", {"calls": 0, "usec": 0})
    return inside, f["calls"], f["usec"]


async def figures(r: Redis, store: Store, items: int, calls: int) -> dict[str, float]:
    await store.queue_stats(items)
    await r.config_resetstat()
    size = 0
    for _ in range(calls):
        raw = await store.scripts.raw("queue_stats", store.keys.prefix, store.now_ms(), items)
        size = len(raw)
    inside, n, usec = await _inside(r)
    return {"commands": inside / n, "bytes": size, "us": usec / n}


async def life(r: Redis, store: Store, queue: str, items: int) -> dict[str, float]:
    async def one_round(batch: int) -> None:
        ids = [new_work_id() for _ in range(batch)]
        await store.create_work_many([NewItem(w, queue, "chat", 0, {"subject": "bench"}) for w in ids])
        done = 0
        while done < batch:
            assigned, _ = await store.route([queue], budget=batch)
            done += assigned
            if not assigned:
                raise RuntimeError(f"routed {done} of {batch}")
        for w in ids:
            await store.complete("a0", w, "done")

    await one_round(20)
    await r.config_resetstat()
    for _ in range(items // 20):
        await one_round(20)
    inside, n, usec = await _inside(r)
    count = items // 20 * 20
    return {"commands": inside / count, "calls": n / count, "us": usec / count}


async def measure(url: str, queues: int, waiting: int, items: int) -> dict[str, Any]:
    r = Redis.from_url(url)
    store = Store(r, "floor")
    names = [f"q{i}" for i in range(queues)]
    await store.sync_center(
        parse_center(
            {
                "queues": [
                    *({"name": n} for n in names),
                    {"name": "plain", "auto_accept": True},
                    {"name": "hours", "auto_accept": True, **HOURS},
                ],
                "agents": [{"id": "a0", "queues": ["plain", "hours"], "capacity": 100_000}],
            }
        )
    )
    for n in names:
        await store.create_work_many(
            [
                NewItem(
                    new_work_id(),
                    n,
                    "email",
                    0,
                    {"subject": "bench", "customer": {"id": "c", "name": "山田"}},
                )
                for _ in range(waiting)
            ]
        )
    out: dict[str, Any] = {
        "figures": await figures(r, store, 0, 200),
        "figures_listed": await figures(r, store, protocol.WAITING_LISTED, 200),
    }
    await store.conn_open("a0", "c0", 3600)
    await store.set_status("a0", "Available", "", "a0")
    out["life"] = await life(r, store, "plain", items)
    out["life_hours"] = await life(r, store, "hours", items)
    await r.aclose()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queues", type=int, default=10, help="queues on the wallboard (default 10)")
    p.add_argument("--waiting", type=int, default=100, help="items waiting in each (default 100)")
    p.add_argument("--items", type=int, default=2000, help="items through their life per case (default 2000)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="presence-floor-") as tmp:
        redis = EmbeddedRedis(Path(tmp), port=free_port())
        url = redis.start(timeout=60)
        try:
            fig = asyncio.run(measure(url, a.queues, a.waiting, a.items))
        finally:
            redis.stop()
    f0, f1 = fig["figures"], fig["figures_listed"]
    print(f"bench_floor: {a.queues} queues of {a.waiting} waiting items; {a.items} items through their life")
    print("  queue figures per call (queue_stats.lua)     baseline   with the waiting list")
    print(f"    commands run by the script                 {f0['commands']:8.1f}   {f1['commands']:8.1f}")
    print(f"    reply bytes                                {f0['bytes']:8.0f}   {f1['bytes']:8.0f}")
    print(f"    FCALL time, us                             {f0['us']:8.1f}   {f1['us']:8.1f}")
    l0, l1 = fig["life"], fig["life_hours"]
    print("  one item's life (create, route, complete)    baseline   queue with hours")
    print(f"    commands run by the scripts                {l0['commands']:8.1f}   {l1['commands']:8.1f}")
    print(f"    script calls                               {l0['calls']:8.2f}   {l1['calls']:8.2f}")
    print(f"    FCALL time, us                             {l0['us']:8.1f}   {l1['us']:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
