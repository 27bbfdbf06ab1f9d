"""``GET /metrics``: the Prometheus exposition (prometheus-client).

Counters and the latency histogram are read from Redis (see
``presence/kpi/counters.py`` for why: several processes, one truth), queue
gauges from the live queue figures, websocket connections from every
process's report. A scrape of any process therefore gives the same center
totals, for every center of the deployment: each series carries the label
``center``. When ``PRESENCE_METRICS_TOKEN`` is set the scrape must carry it as
a bearer token; otherwise the endpoint is open, like most exporters, and
shows only counts (no names of customers).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence import gcpause
from presence.auth import bearer
from presence.http import openapi
from presence.http.common import ctx_of
from presence.kpi import counters
from presence.problems import Problem
from presence.store import Memory, Store
from presence.store.centers import revisions as registry_revisions

COUNTERS = {
    "created": "Work items taken in (intake, and finished cases routed again)",
    "offered": "Offers made to agents",
    "assigned": "Work items assigned to an agent (accepted offers and auto-assignments)",
    "declined": "Offers declined by agents",
    "rescinded": "Offers taken back (timeout, status change)",
    "completed": "Work items completed",
    "abandoned": "Work items abandoned before an agent took them",
}


class _Snapshot:
    """A collector over figures read (asynchronously) before the scrape."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def memory_families(center: str, memory: Memory) -> list[Metric]:
    """Redis's memory against maxmemory; the warning is 1 from 80 % of it
    (a full Redis with noeviction refuses every change, docs/RELIABILITY.md)."""
    used = GaugeMetricFamily("presence_redis_memory_used_bytes", "Redis used_memory", labels=["center"])
    used.add_metric([center], memory.used)
    limit = GaugeMetricFamily(
        "presence_redis_maxmemory_bytes", "Redis maxmemory (0: no limit)", labels=["center"]
    )
    limit.add_metric([center], memory.limit)
    ratio = GaugeMetricFamily(
        "presence_redis_memory_ratio", "used_memory / maxmemory (0 without a limit)", labels=["center"]
    )
    ratio.add_metric([center], round(memory.ratio, 4))
    warn = GaugeMetricFamily(
        "presence_redis_memory_warning",
        f"1 when Redis uses {Memory.WARN:.0%} or more of maxmemory: free memory or raise the limit",
        labels=["center"],
    )
    warn.add_metric([center], 1 if memory.limit and memory.ratio >= Memory.WARN else 0)
    return [used, limit, ratio, warn]


def families(
    center: str, values: dict[str, int], conns: dict[str, int], stats: list[dict[str, Any]], now_ms: int
) -> list[Metric]:
    """Metric families from the Redis counters and the live queue figures (pure)."""
    out: list[Metric] = []
    for name, doc in COUNTERS.items():
        fam = CounterMetricFamily(f"presence_work_{name}", doc, labels=["center", "queue", "channel"])
        for field, n in sorted(values.items()):
            parts = field.split("|")
            if parts[0] == name and len(parts) == 3:
                fam.add_metric([center, parts[1], parts[2]], n)
        out.append(fam)
    hist = HistogramMetricFamily(
        "presence_assignment_latency_seconds",
        "Time from arrival (intake or re-opening) to each assignment (accept or auto-assignment)",
        labels=["center", "queue"],
    )
    # a queue whose every assignment took 0 ms has buckets but no `latsum` (the
    # scripts write no increment of 0)
    queues = sorted({f.split("|")[1] for f in values if f.startswith(("latsum|", "lat|"))})
    for q in queues:
        cumulative, buckets = 0, []
        for b in [*counters.BUCKETS, float("inf")]:
            cumulative += values.get(f"lat|{q}|{counters.bucket_name(b)}", 0)
            buckets.append(("+Inf" if b == float("inf") else repr(float(b)), cumulative))
        hist.add_metric([center, q], buckets, values.get(f"latsum|{q}", 0) / 1000)
    out.append(hist)
    depth = GaugeMetricFamily(
        "presence_queue_depth", "Work items waiting in the queue", labels=["center", "queue"]
    )
    oldest = GaugeMetricFamily(
        "presence_queue_oldest_wait_seconds",
        "Wait of the oldest item in the queue",
        labels=["center", "queue"],
    )
    agents = GaugeMetricFamily(
        "presence_queue_agents", "Agents of the queue by state", labels=["center", "queue", "state"]
    )
    hours_open = GaugeMetricFamily(
        "presence_queue_open",
        "1 while a queue with business hours is open, 0 outside them (absent: no hours)",
        labels=["center", "queue"],
    )
    for s in stats:
        if "open" in s:
            hours_open.add_metric([center, str(s["name"])], 1 if s["open"] else 0)
        q = str(s["name"])
        depth.add_metric([center, q], int(s.get("waiting", 0)))
        created = float(s.get("oldest_created", 0) or 0)
        oldest.add_metric(
            [center, q], max(0.0, (now_ms - created) / 1000) if s.get("waiting") and created else 0.0
        )
        for state in ("logged_in", "routable", "ready"):
            agents.add_metric([center, q, state], int(s.get(state, 0)))
    ws = GaugeMetricFamily(
        "presence_websocket_connections",
        "Open websocket connections, all processes",
        labels=["center", "role"],
    )
    for role, n in sorted(conns.items()):
        ws.add_metric([center, role], n)
    dropped = CounterMetricFamily(
        "presence_websocket_dropped",
        "Websockets the server dropped, by role and reason (slow: a wallboard that stopped reading)",
        labels=["center", "role", "reason"],
    )
    for field, n in sorted(values.items()):
        parts = field.split("|")
        if parts[0] == "ws_dropped" and len(parts) == 3:
            dropped.add_metric([center, parts[1], parts[2]], n)
    out += [depth, oldest, agents, hours_open, ws, dropped]
    return out


