"""The append-only file and Redis memory over a long run: rewrites, AOF size,
used memory, with and without the item retention.

Each configuration gets a fresh embedded Redis (the command line of
`presence serve`, `presence.embedded`) and one auto-accept queue of
--agents agents, then --items items go through their whole life (create,
route, complete) in rounds of --batch, as fast as Redis takes them. Every
--sample items it records the AOF rewrites so far (``INFO persistence``
``aof_rewrites``), the AOF's size on disk, ``used_memory``, the keys, and
the slowest round since the last sample, and at the end Redis's latency
monitor (``LATENCY LATEST``: the worst fork, AOF write and fsync, expire
cycle over 1 ms). The configurations, alternated
--repeat times in one run (the machine's speed drifts; the counts do not):

* ``main``: Redis's own rewrite settings (64 MB, then whenever the AOF has
  doubled) and no retention: what presence did before;
* ``new``: the embedded settings (`presence.embedded.AOF_REWRITE`) and a
  retention of --retention-seconds (PRESENCE_RETENTION_DAYS scaled down, so
  that expiry is exercised within the run), and the event streams trimmed
  to the same age at every sample (the roll-up's trim, PRESENCE_HISTORY_DAYS).

    python -m loadtests.bench_aof --items 60000 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from loadtests.common import free_port, table
from presence.center import parse_center
from presence.embedded import EmbeddedRedis
from presence.store import NewItem, Store, new_work_id

REDIS_DEFAULTS = ("--auto-aof-rewrite-min-size", "64mb", "--auto-aof-rewrite-percentage", "100")


class DefaultsRedis(EmbeddedRedis):
    """The embedded Redis with Redis's own rewrite settings (a later
    argument wins over an earlier one on redis-server's command line)."""

    def _command(self, binary: str, port: int | None) -> list[str]:
        return [*super()._command(binary, port), *REDIS_DEFAULTS]


def _aof_size(data: Path) -> int:
    return sum(p.stat().st_size for p in data.glob("**/appendonlydir/*") if p.is_file())


async def drive(
    url: str, data: Path, *, agents: int, items: int, batch: int, sample: int, keep_s: float
) -> list[dict[str, Any]]:
    r = Redis.from_url(url)
    # Redis's own latency monitor: the fork of each rewrite, the AOF writes
    # and fsyncs, the expire cycle, each event slower than 1 ms recorded
    await r.config_set("latency-monitor-threshold", 1)
    store = Store(r, "aof")
    await store.sync_center(
        parse_center(
            {
                "queues": [{"name": "q", "auto_accept": True}],
                "agents": [{"id": f"a{i}", "queues": ["q"], "capacity": 10_000} for i in range(agents)],
            }
        ),
        retention_days=keep_s / 86400,
    )
    for i in range(agents):
        await store.conn_open(f"a{i}", f"c{i}", 86400)
        await store.set_status(f"a{i}", "Available", "", f"a{i}")
    rows: list[dict[str, Any]] = []
    done, worst, t0 = 0, 0.0, time.monotonic()
    payload = {"subject": "bench", "customer": {"name": "山田 花子", "email": "hanako@example.jp"}}
    while done < items:
        start = time.monotonic()
        ids = [new_work_id() for _ in range(batch)]
        await store.create_work_many([NewItem(w, "q", "chat", 0, payload) for w in ids])
        assigned, _ = await store.route(["q"], budget=batch)
        if assigned != batch:
            raise RuntimeError(f"routed {assigned} of {batch}")
        pipe = r.pipeline(transaction=False)
        for w in ids:
            pipe.hget(store.keys.work(w), "agent")
        holders = [(h or b"").decode() for h in await pipe.execute()]
        await asyncio.gather(*(store.complete(a, w, "done") for a, w in zip(holders, ids, strict=True)))
        worst = max(worst, time.monotonic() - start)
        done += batch
        if done % sample == 0 or done >= items:
            if keep_s:
                # what the roll-up does with PRESENCE_HISTORY_DAYS (presence/kpi/
                # rollup.py, `trim`): the event streams kept as long as the items
                cut = f"{store.now_ms() - int(keep_s * 1000)}-0"
                await r.xtrim(store.keys.event_stream, minid=cut)
                await r.xtrim(store.keys.status_stream, minid=cut)
            info = await r.info("persistence")
            mem = await r.info("memory")
            rows.append(
                {
                    "items": done,
                    "seconds": time.monotonic() - t0,
                    "rewrites": int(info.get("aof_rewrites", 0)),
                    "aof_mb": _aof_size(data) / 1e6,
                    "used_mb": int(mem["used_memory"]) / 1e6,
                    "keys": await r.dbsize(),
                    "worst_ms": worst * 1000,
                }
            )
            worst = 0.0
    latest = await r.execute_command("LATENCY", "LATEST")
    rows[-1]["latency"] = {
        (e[0].decode() if isinstance(e[0], bytes) else str(e[0])): int(e[3]) for e in latest
    }
    await r.aclose()
    return rows


def run_one(kind: str, a: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix=f"presence-aof-{kind}-") as tmp:
        data = Path(tmp)
        cls = DefaultsRedis if kind == "main" else EmbeddedRedis
        redis = cls(data, port=free_port())
        url = redis.start(timeout=60)
        try:
            return asyncio.run(
                drive(
                    url,
                    data,
                    agents=a.agents,
                    items=a.items,
                    batch=a.batch,
                    sample=a.sample,
                    keep_s=0.0 if kind == "main" else a.retention_seconds,
                )
            )
        finally:
            redis.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--items", type=int, default=60_000, help="items per configuration (default 60,000)")
    p.add_argument("--batch", type=int, default=50, help="items per create/route/complete round")
    p.add_argument("--sample", type=int, default=10_000, help="record the figures every this many items")
    p.add_argument("--retention-seconds", type=float, default=20.0, help="the `new` run's retention")
    p.add_argument("--repeat", type=int, default=1, help="alternate main/new this many times")
    a = p.parse_args(argv)
    print(
        f"bench_aof: {a.items} items per run, {a.agents} agents, rounds of {a.batch}; "
        f"`new` keeps finished items {a.retention_seconds:g} s"
    )
    for rep in range(a.repeat):
        for kind in ("main", "new"):
            rows = run_one(kind, a)
            print(f"\n{kind} (run {rep + 1})")
            print(
                table(
                    [
                        [
                            "items",
                            "s",
                            "AOF rewrites",
                            "AOF MB",
                            "used_memory MB",
                            "keys",
                            "slowest round ms",
                        ],
                        *[
                            [
                                r["items"],
                                f"{r['seconds']:.0f}",
                                r["rewrites"],
                                f"{r['aof_mb']:.1f}",
                                f"{r['used_mb']:.1f}",
                                r["keys"],
                                f"{r['worst_ms']:.0f}",
                            ]
                            for r in rows
                        ],
                    ]
                )
            )
            last = rows[-1]
            per_item = last["aof_mb"] / last["items"] * 1e6
            print(
                f"  {kind}: {last['rewrites']} rewrites, AOF {per_item:.0f} bytes per item on disk, "
                f"used_memory {last['used_mb']:.1f} MB after {last['items']} items"
            )
            events = ", ".join(f"{k} {v} ms" for k, v in sorted(last["latency"].items())) or "none"
            print(f"  Redis latency monitor, worst per event (over 1 ms): {events}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
