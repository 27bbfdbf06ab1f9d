"""The full pass: a range's events read in one piece into a `Tracker`, the
oracle the streamed roll-up and reports are checked against (and the
"before" of ``loadtests/bench_rollup.py``).

The server reads every range page by page and folds as it reads
(`rollup.roll_range`, `rollup.roll_buckets`); what it sums must be exactly
what this sums of the same events, holding them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from presence.http.reports import kpi_row, time_buckets
from presence.kpi import history
from presence.kpi.aggregates import Agg, agent_time, time_into
from presence.kpi.facts import Fact
from presence.kpi.rollup import BY_ITEM, LOOKBACK_MS, STATUS_AHEAD_MS, Rolled
from presence.kpi.tracker import Tracker
from presence.store import Store


def summarise(tracker: Tracker, start: int, end: int, attrs: Mapping[str, Mapping[str, str]]) -> Rolled:
    """The additive sums of [start, end) by every dimension (pure)."""
    groups = tracker.aggregate(end, {"w": start}, inclusive=False)["w"]
    out: Rolled = {
        "center": {"": groups.center},
        "queue": groups.queues,
        "channel": groups.channels,
        "agent": groups.agents,
    }
    for dim in BY_ITEM:

        def key(f: Fact, dim: str = dim) -> str | None:
            return attrs.get(f.work, {}).get(dim, "")

        out[dim] = tracker.group(start, end, key)
    return {d: v for d, v in out.items() if v}


async def compute_range(
    store: Store, start: int, end: int, settings: Any = None
) -> tuple[Tracker, dict[str, dict[str, str]]]:
    """A tracker fed with everything needed for exact figures in [start, end),
    in one piece."""
    st = settings or await history.settings(store)
    now = store.now_ms()
    routing = await history.load(store, start - LOOKBACK_MS, end, status=False)
    # status changes after `end` too: the first one names the status held
    # before it (prev, prev_since). A day is enough for anyone who signs in
    # daily; an agent with no change in that day is seeded from its live view.
    status = await history.load(store, start, min(max(end, now), end + STATUS_AHEAD_MS), routing=False)
    events = sorted(routing + status, key=lambda e: e.ts)
    arrivals, accepts = await history.item_times(store, routing)
    tracker = Tracker(st, arrivals, accepts)
    tracker.feed(events)
    for v in await store.views():
        tracker.seed_status(v["agent_id"], v.get("status", ""), v.get("reason", ""), int(v.get("since", 0)))
    attrs = await history.attributes(store, {f.work for f in tracker.facts if f.work and start <= f.ts < end})
    return tracker, attrs


def bucket_rows(tracker: Tracker, start: int, end: int, group: str, tz: ZoneInfo) -> list[dict[str, Any]]:
    """A KPI report's rows by time bucket (15m, hour, day) from the full pass."""
    buckets = time_buckets(start, end, group, tz)
    spans = tracker.spans + tracker.open_spans()
    rows = []
    for i, (lo, label) in enumerate(buckets):
        hi = buckets[i + 1][0] if i + 1 < len(buckets) else end
        a = Agg()
        for f in tracker.group(lo, hi, lambda f: "").values():
            a.add(f)
        for t in agent_time(spans, lo, hi, tracker.settings).values():
            time_into(a, t)
        rows.append(kpi_row(group, label, a))
    return rows
