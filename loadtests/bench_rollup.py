"""What one hourly roll-up costs the process running it: memory, time, loop stalls.

Starts a private Redis, writes --minutes of synthetic traffic at --rate
items a second (each created, answered 10 s later, completed a minute
after, by --agents agents) ending at an hour's end, straight into the
streams (ids = ts) and the items' histories, then rolls that hour up --runs times in fresh child
processes, alternating the full pass (`tests.fullpass.compute_range` +
`summarise`, what the roll-up did before) and the streamed roll-up
(`rollup.roll_range`), and prints for each: the peak RSS over the child's
RSS before (``VmHWM``, reset at the start), wall and CPU seconds, and the
longest the event loop was held (a 1 ms ticker's worst lateness). Both
must give equal sums. With --group 15m|hour|day, the KPI report's time rows
of that hour instead: the full pass (`tests.fullpass.bucket_rows`, what the
report did before) against `reports.kpis_from_events`.

    python -m loadtests.bench_rollup --rate 20 --minutes 60 --runs 2
    python -m loadtests.bench_rollup --rate 20 --minutes 60 --runs 2 --group 15m

With --resume (and --minutes over 60: traffic in the hours before), the
roll-up reading its 6-hour look-back (`roll_range`) against the one resuming
from the cursor the hour before left (`roll_part`), what `Rollup` now runs:

    python -m loadtests.bench_rollup --rate 20 --minutes 180 --runs 2 --resume
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
from redis.asyncio import Redis

from loadtests.common import free_port
from presence.embedded import EmbeddedRedis
from presence.http import reports
from presence.kpi import rollup
from presence.kpi.rollup import HOUR_MS, roll_range
from presence.store import Store
from presence.store.keys import Keys
from tests.fullpass import bucket_rows, compute_range, summarise

CENTER = "bench"


async def write(url: str, hour: int, minutes: float, rate: float, agents: int) -> int:
    """The traffic of [hour + 60 - minutes, hour + 60) min (minutes may
    reach into the hours before); the entries written."""
    r = Redis.from_url(url)
    k = Keys(CENTER)
    n = int(minutes * 60 * rate)
    first = hour + HOUR_MS - int(minutes * 60_000)
    names = [f"a{i}" for i in range(agents)]
    entries = []
    for i in range(n):
        t = first + int(i * 1000 / rate)
        w, q, c, a = (
            f"w{i}",
            ("support", "billing")[i % 2],
            ("chat", "voice", "email")[i % 3],
            names[i % agents],
        )
        entries += [
            (t, {"ev": "create", "work": w, "queue": q, "channel": c}),
            (t + 10_000, {"ev": "accept", "work": w, "agent": a, "queue": q, "channel": c}),
            (t + 70_000, {"ev": "complete", "work": w, "agent": a, "queue": q, "channel": c}),
        ]
    entries.sort(key=lambda e: e[0])
    for i in range(0, len(entries), 5000):
        pipe = r.pipeline(transaction=False)
        for ts, f in entries[i : i + 5000]:
            pipe.xadd(k.event_stream, {**f, "ts": str(ts)}, id=f"{ts}-*")
            # each item's own history too, as the scripts write it (what a
            # roll-up resuming from its cursor reads of the items it follows)
            own = {n: v for n, v in f.items() if n != "work"}
            pipe.rpush(k.work_history(f["work"]), msgpack.packb({**own, "ts": ts}))
        await pipe.execute()
    pipe = r.pipeline(transaction=False)
    for a in names:
        f = {"agent": a, "status": "Available", "reason": "", "prev": "Offline", "prev_since": str(first - 1)}
        pipe.xadd(k.status_stream, {**f, "ts": str(first)}, id=f"{first}-*")
    await pipe.execute()
    await r.aclose()
    return len(entries)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Start the peak RSS (VmHWM) again from the RSS now (Linux 4.0 on;
    ``ru_maxrss`` would also count the parent's, kept across exec)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


async def measure(url: str, hour: int, how: str, group: str = "") -> dict[str, Any]:
    """One roll-up of `hour` (in this process), or its report by `group`: its cost and its sums."""
    r = Redis.from_url(url)
    store = Store(r, CENTER, clock=lambda: (hour + 2 * HOUR_MS) / 1000)
    settings = await rollup.history.settings(store)
    worst = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal worst
        loop = asyncio.get_running_loop()
        while not stop:
            t = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - t - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    _reset_peak()
    rss0 = _status_kb("VmRSS")
    cpu0, t0 = time.process_time(), time.perf_counter()
    rows: list[dict[str, Any]] = []
    rolled: rollup.Rolled = {}
    utc = ZoneInfo("UTC")
    if group and how == "full":
        tracker, _ = await compute_range(store, hour, hour + HOUR_MS, settings)
        rows = bucket_rows(tracker, hour, hour + HOUR_MS, group, utc)
        del tracker
    elif group:
        rows = await reports.kpis_from_events(store, hour, hour + HOUR_MS, group, utc)
    elif how == "full":
        tracker, attrs = await compute_range(store, hour, hour + HOUR_MS, settings)
        rolled = summarise(tracker, hour, hour + HOUR_MS, attrs)
        del tracker, attrs
    elif how == "resumed":
        # from the cursor the hour before left (`main` rolled it up)
        raw = await r.hget(store.keys.kpi_state, "open")
        rolled, _ = await rollup.roll_part(store, hour, hour + HOUR_MS, settings, msgpack.unpackb(raw))
    else:
        rolled = await roll_range(store, hour, hour + HOUR_MS, settings)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop = True
    await tick
    await r.aclose()
    peak = _status_kb("VmHWM")
    return {
        "how": how,
        "peak_over_mb": (peak - rss0) / 1024,
        "wall_s": wall,
        "cpu_s": cpu,
        "longest_stall_ms": worst * 1000,
        # the same sums whatever order the groups came in
        "sums": json.dumps(
            rows or {d: {v: x.to_dict() for v, x in g.items()} for d, g in rolled.items()}, sort_keys=True
        ),
    }


async def cursor(url: str, hour: int) -> None:
    """Roll up the hour before `hour` and keep the items it followed at its end."""
    r = Redis.from_url(url)
    store = Store(r, CENTER, clock=lambda: (hour + 2 * HOUR_MS) / 1000)
    _, followed = await rollup.roll_part(store, hour - HOUR_MS, hour, None, None)
    await r.hset(store.keys.kpi_state, mapping={"open_at": hour, "open": msgpack.packb(followed)})
    await r.aclose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=20.0, help="items a second (default 20)")
    p.add_argument("--minutes", type=float, default=60.0, help="minutes of traffic in the hour (default 60)")
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--runs", type=int, default=2, help="runs of each, alternating (default 2)")
    p.add_argument("--group", choices=("15m", "hour", "day"), help="the KPI report's time rows instead")
    p.add_argument(
        "--resume",
        action="store_true",
        help="the roll-up reading its 6-hour look-back against the one resuming from the hour "
        "before's cursor (traffic in the hours before too: --minutes > 60)",
    )
    p.add_argument("--child", nargs=4, metavar=("URL", "HOUR", "HOW", "GROUP"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        url, hour, how, group = a.child
        print(json.dumps(asyncio.run(measure(url, int(hour), how, group.strip("-")))))
        return 0
    hour = int(time.time() * 1000) - 3 * HOUR_MS
    hour -= hour % HOUR_MS
    with tempfile.TemporaryDirectory(prefix="presence-rollup-") as tmp:
        redis = EmbeddedRedis(Path(tmp), port=free_port())
        url = redis.start(timeout=60)
        try:
            n = asyncio.run(write(url, hour, a.minutes, a.rate, a.agents))
            if a.resume:
                asyncio.run(cursor(url, hour))
            what = f"report by {a.group}" if a.group else "roll-up"
            print(
                f"bench_rollup ({what}): {a.minutes:g} min at {a.rate:g} items/s, "
                f"{a.agents} agents: {n} entries"
            )
            print("  run  how        peak RSS over start MB   wall s   CPU s   longest loop stall ms")
            sums = set()
            for i in range(a.runs):
                for how in ("streamed", "resumed") if a.resume else ("full", "streamed"):
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "loadtests.bench_rollup",
                            "--child",
                            url,
                            str(hour),
                            how,
                            a.group or "-",
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    m = json.loads(out.strip().splitlines()[-1])
                    sums.add(m["sums"])
                    print(
                        f"  {i + 1:3d}  {how:9s}  {m['peak_over_mb']:22.1f}   {m['wall_s']:6.2f}  "
                        f"{m['cpu_s']:6.2f}   {m['longest_stall_ms']:10.1f}"
                    )
            print("  sums equal:", len(sums) == 1)
        finally:
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
