"""Live KPI computation benchmark: one tick of the wallboard figures, in process.

Builds a center's day in memory (no Redis, no server): `--agents` agents
over `--hours` hours, each changing status every ~10 minutes and handling an
item every ~5 minutes (accept, complete 3 minutes later), then times what
`presence.kpi.live` does every second with a supervisor connected: fold one
more second of events and aggregate the four windows (today, 60, 30, 15 min).
Compares the pass over every fact and span (`Tracker`, what reports use)
with the `IncrementalTracker` the live task uses (running
window sums, per-agent timelines, per-agent sums for today and 60m only),
checks that both give the same figures, and reports the longest step between two yields
to the event loop (`Tracker.aggregate_steps`).

    python -m loadtests.bench_kpi --agents 10000 --hours 2
"""

from __future__ import annotations

import argparse
import random
import time

from presence.kpi.events import Event
from presence.kpi.facts import Settings
from presence.kpi.incremental import IncrementalTracker
from presence.kpi.live import AGENT_WINDOWS
from presence.kpi.tracker import Tracker

STATUSES = ("Available", "Available", "Break", "Lunch", "Training")


def day(agents: int, hours: float, seed: int = 7) -> list[Event]:
    rnd = random.Random(seed)
    t0 = 1_700_000_000_000
    end = t0 + int(hours * 3600_000)
    events: list[Event] = []
    n = 0
    for i in range(agents):
        aid = f"a{i}"
        t = t0 + rnd.randint(0, 600_000)
        while t < end:
            events.append(Event("status", t, agent=aid, extra={"status": rnd.choice(STATUSES)}))
            t += rnd.randint(300_000, 900_000)
        t = t0 + rnd.randint(0, 300_000)
        while t < end:
            n += 1
            w = f"w{n}"
            events.append(Event("create", t - 5_000, w, queue="support", channel="chat"))
            events.append(Event("accept", t, w, aid, "support", "chat"))
            events.append(Event("complete", t + 180_000, w, aid, "support", "chat"))
            t += rnd.randint(200_000, 400_000)
    events.sort(key=lambda e: e.ts)
    return events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--ticks", type=int, default=3)
    args = ap.parse_args()
    events = day(args.agents, args.hours)
    now = events[-1].ts
    last_second = [e for e in events if e.ts > now - 1000]
    history = [e for e in events if e.ts <= now - 1000]
    settings = Settings(
        weights={"chat": 25},
        capacities={f"a{i}": 100 for i in range(args.agents)},
        members={"support": [f"a{i}" for i in range(args.agents)]},
    )
    wins = {"today": events[0].ts, "60m": now - 3600_000, "30m": now - 1800_000, "15m": now - 900_000}
    print(f"bench_kpi: {args.agents} agents, {args.hours} h, {len(events)} events "
          f"({len(last_second)} in the last second)")  # fmt: skip
    results = {}
    for incremental in (False, True):
        t = IncrementalTracker(settings) if incremental else Tracker(settings)
        t.feed(history)
        t.aggregate(now - 1000, wins)  # warm: first pass (timelines built)
        t.feed(last_second)
        best, longest = float("inf"), 0.0
        for _ in range(args.ticks):
            start = time.process_time()
            steps = t.aggregate_steps(now, wins, agents_for=AGENT_WINDOWS if incremental else None)
            step = time.perf_counter()
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    out = done.value
                    break
                finally:
                    longest = max(longest, time.perf_counter() - step)
                    step = time.perf_counter()
            best = min(best, time.process_time() - start)
        results[incremental] = out
        name = "incremental (live)" if incremental else "every fact & span "
        print(f"{name}  one tick: {best * 1000:7.1f} ms CPU, longest step {longest * 1000:5.1f} ms")
    new, old = results[True], results[False]
    same = all(
        (new[w].center, new[w].queues, new[w].channels) == (old[w].center, old[w].queues, old[w].channels)
        and (new[w].agents == old[w].agents or w not in AGENT_WINDOWS)
        for w in wins
    )
    print("same figures:", same)
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
