"""The live KPIs: one process at a time computes them and publishes ``kpis``.

Every process with a supervisor socket marks the audience (a key with a
short TTL); the process holding the ``live`` lock (renewed each tick, taken
over by another within a few seconds when its holder dies) computes the
figures once for all of them and publishes the message on the events
channel, where every process's hub forwards it to its supervisors. Every
``interval`` seconds (default 1) the task reads the events appended to
the streams since its last read (one XRANGE each), folds them into its
`IncrementalTracker`, aggregates the windows (today, 60, 30, 15 minutes) in
short steps (yielding to the event loop between them), builds one ``kpis``
message and publishes it; each hub encodes it once per subprotocol for its
supervisors.

Its memory follows the last minutes' traffic, not the hour's or the day's:
every minute the tracker folds what is older than `RECENT_MS` (two minutes)
into the sums of "today" and into sums per minute, which the sliding
windows (60, 30, 15 minutes, each from the start of a minute:
`window_start`) are made of, and forgets it. An item it forgot that has
events again (a case re-opened in the afternoon) is first brought back from
its own history in Redis, so its earlier completion is judged again exactly.

The tracker is only a cache of what the streams hold: at start, at
midnight, after a lost connection to Redis (not after a timeout: the streams
are as they were, and the next tick reads on from its cursor) and when
memory cannot replay a change (a very late event, new routable statuses)
it is rebuilt from the streams,
page by page and folding as it reads (`replay`, which the hourly roll-up
shares), so it never drifts from the truth and a rebuild late in the day
does not hold the day in memory either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from presence import protocol
from presence.kpi import erlang, history, replay, rollup
from presence.kpi.aggregates import Agg, Groups, agg_of
from presence.kpi.facts import Settings
from presence.kpi.incremental import BUCKET_MS, IncrementalTracker
from presence.kpi.replay import Reach, views_chunked
from presence.store import Store
from presence.store.client import closed_transport
from presence.store.lock import Lock
from presence.tasks import Pace, pace_sleep, stop_task

log = logging.getLogger("presence.kpi")

WINDOWS_MIN = {"60m": 60, "30m": 30, "15m": 15}
SETTINGS_EVERY = 10.0  # seconds between re-reads of the center's settings
FEED_CHUNK = 500  # stream entries read per tick call (then folded in chunks, `replay.fold_in`)
# Facts, agents' windows or items summed between two yields of a tick: a
# step of the tracker's default size (1,000) held the loop for several ms
# with 500 agents, and a change's trip to its own socket (a few hops through
# the loop) waited for one step at each hop
LIVE_STEP = 250
AGENT_WINDOWS = ("today", "60m")  # the windows of each agent's row in ``kpis``
FOLD_EVERY_MS = BUCKET_MS  # fold points, sliding windows' starts and buckets fall on whole minutes
# How far back the tracker keeps facts and agents' changes. What it costs to
# be short: an agent's change (a status, an accept, a completion) read later
# than this after its ``ts`` (a server whose clock runs minutes behind)
# rebuilds the tracker from the streams; a fact that late is still counted
# exactly, in its minute. What it saves: each minute kept is ~3 KB an item.
RECENT_MS = 2 * 60_000
REBUILD_PAGE = history.PAGE  # stream entries read per call when rebuilding
# The per-agent rows ride on every AGENT_ROWS_EVERY-th push only (the first
# included): with thousands of agents they are most of the message, and
# writing them to every wallboard every second stalled the event loop
# (docs/PERFORMANCE.md, fan-out). Center, queue and channel figures go every push.
AGENT_ROWS_EVERY = 5
ROWS_CHUNK = 100  # agents' rows built between yields


def fold_point(now_ms: int) -> int:
    """Where the tracker folds at `now`: `RECENT_MS` back, on a whole minute
    (a fold at most once a minute). What lies before it is kept as sums per
    minute for the sliding windows and in today's sums."""
    t = now_ms - RECENT_MS
    return t - t % FOLD_EVERY_MS