async def center_families(store: Store) -> list[Metric]:
    values, conns = await counters.read(store)
    stats = await store.queue_stats()
    center = store.keys.center
    out = families(center, values, conns, stats, store.now_ms())
    out += memory_families(center, await store.memory())
    return out


def gc_families(pauses: gcpause.GcPauses) -> list[Metric]:
    """This process's collection pauses (label `process`: one scrape is one process)."""
    hist = HistogramMetricFamily(
        "presence_gc_pause_seconds",
        "Garbage-collection pauses of this server process, by generation",
        labels=["process", "generation"],
    )
    for g in range(3):
        hist.add_metric([pauses.process, str(g)], pauses.buckets(g), pauses.sums[g])
    longest = GaugeMetricFamily(
        "presence_gc_pause_max_seconds",
        f"Longest garbage-collection pause of this server process in the last {gcpause.WINDOW_S:g} s",
        labels=["process"],
    )
    longest.add_metric([pauses.process], pauses.recent_max())
    return [hist, longest]


def merged(per_center: list[list[Metric]]) -> list[Metric]:
    """One family per metric name, with every center's samples (label `center`)."""
    out: dict[str, Metric] = {}
    for fams in per_center:
        for fam in fams:
            have = out.get(fam.name)
            if have is None:
                out[fam.name] = fam
            else:
                have.samples.extend(fam.samples)
    return list(out.values())


async def render(store: Store, others: Sequence[str] = ()) -> bytes:
    """The scrape: `store`'s center's series, and those of the centers `others`."""
    per_center = [await center_families(store)]
    for cid in others:
        per_center.append(await center_families(Store(store.redis, cid, timezone=store.timezone)))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([*merged(per_center), *gc_families(gcpause.PAUSES)]))
    return generate_latest(registry)


async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token:
        given = bearer(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Problem(401, "this needs the metrics token (PRESENCE_METRICS_TOKEN)", code="unauthorized")
    store = ctx_of(request).store
    # every center of the deployment, each series labelled with its center
    others = sorted(c for c in await registry_revisions(store.redis) if c != store.keys.center)
    return Response(await render(store, others), media_type=CONTENT_TYPE_LATEST)


ROUTE = Route("/metrics", metrics)
openapi.describe(
    "GET",
    "/metrics",
    openapi.Op(
        "Prometheus metrics (bearer PRESENCE_METRICS_TOKEN when set)",
        ok=(200, None),
        problems=(401,),
        media=CONTENT_TYPE_LATEST,
    ),
)
