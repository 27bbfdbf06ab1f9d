"""Live KPI computation benchmark: one tick of the wallboard figures, and a day of them, in process.

**One tick** (the default). Builds a center's day in memory (no Redis, no
server): `--agents` agents over `--hours` hours, each changing status every
~10 minutes and handling an item every ~5 minutes (accept, complete 3
minutes later), then times what `presence.kpi.live` does every second with a
supervisor connected: fold one more second of events and aggregate the four
windows (today, 60, 30, 15 min). Compares the pass over every fact and span
(`Tracker`, what reports use) with the `IncrementalTracker` the live task
uses (running window sums, per-agent timelines, per-agent sums for today and
60m only; folded as the live task folds, into today's and per-minute sums,
unless `--no-fold`), checks that both give the same figures, and reports the
longest step between two yields to the event loop (`Tracker.aggregate_steps`).

    python -m loadtests.bench_kpi --agents 10000 --hours 2

**A day** (`--day`). Drives the clock through `--items` items over `--hours`
hours for `--agents` agents (each item answered 15 s after it arrives and
completed 3 minutes later; every 500th a case its customer re-opens three
hours later; every agent takes a ten-minute break every two hours), a
tick every `--tick` minutes, and compares what the tracker keeps in memory when it holds
the whole day (`kept`: the live task before folding, pruned at midnight
only) with the tracker that folds as the live task does (`folded`:
`live.fold_point` and `live.fold_horizon`: facts older than a few minutes
into today's sums and per-minute sums, forgotten items recalled from their
history): GC-tracked objects it retains, memory it
holds (tracemalloc), how long a full collection takes with it alive, the
CPU of a tick (the median of the last hour's, and the most any tick took,
a collection it set off included), and the longest fold and fold step
(CPU). Checks that both give the same figures.

    python -m loadtests.bench_kpi --day --items 200000 --hours 24 --agents 200 --tick 5

`--only kept` uses only the API the tracker had before folding, so the same
file also measures an older tree (run it from that tree's root, with
``python <this file> --day --only kept``).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from presence.kpi.events import Event
from presence.kpi.facts import Settings
from presence.kpi.incremental import IncrementalTracker
from presence.kpi.tracker import Tracker

STATUSES = ("Available", "Available", "Break", "Lunch", "Training")
AGENT_WINDOWS = ("today", "60m")  # as presence.kpi.live
MIN, HOUR = 60_000, 3600_000
T0 = 1_700_006_400_000  # a midnight (UTC): the start of --day's day


def window_start(now: int, minutes: int) -> int:
    """As `presence.kpi.live.window_start`: from the start of a minute (here
    too, so `--only kept` runs from an older tree)."""
    t = now - minutes * MIN
    return t - t % MIN


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


def one_tick(args: argparse.Namespace) -> None:
    events = day(args.agents, args.hours)
    now = events[-1].ts
    last_second = [e for e in events if e.ts > now - 1000]
    history = [e for e in events if e.ts <= now - 1000]
    settings = Settings(
        weights={"chat": 25},
        capacities={f"a{i}": 100 for i in range(args.agents)},
        members={"support": [f"a{i}" for i in range(args.agents)]},
    )
    wins = {"today": events[0].ts, **{f"{n}m": window_start(now, n) for n in (60, 30, 15)}}
    print(f"bench_kpi: {args.agents} agents, {args.hours} h, {len(events)} events "
          f"({len(last_second)} in the last second)")  # fmt: skip
    results = {}
    for incremental in (False, True):
        t = IncrementalTracker(settings, since=wins["today"]) if incremental else Tracker(settings)
        t.feed(history)
        if isinstance(t, IncrementalTracker) and args.fold:
            from presence.kpi.live import fold_horizon, fold_point

            t.fold(fold_point(now - 1000), fold_horizon(now))  # as live: per-minute sums
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


# -- a day -------------------------------------------------------------------------


def schedule(items: int, hours: float, agents: int, reopen_every: int = 500) -> Callable[[int], list[Event]]:
    """Item k's events (the day is a pure function of k, so it is made a
    minute at a time and an item's history can be read back); every
    `reopen_every`-th item is a case re-opened three hours on."""
    t0, gap = T0, int(hours * HOUR) // items

    def item(k: int) -> list[Event]:
        t = t0 + k * gap
        w, a, q = f"w{k}", f"a{k % agents}", ("support", "billing")[k % 2]
        out = [Event("create", t, w, "", q, "chat"), Event("accept", t + 15_000, w, a, q, "chat"),
               Event("complete", t + 195_000, w, a, q, "chat")]  # fmt: skip
        if k % reopen_every == 0:
            b, r = f"a{(k + 1) % agents}", t + 3 * HOUR
            out += [Event("reopen", r, w, "", q, "chat"), Event("accept", r + 40_000, w, b, q, "chat"),
                    Event("complete", r + 100_000, w, b, q, "chat")]  # fmt: skip
        return out

    return item


def minutes(items: int, item: Callable[[int], list[Event]]) -> dict[int, list[tuple[int, int]]]:
    """Minute -> (item, event index) of the events that fall in it (small: ints)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for k in range(items):
        for i, e in enumerate(item(k)):
            out.setdefault((e.ts - T0) // MIN, []).append((k, i))
    return out


def breaks(agents: int, hours: float) -> dict[int, list[Event]]:
    """Minute -> the agents' status changes in it: a ten-minute break every
    two hours each, staggered (Available since just before the day)."""
    out: dict[int, list[Event]] = {}
    for i in range(agents):
        since = T0 - 1000
        for h in range(int(hours // 2) + 1):
            t = T0 + h * 2 * HOUR + (i * 137_000) % (2 * HOUR)
            for ts, s, prev in ((t, "Break", "Available"), (t + 600_000, "Available", "Break")):
                x = {"status": s, "reason": "", "prev": prev, "prev_since": str(since)}
                out.setdefault((ts - T0) // MIN, []).append(Event("status", ts, agent=f"a{i}", extra=x))
                since = ts
    return out


def tracked_from(root: object, skip: tuple[object, ...]) -> int:
    """How many objects the cyclic GC tracks among those reachable from `root`."""
    seen = {id(s) for s in skip}
    todo, n = [root], 0
    while todo:
        for r in gc.get_referents(todo.pop()):
            if gc.is_tracked(r) and id(r) not in seen and not isinstance(r, type):
                seen.add(id(r))
                todo.append(r)
                n += 1
    return n


def run_day(args: argparse.Namespace, folded: bool, trace: bool) -> dict[str, Any]:
    item = schedule(args.items, args.hours, args.agents)
    by_minute, pauses = minutes(args.items, item), breaks(args.agents, args.hours)
    settings = Settings(
        weights={"chat": 25},
        capacities={f"a{i}": 100 for i in range(args.agents)},
        members={"support": [f"a{i}" for i in range(0, args.agents, 2)]},
    )
    if folded:
        from presence.kpi.live import fold_horizon, fold_point
    if trace:
        tracemalloc.start()
    t = IncrementalTracker(settings, since=T0) if folded else IncrementalTracker(settings)
    for i in range(args.agents):
        t.seed_status(f"a{i}", "Available", "", T0 - 1000)
    fold_cpu = fold_step = 0.0
    ticks: list[float] = []  # CPU of each tick (a collection it triggers included)
    series: list[int] = []
    out: Any = None
    fed = 0
    for m in range(0, int(args.hours * 60), args.tick):
        due = [(k, i) for j in range(m, m + args.tick) for k, i in by_minute.pop(j, [])]
        paused = [e for j in range(m, m + args.tick) for e in pauses.pop(j, [])]
        batch = sorted([item(k)[i] for k, i in due] + paused, key=lambda e: e.ts)
        fed += len(batch)
        if folded:  # a re-opened case the tracker forgot: back from its history
            for e in batch:
                if e.work and e.work not in t.items and e.ev != "create":
                    t.recall(e.work, [x for x in item(int(e.work[1:])) if x.ts < e.ts])
        t.feed(batch)
        now = T0 + (m + args.tick) * MIN
        wins = {"today": T0, **{f"{n}m": window_start(now, n) for n in (60, 30, 15)}}
        start = time.process_time()
        out = t.aggregate(now, wins, agents_for=AGENT_WINDOWS)
        ticks.append(time.process_time() - start)
        if folded and fold_point(now) > T0:
            # CPU time: on a shared machine, wall time is mostly the neighbours'
            start = step = time.process_time()
            for _ in t.fold_steps(fold_point(now), fold_horizon(now)):
                fold_step = max(fold_step, time.process_time() - step)
                step = time.process_time()
            fold_step = max(fold_step, time.process_time() - step)
            fold_cpu = max(fold_cpu, time.process_time() - start)
        if (m + args.tick) % (6 * 60) == 0:
            series.append(len(t.rows) if hasattr(t, "rows") else len(t.facts))
    memory = tracemalloc.get_traced_memory()[0] if trace else 0
    if trace:
        tracemalloc.stop()
    gc.collect()
    objects = tracked_from(t, (settings,))
    full_gc = float("inf")
    for _ in range(3):  # a full collection with the tracker alive: the best of three
        start = time.process_time()
        gc.collect()
        full_gc = min(full_gc, time.process_time() - start)
    last_hour = sorted(ticks[-max(1, 60 // args.tick) :])
    return {
        "events": fed,
        "objects": objects,
        "memory": memory,
        "full_gc": full_gc,
        "tick": last_hour[len(last_hour) // 2],
        "tick_max": max(ticks),
        "fold": fold_cpu,
        "fold_step": fold_step,
        "series": series,
        "figures": out,
        "tracker": t,
    }


def a_day(args: argparse.Namespace) -> None:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench_kpi --day: {args.items} items over {args.hours} h, {args.agents} agents, "
          f"a tick every {args.tick} min (load avg {load})")  # fmt: skip
    print(f"{'':24}{'tracked objects':>16}{'memory MB':>11}{'full GC ms':>11}{'tick ms':>9}{'max':>8}"
          f"{'fold ms':>9}{'fold step ms':>14}   facts kept every 6 h")  # fmt: skip
    results = {}
    for name in ("kept", "folded"):
        if args.only and name != args.only:
            continue
        folded = name == "folded"
        r = run_day(args, folded, trace=not args.no_trace)
        label = "folded (now)" if folded else "kept all day (before)"
        fold = f"{r['fold'] * 1000:9.1f}{r['fold_step'] * 1000:14.1f}" if folded else f"{'-':>9}{'-':>14}"
        print(f"{label:24}{r['objects']:16,}{r['memory'] / 1e6:11.1f}{r['full_gc'] * 1000:11.1f}"
              f"{r['tick'] * 1000:9.1f}{r['tick_max'] * 1000:8.0f}{fold}"
              f"   {' '.join(f'{n:,}' for n in r['series'])}")  # fmt: skip
        if folded:
            print(f"{'':24}held at the end: {r['tracker'].retained()}")
        results[name] = r["figures"]
        del r
        gc.collect()
    if len(results) == 2:
        new, old = results["folded"], results["kept"]
        same = all(
            (new[w].center, new[w].queues, new[w].channels) == (old[w].center, old[w].queues, old[w].channels)
            and (new[w].agents == old[w].agents or w not in AGENT_WINDOWS)
            for w in new
        )
        print("same figures:", same)
        if not same:
            raise SystemExit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=None, help="default 10000, with --day 200")
    ap.add_argument("--hours", type=float, default=None, help="default 2, with --day 24")
    ap.add_argument("--ticks", type=int, default=3)
    ap.add_argument("--no-fold", dest="fold", action="store_false",
                    help="one tick: the live tracker never folded (as before it folded)")  # fmt: skip
    ap.add_argument("--day", action="store_true", help="a day, the clock driven: memory and folds")
    ap.add_argument("--items", type=int, default=200_000, help="--day: items over the day")
    ap.add_argument("--tick", type=int, default=1, help="--day: minutes between ticks (a divisor of 360)")
    ap.add_argument("--only", choices=("kept", "folded"), help="--day: one tracker only")
    ap.add_argument("--no-trace", action="store_true", help="--day: without tracemalloc (faster)")
    args = ap.parse_args()
    if args.day:
        args.agents, args.hours = args.agents or 200, args.hours or 24.0
        a_day(args)
    else:
        args.agents, args.hours = args.agents or 10_000, args.hours or 2.0
        one_tick(args)


if __name__ == "__main__":
    main()