def window_start(now_ms: int, minutes: int) -> int:
    """The start of the sliding window of the last `minutes` at `now`: the
    start of the minute `minutes` minutes ago (so it is a whole number of
    the tracker's per-minute sums, and the full pass sums the same range)."""
    t = now_ms - minutes * 60_000
    return t - t % FOLD_EVERY_MS


def fold_horizon(now_ms: int) -> int:
    """The start of the longest sliding window at `now`: the per-minute sums
    from there on are kept, older ones are in today's sums only."""
    return window_start(now_ms, max(WINDOWS_MIN.values()))


def day_start(now_ms: int, tz: ZoneInfo) -> int:
    """Midnight of `now`'s day in the center's time zone, in ms."""
    local = datetime.fromtimestamp(now_ms / 1000, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


def windows(now_ms: int, tz: ZoneInfo) -> dict[str, int]:
    out = {"today": day_start(now_ms, tz)}
    for name, minutes in WINDOWS_MIN.items():
        out[name] = window_start(now_ms, minutes)
    return out


def staffing(hour: Agg, today: Agg, queue: Mapping[str, Any], stats: Mapping[str, Any]) -> dict[str, Any]:
    """Erlang C staffing of a queue from the last hour's arrivals and AHT.

    The AHT is the last hour's, or today's when nothing was completed in the
    last hour; with no arrivals or no AHT there is no recommendation (None).
    """
    threshold = float(queue.get("service_level_seconds", 20))
    target = float(queue.get("service_level_target", 0.8))
    rate = hour.offered / 3600
    aht = hour.handle_ms / hour.handled / 1000 if hour.handled else None
    if aht is None and today.handled:
        aht = today.handle_ms / today.handled / 1000
    needed: int | None = None
    forecast: float | None = None
    traffic = 0.0
    routable = int(stats.get("routable", 0))
    if aht is not None:
        traffic = erlang.traffic(rate, aht)
        try:
            needed = erlang.agents_needed(rate, aht, target, threshold)
        except ValueError:
            needed = None
        forecast = erlang.service_level(routable, traffic, aht, threshold) if traffic > 0 else None
    elif hour.offered == 0:
        needed = 0
    return {
        "arrival_rate": hour.offered,  # per hour
        "aht": aht,
        "traffic": traffic,
        "service_level_seconds": threshold,
        "service_level_target": target,
        "needed": needed,
        "staffed": int(stats.get("logged_in", 0)),
        "routable": routable,
        "forecast_service_level": forecast,
    }


AGENT_FIELDS = ("answered", "handled", "aht", "occupancy", "utilisation", "handle_time",
                "available_time", "logged_in_time", "csat", "csat_count")  # fmt: skip


def agent_kpis(a: Agg) -> dict[str, Any]:
    k = a.kpis()
    out = {f: k[f] for f in AGENT_FIELDS}
    statuses: dict[str, float] = {}
    reasons: dict[str, float] = {}
    for key, v in a.status_ms.items():
        (reasons if "/" in key else statuses)[key] = v / 1000
    out["time_in_status"] = statuses
    out["time_in_reason"] = reasons
    return out


def build(
    groups: Mapping[str, Groups],
    queues: list[dict[str, Any]],
    stats: list[dict[str, Any]],
    views: list[dict[str, Any]],
    now_ms: int,
    routable: frozenset[str] = frozenset({"Available"}),
    agents: bool = True,
) -> dict[str, Any]:
    """The ``kpis`` message from aggregated windows and the live queue figures
    (pure); with `agents` False, its ``agents`` rows left empty."""
    names = list(protocol.KPI_WINDOWS)
    by_stats = {s["name"]: s for s in stats}
    qrows = []
    center: dict[str, Any] = {w: groups[w].center.kpis() for w in names}
    waiting_total, longest, needed_total = 0, 0.0, 0
    unknown = not queues
    for q in queues:
        name = q["name"]
        st = by_stats.get(name, {})
        row: dict[str, Any] = {"name": name, "title": q.get("title") or name}
        for w in names:
            row[w] = groups[w].queues.get(name, Agg()).kpis()
        waiting = int(st.get("waiting", 0))
        oldest = float(st.get("oldest_created", 0) or 0)
        wait = max(0.0, (now_ms - oldest) / 1000) if waiting and oldest else 0.0
        staff = staffing(
            groups["60m"].queues.get(name, Agg()), groups["today"].queues.get(name, Agg()), q, st
        )
        row.update(
            waiting=waiting,
            longest_wait=wait,
            logged_in=int(st.get("logged_in", 0)),
            routable=int(st.get("routable", 0)),
            staffed=staff["staffed"],
            staffing_needed=staff["needed"],
            staffing=staff,
        )
        waiting_total += waiting
        longest = max(longest, wait)
        if staff["needed"] is None:
            # no estimate for this queue (arrivals, no AHT yet), so none for
            # the center: the others' sum would read as the whole need
            unknown = True
        else:
            needed_total += staff["needed"]
        qrows.append(row)
    online = [v for v in views if v.get("connected")]
    center.update(
        waiting=waiting_total,
        longest_wait=longest,
        logged_in=len(online),
        routable=sum(1 for v in online if v.get("status") in routable),
        staffing_needed=None if unknown else needed_total,
    )
    channels = sorted(set().union(*(g.channels for g in groups.values())))
    crows = [{"name": c, **{w: groups[w].channels.get(c, Agg()).kpis() for w in names}} for c in channels]
    arows = agent_rows(groups, sorted_views(views)) if agents else []
    return protocol.kpis(center, qrows, crows, arows, now_ms)


def sorted_views(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The views in the order of the ``agents`` rows (by agent id)."""
    return sorted(views, key=lambda v: str(v.get("agent_id")))


def agent_rows(groups: Mapping[str, Groups], views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``agents`` rows of `views`, in their order (pure)."""
    return [
        {
            "agent_id": v["agent_id"],
            "name": v.get("name", v["agent_id"]),
            "status": v.get("status"),
            "reason": v.get("reason", ""),
            **{w: agent_kpis(groups[w].agents.get(v["agent_id"], Agg())) for w in AGENT_WINDOWS},
        }
        for v in views
    ]


class LiveKpis:
    """The per-process task behind the ``kpis`` message."""

    def __init__(
        self,
        store: Store,
        push: Any,
        *,
        interval: float = 1.0,
        timezone: str = "UTC",
        has_audience: Any = None,
        shared: bool = True,
    ) -> None:
        self.store = store
        # callable(msg): hand one message to this process's supervisors (when
        # not `shared`; shared, the message goes out over pub/sub instead)
        self.push = push
        self.shared = shared
        self._ttl_ms = int(max(3.0, 3 * interval) * 1000)
        self.lock = Lock(store, store.keys.kpi_lock("live"), self._ttl_ms)
        self.has_audience = has_audience or (lambda: True)
        self.pace: Pace | None = None
        # the center's owner process (always, with one center): it computes
        # the figures for an audience on other processes
        self.owner = True
        self.interval = interval
        self.tz = ZoneInfo(timezone)
        self.tracker: IncrementalTracker | None = None
        self.settings = Settings()
        self._settings_at = 0.0
        self._pushes = 0
        self._cursor = {"events": "0-0", "status": "0-0"}
        self._origin = 0  # events before this are not fed (the sliding windows' start, less a margin)
        self._reach = Reach(0, 0)  # what a feed reads: from `_origin` on
        self._day = 0  # today's midnight
        self._since = 0  # where the tracker's "today" starts (the roll-up's cursor, or midnight)
        self._rolled: Groups | None = None  # today's sums before `_since`, from the roll-ups
        # seconds: the last fold, and the longest step of one (holding the loop)
        self.last_fold = 0.0
        self.longest_fold_step = 0.0
        self._queues: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.last: dict[str, Any] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kpi-live")

    async def stop(self) -> None:
        await stop_task(self._task)
        if self.shared:
            # hand over at once rather than after the lock's TTL (bounded: a
            # shutdown must not hang on a Redis that went away)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.lock.release(), 1.0)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                if await self._should_compute():
                    msg = await self.tick(agents=self._rows_due())
                    await self._publish(msg)
                else:
                    # nobody to show them to, or another process computes them:
                    # drop the cache, rebuild when it is our turn
                    self.tracker = None
            except asyncio.CancelledError:
                raise
            except RedisTimeoutError as exc:
                # Redis (or this loop) was slow, its data is as it was: carry
                # on from the cursor. Rebuilt, the tracker re-read the whole
                # day (a million entries at 200 items/s) on a process already
                # behind, and a 10 s stall became minutes (docs/RELIABILITY.md, soak).
                log.warning("live KPIs late (Redis: %s); carrying on from where they were", exc)
            except RedisError as exc:
                # lost or refused: Redis may have restarted or failed over
                log.warning("live KPIs unavailable (Redis: %s); rebuilding on the next tick", exc)
                self.tracker = None
            except Exception as exc:
                if closed_transport(exc):
                    # a connection redis-py closed under the call (a cluster down)
                    log.warning("live KPIs unavailable (Redis: %s); rebuilding on the next tick", exc)
                else:
                    log.exception("live KPIs failed; rebuilding on the next tick")
                self.tracker = None
            left = max(0.05, self.interval - (loop.time() - started))
            # with nobody here to show them to, a quiet center's figures wait
            # until it changes (an audience elsewhere wakes it too,
            # presence/workspaces.py); with an audience, every interval
            await pace_sleep(None if self.has_audience() else self.pace, left)

    async def _should_compute(self) -> bool:
        """Whether this process computes the figures this tick.

        Shared: every process with a supervisor marks the audience; one
        process at a time (a lock with a short TTL, renewed each tick) computes
        for all of them and publishes, so N processes cost one computation.
        """
        if not self.shared:
            return bool(self.has_audience())
        r, k = self.store.redis, self.store.keys
        if self.has_audience():
            await r.set(k.kpi_audience, "1", px=self._ttl_ms)
        elif not self.owner or not await r.exists(k.kpi_audience):
            # no audience here: only the center's owner looks for one
            # elsewhere (one read), and competes for the lock only when there is one
            return False
        return await self.lock.hold()

    async def _publish(self, msg: dict[str, Any]) -> None:
        self.last = msg
        self._pushes += 1
        if self._pushes % AGENT_ROWS_EVERY != 1:
            msg = {k: v for k, v in msg.items() if k != "agents"}
        if not self.shared:
            self.push(msg)
            return
        # an event every process's hub forwards to its supervisors (`sup`),
        # this one's included, like the events the Lua scripts publish
        payload = msgpack.packb([{**msg, "sup": 1}])
        await self.store.redis.spublish(self.store.keys.events_channel, payload)

    async def _refresh_settings(self) -> None:
        if time.monotonic() - self._settings_at >= SETTINGS_EVERY or self.tracker is None:
            self.settings = await history.settings(self.store)
            self._queues = await self.store.list_queues()
            self._settings_at = time.monotonic()
            if self.tracker is not None:
                self.tracker.use(self.settings)

    async def _rebuild(self, now: int, wins: Mapping[str, int]) -> None:
        """A new tracker from the streams: today since the roll-up's cursor
        (`_rolled_today`: what is before it comes from the roll-ups) and the
        sliding windows, read page by page and folded as it goes (`replay`),
        so memory stays bounded and a stream trimmed to the cursor is enough."""
        since, self._rolled = await self._rolled_today(wins["today"], now)
        start = min(since, *(w for name, w in wins.items() if name != "today"))
        self._origin = start - history.MARGIN_MS
        tracker = IncrementalTracker(self.settings, since=since)
        reach = self._reach = Reach(self._origin, self._origin)
        k = self.store.keys
        # Each agent's status at the origin, before any event is fed (`replay.status_at`)
        views = await views_chunked(self.store)
        held, seen = await replay.status_at(self.store, self._origin, page=REBUILD_PAGE)
        for v in views:
            if v["agent_id"] not in seen and int(v.get("since", 0)) <= self._origin:
                replay.seed(tracker, v)
        for aid, (status, reason, at) in held.items():
            tracker.seed_status(aid, status, reason, at)
        # the newest ids first: an event added while we read lies after them
        # and is read by the next _feed, never skipped
        last_e = await self.store.redis.xrevrange(k.event_stream, count=1)
        last_s = await self.store.redis.xrevrange(k.status_stream, count=1)
        self._cursor = {
            "events": _s(last_e[0][0]) if last_e else "0-0",
            "status": _s(last_s[0][0]) if last_s else "0-0",
        }

        async def fold(last: int) -> None:
            # what lies well behind the read position is final: fold it now.
            # Read by id, the entries follow ``ts`` only to within the clock
            # margin (and entries of the two streams in one millisecond in
            # no known order): behind that margin, not only `RECENT_MS`
            before = min(fold_point(now), fold_point(last - history.MARGIN_MS))
            await self._fold(tracker, before, fold_horizon(now))

        pages = replay.replay(self.store, tracker, reach, fold, page=REBUILD_PAGE)
        async for ev_entries, st_entries in pages:
            if ev_entries and _after(ev_entries[-1][0], self._cursor["events"]):
                self._cursor["events"] = ev_entries[-1][0]
            if st_entries and _after(st_entries[-1][0], self._cursor["status"]):
                self._cursor["status"] = st_entries[-1][0]
        for v in views:
            replay.seed(tracker, v)  # a status that changed, but not in the streams
        if tracker.inexact:
            # what the streams cannot tell exactly (a status change missing
            # from them, entries out of order by more than the margin): as
            # exact as they allow, and not rebuilt again on every tick
            log.warning("live KPIs rebuilt, not exactly: %s", tracker.inexact)
            tracker.inexact = ""
        self.tracker = tracker
        self._day = wins["today"]
        self._since = since

    async def _rolled_today(self, midnight: int, now: int) -> tuple[int, Groups | None]:
        """Where today's tracker starts, and the roll-ups' sums of today
        before that: the roll-up's cursor when it is past midnight, read in
        one MULTI with the hours it covers (a part rolled between two reads
        would be counted twice or not at all). A midnight that is not a
        whole UTC hour (a time zone at :30) starts at midnight, from the
        streams alone, as do a center never rolled up today."""
        if midnight % rollup.HOUR_MS:
            return midnight, None
        k = self.store.keys
        hours = list(range(midnight, now + 1, rollup.HOUR_MS))
        pipe = self.store.redis.pipeline(transaction=True)
        pipe.hget(k.kpi_state, "rolled")
        # one GET per hour, not an MGET: redis-py's cluster pipeline refuses
        # MGET (all keys here share the center's slot, but it does not look)
        for h in hours:
            pipe.get(k.kpi_hour(rollup.hour_name(h)))
        raw, *values = await pipe.execute()
        rolled = min(int(raw or 0), now)
        if rolled <= midnight:
            return midnight, None
        sums = Groups()
        for h, value in zip(hours, values, strict=True):
            if h >= rolled or not value:
                continue
            r = rollup.decode(value)
            for a in r.get("center", {}).values():
                sums.center.add(a)
            for dim, into in (("queue", sums.queues), ("channel", sums.channels), ("agent", sums.agents)):
                for name, a in r.get(dim, {}).items():
                    agg_of(into, name).add(a)
        return rolled, sums

    async def _feed(self) -> None:
        assert self.tracker is not None
        k = self.store.keys
        ev_entries = await history.read_stream(
            self.store, k.event_stream, "(" + self._cursor["events"], page_size=FEED_CHUNK
        )
        st_entries = await history.read_stream(
            self.store, k.status_stream, "(" + self._cursor["status"], page_size=FEED_CHUNK
        )
        # the cursor moves once what it read is in the tracker: a call that
        # fails on the way (a Redis timeout) leaves it where it was, and the
        # next tick reads the same entries again
        await replay.fold_in(self.store, self.tracker, ev_entries, st_entries, self._reach)
        if ev_entries:
            self._cursor["events"] = ev_entries[-1][0]
        if st_entries:
            self._cursor["status"] = st_entries[-1][0]

    async def _fold(self, tracker: IncrementalTracker, before: int, horizon: int) -> None:
        """Fold what is older than `before` into per-minute sums from
        `horizon` on and today's sums, in steps."""
        if tracker.folded_to is not None and before <= tracker.folded_to:
            return
        loop = asyncio.get_running_loop()
        started = step = loop.time()
        for _ in tracker.fold_steps(before, horizon, LIVE_STEP):
            self.longest_fold_step = max(self.longest_fold_step, loop.time() - step)
            await asyncio.sleep(0)
            step = loop.time()
        self.longest_fold_step = max(self.longest_fold_step, loop.time() - step)
        self.last_fold = loop.time() - started

    def _rows_due(self) -> bool:
        """Whether the next push carries the per-agent rows (`_publish`)."""
        return (self._pushes + 1) % AGENT_ROWS_EVERY == 1

    async def tick(self, agents: bool = True) -> dict[str, Any]:
        """One computation: catch up with the streams, aggregate, build the
        message; with `agents` False (a push that goes without them), no
        per-agent rows, nor the per-agent sums they come from."""
        now = self.store.now_ms()
        wins = windows(now, self.tz)
        await self._refresh_settings()
        if self.tracker is None or wins["today"] != self._day or self.tracker.inexact:
            if self.tracker is not None and self.tracker.inexact:
                log.info("live KPIs rebuilt from the streams: %s", self.tracker.inexact)
            await self._rebuild(now, wins)
        else:
            await self._feed()
            if self.tracker.inexact:  # a change memory cannot replay: the streams can
                log.info("live KPIs rebuilt from the streams: %s", self.tracker.inexact)
                await self._rebuild(now, wins)
        assert self.tracker is not None
        await self._fold(self.tracker, fold_point(now), fold_horizon(now))
        # in steps, yielding between them: with 10,000 agents one pass holds
        # the loop long enough to delay every socket of this process
        # per-agent rows carry today and 60m only (`build`)
        # today from the tracker's start on, plus the roll-ups' sums before it
        steps = self.tracker.aggregate_steps(
            now, {**wins, "today": self._since}, chunk=LIVE_STEP, agents_for=AGENT_WINDOWS if agents else ()
        )
        while True:
            try:
                next(steps)
            except StopIteration as done:
                groups: dict[str, Groups] = done.value
                break
            await asyncio.sleep(0)
        if self._rolled is not None:
            groups["today"] = _plus(groups["today"], self._rolled, agents)
        stats = await self.store.queue_stats()
        views = await views_chunked(self.store)
        msg = build(groups, self._queues, stats, views, now, self.settings.routable, agents=False)
        if agents:
            # a row per agent (thousands): built in chunks, yielding between,
            # as one pass it held every socket of this process for ms
            ordered, rows = sorted_views(views), []
            for i in range(0, len(ordered), ROWS_CHUNK):
                rows += agent_rows(groups, ordered[i : i + ROWS_CHUNK])
                await asyncio.sleep(0)
            msg["agents"] = rows
        self.last = msg
        return msg


def _plus(a: Groups, b: Groups, agents: bool) -> Groups:
    """The sums of `a` and `b` (new objects: `b` is added again every tick);
    without `agents`, `a`'s agent sums (none) only."""
    out = Groups(center=Agg())
    out.center.add(a.center)
    out.center.add(b.center)
    pairs = [(out.queues, a.queues, b.queues), (out.channels, a.channels, b.channels)]
    if agents:
        pairs.append((out.agents, a.agents, b.agents))
    else:
        out.agents = a.agents
    for into, *parts in pairs:
        for part in parts:
            for name, x in part.items():
                agg_of(into, name).add(x)
    return out


def _after(a: str, b: str) -> bool:
    return replay.entry_id(a) > replay.entry_id(b)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
