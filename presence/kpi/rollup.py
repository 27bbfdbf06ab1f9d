"""Hourly and daily roll-ups, kept beyond the raw streams, and stream retention.

Once an hour has closed (plus `LAG_MS` for late writers), its events are
folded by the KPI engine into additive `Agg` sums per dimension (center,
queue, channel, agent, customer, type, source) and stored as one msgpack
value ``kpi:hour:<YYYYMMDDHH>`` (UTC); each day of the center's time zone
is the sum of its hours, ``kpi:day:<YYYYMMDD>``. Roll-ups live for
``rollup_days`` (default 400), the raw streams for ``retention_days``.

The hour is read page by page and folded as read (`roll_range`, through
`replay`, the live rebuild's reader): an `IncrementalTracker` from the
hour's start is fed its `LOOKBACK_MS` look-back and the hour, folds what
lies `FOLD_LAG_MS` behind the read position and forgets it, and hands each
fact it sums to `ByItem`, which groups it by its item's customer, type and
source, and to `ByBucket`, which sums it into its time bucket when a
report asks for time rows (`roll_buckets`). So the roll-up and the reports
over the raw streams, which run beside this process's sockets, hold the
last minute's events, the open items and one timeline per agent, not the
range's, and yield to the event loop between pages and steps. Their sums
are those of the full pass over the same events held in one piece
(``tests/fullpass.py``, the tests' oracle).

The raw streams are trimmed by time (``XTRIM MINID``), and never past the
first hour not yet rolled up (less the engine's look-back): nothing inside
the retention is lost, and nothing is trimmed before it is summed.

Any process may run this: a leader lock (`presence.store.lock`, renewed
after each hour) keeps the work to one at a time, and every write is an
idempotent overwrite of a value computed from the streams, so a process
dying half-way only leaves work to redo.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from bisect import bisect_right
from collections.abc import Container, Generator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import msgpack

from presence.kpi import history, replay
from presence.kpi.aggregates import Agg, agg_of, apply_row, time_into
from presence.kpi.events import parse_event
from presence.kpi.facts import F_TS, F_WORK, FactRow
from presence.kpi.incremental import BUCKET_MS, FoldSink, IncrementalTracker
from presence.kpi.replay import Reach
from presence.store import Store
from presence.store.lock import Lock
from presence.tasks import Periodic

log = logging.getLogger("presence.kpi")

HOUR_MS = 3600_000
LAG_MS = 60_000  # an hour is rolled up this long after it closed
LOCK_TTL_MS = 300_000  # the roll-up lock, renewed after each hour
LOOKBACK_MS = 6 * HOUR_MS  # events read before an hour, for arrivals and accepts
STATUS_AHEAD_MS = 24 * HOUR_MS  # status changes read after a range, for the status held at its end
DIMENSIONS = ("center", "queue", "channel", "agent", "customer", "type", "source")
# Stream entries read per call (and folded before the next). Each entry is
# held three times while its page is folded (redis-py's reply, the decoded
# events, the tracker's facts): with 5,000 (`history.PAGE`) a part's page of
# both streams was a spike of +0.4-0.7 M allocated blocks, and the server's
# RSS is the high-water mark of those (docs/RELIABILITY.md, rss16)
PAGE = 1000
# How far behind the latest ``ts`` read the roll-up folds. Entries are read
# by id (Redis's clock), which follows ``ts`` (the writing server's) to
# within the servers' clock skew: an agent's change read later than this
# after its time makes the roll-up read its range again (`roll_range`).
# What it costs to be long: the facts, items and agents' changes of that
# long are held (~2 KB an item).
FOLD_LAG_MS = 60_000
# The roll-up's ticks fall this long after the multiples of its interval on
# the store's clock (with the default 30 s, at :05 and :35 of each minute).
# A part falls due on a whole minute (its end plus `LAG_MS`), which is when
# the live KPIs fold their oldest minute away (`live.fold_point`): run just
# after that, the part's pages and the facts it holds come on top of the
# fewest recent items the live tracker holds in its minute, not on its
# most. The server's memory high-water mark is the highest sum of the two
# (docs/RELIABILITY.md, rss16); on an unaligned 30 s tick it rose each time
# the part ran later in the live tracker's minute than before.
ALIGN_MS = 5_000
ATTRS_CHUNK = 200  # items' attributes read per call (the loop runs between): ~4 ms each
BY_ITEM = ("customer", "type", "source")  # the dimensions read from each item's attributes

Rolled = dict[str, dict[str, Agg]]  # dimension -> value -> sums
T = TypeVar("T")


def hour_name(start_ms: int) -> str:
    return datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y%m%d%H")


def day_name(ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y%m%d")


def encode(r: Rolled) -> bytes:
    return msgpack.packb({d: {v: a.to_dict() for v, a in vals.items()} for d, vals in r.items()})  # type: ignore[no-any-return]


def decode(raw: Any) -> Rolled:
    if not raw:
        return {}
    data = msgpack.unpackb(raw, raw=False)
    return {d: {v: Agg.from_dict(a) for v, a in vals.items()} for d, vals in data.items()}


def merge(into: Rolled, other: Rolled) -> None:
    for d, vals in other.items():
        target = into.setdefault(d, {})
        for v, a in vals.items():
            target.setdefault(v, Agg()).add(a)


async def roll_range(
    store: Store, start: int, end: int, settings: Any = None, *, by_item: bool = True
) -> Rolled:
    """The additive sums of [start, end) by every dimension, as the full
    pass sums them (`Tracker.aggregate`, `Tracker.group`), read page by
    page and folded as read (`replay`): memory follows the last minute's
    events, not the range's.

    The same events are fed as to the full pass: routing events from
    `LOOKBACK_MS` before (folded as read, items still open kept), status
    changes of the range, each agent's status at its start seeded from its
    first change after (up to `STATUS_AHEAD_MS` on) or its view. An item
    folded and forgotten that has events again is recalled from its own
    history (from the look-back on, as the full pass was fed it).

    Folded `FOLD_LAG_MS` behind the read position; an agent's change read
    later than that after its ``ts`` (entries out of order by more: a
    server's clock that far behind Redis's) reaches into agent time already
    folded, so the range is read again, folded the whole clock margin behind.
    Without `by_item`, no customer, type or source sums (nor the item
    attributes they read).
    """
    return (await roll_buckets(store, start, end, (), settings, by_item=by_item))[0]


async def roll_buckets(
    store: Store, start: int, end: int, bounds: Sequence[int], settings: Any = None, *, by_item: bool = True
) -> tuple[Rolled, list[Agg]]:
    """`roll_range`'s sums (without customer, type and source unless
    `by_item`), and the sums of each time bucket: bucket i is [bounds[i],
    bounds[i + 1]) and the last ends at `end` (`bounds` ascending, from
    `start`), facts and agents' time summed over the center, as the full
    pass sums each bucket. Read once, folded as read: the facts into their
    bucket as they are summed (`ByBucket`), the agents' time as the
    difference of what is folded at each bound."""
    rolled, buckets, _ = await _rolled(store, start, end, bounds, settings, by_item, None)
    return rolled, buckets


async def roll_part(
    store: Store, start: int, end: int, settings: Any, resume: Sequence[str] | None
) -> tuple[Rolled, list[str]]:
    """`roll_range`'s sums, resuming where the roll-up of the range before
    ended: `resume` names the items it still followed at `start` (None: read
    the whole look-back). They are fed from their own histories
    (`replay.prefeed`) and the streams are read from `start` only, so a
    roll-up reads its own range, not six hours before it each time, and the
    streams need not keep the look-back. Also the items followed at `end`,
    the next range's `resume`."""
    rolled, _, followed = await _rolled(store, start, end, (), settings, True, resume)
    return rolled, followed


async def _rolled(
    store: Store,
    start: int,
    end: int,
    bounds: Sequence[int],
    settings: Any,
    by_item: bool,
    resume: Sequence[str] | None,
) -> tuple[Rolled, list[Agg], list[str]]:
    st = settings or await history.settings(store)
    rolled, buckets, inexact, followed = await _roll(
        store, start, end, st, FOLD_LAG_MS, bounds, by_item, resume
    )
    if inexact:
        log.info(
            "KPIs of %s + %d min read again, folding later: %s",
            hour_name(start),
            (end - start) // 60_000,
            inexact,
        )
        rolled, buckets, inexact, followed = await _roll(
            store, start, end, st, history.MARGIN_MS, bounds, by_item, resume
        )
        if inexact:
            log.warning(
                "KPIs of %s + %d min not exact: %s", hour_name(start), (end - start) // 60_000, inexact
            )
    return rolled, buckets, followed


async def _roll(
    store: Store,
    start: int,
    end: int,
    settings: Any,
    lag: int,
    bounds: Sequence[int],
    items: bool,
    resume: Sequence[str] | None = None,
) -> tuple[Rolled, list[Agg], str, list[str]]:
    """`roll_buckets`'s sums folding `lag` behind the read position, why
    they are not exact ("" when they are), and the items still followed at
    the end (`roll_part`)."""
    now = store.now_ms()
    tracker = IncrementalTracker(settings, since=start)
    by_item = ByItem(store) if items else None
    by_time = ByBucket(bounds)
    sinks: list[FoldSink] = [s for s in (by_item, by_time if bounds else None) if s is not None]
    tracker.on_fold = sinks[0] if len(sinks) == 1 else Sinks(sinks)
    held, seen = await replay.status_at(store, start, min(max(end, now), end + STATUS_AHEAD_MS), page=PAGE)
    late = []
    for v in await replay.views_chunked(store):
        since = int(v.get("since", 0))
        if v["agent_id"] in seen or since >= end:
            continue  # a status from `end` on counts for nothing here
        if since <= start:
            replay.seed(tracker, v)
        else:
            # a change the streams lack: seeded before the events, it would
            # colour the agent's time before it
            late.append(v)
    for aid, (status, reason, at) in held.items():
        tracker.seed_status(aid, status, reason, at)

    # the agents' time folded at each bucket's bound, and at `end`
    due = list(bounds)
    times: list[Agg] = []

    async def fold_to(to: int) -> None:
        while due and due[0] <= to:
            await _steps(_fold(tracker, due.pop(0)))
            times.append(tracker.folded_time())
        await _steps(_fold(tracker, to))
        if by_item is not None:
            await by_item.flush(tracker.items)

    async def fold(last: int) -> None:
        to = min(end, last - lag)
        # a status the streams lack, from its view, once the fold reaches
        # it (no change of the agent is fed: it colours nothing before)
        for v in [v for v in late if int(v.get("since", 0)) <= to]:
            late.remove(v)
            replay.seed(tracker, v)
        await fold_to(to)

    reach = Reach(start - LOOKBACK_MS, start, end)
    if resume is not None:
        # the items the range before still followed, from their histories:
        # they are all of the look-back that can count here (anything else
        # of it met again is recalled from its history, `replay.recall`)
        reach = Reach(start - LOOKBACK_MS, start, end, fed_from=start)
        await replay.prefeed(store, tracker, list(resume), reach.routing, start)
    async for _ in replay.replay(store, tracker, reach, fold, page=PAGE):
        pass
    for v in late:
        replay.seed(tracker, v)
    await fold_to(end)
    if bounds:
        times.append(tracker.folded_time())
    groups = await _steps(tracker.folded_sums())
    out: Rolled = {
        "center": {"": groups.center},
        "queue": groups.queues,
        "channel": groups.channels,
        "agent": groups.agents,
        **(by_item.sums if by_item is not None else {}),
    }
    for b, (lo, hi) in zip(by_time.sums, itertools.pairwise(times), strict=True):
        time_into(b, _less(hi, lo))
    return {d: v for d, v in out.items() if v}, by_time.sums, tracker.inexact, sorted(tracker.items)


def _less(a: Agg, b: Agg) -> Agg:
    """The agents' time in `a` less that in `b` (b's range a part of a's)."""
    out = Agg()
    time_into(out, a)
    time_into(out, b, -1)
    out.status_ms = {k: v for k, v in out.status_ms.items() if v}
    return out


class Sinks:
    """Several `incremental.FoldSink`s told the same."""

    def __init__(self, sinks: Sequence[FoldSink]) -> None:
        self.sinks = sinks

    def add(self, row: FactRow, first_contact: bool) -> None:
        for s in self.sinks:
            s.add(row, first_contact)

    def resolve(self, row: FactRow, n: int) -> None:
        for s in self.sinks:
            s.resolve(row, n)


class ByBucket:
    """The facts a tracker folds, summed by the time bucket holding them
    (bucket i from bounds[i] until the next bound): an `incremental.FoldSink`."""

    def __init__(self, bounds: Sequence[int]) -> None:
        self.bounds = list(bounds)
        self.sums = [Agg() for _ in self.bounds]

    def _of(self, row: FactRow) -> Agg | None:
        i = bisect_right(self.bounds, row[F_TS]) - 1
        return self.sums[i] if i >= 0 else None

    def add(self, row: FactRow, first_contact: bool) -> None:
        a = self._of(row)
        if a is not None:
            apply_row(a, row, first_contact)

    def resolve(self, row: FactRow, n: int) -> None:
        a = self._of(row)
        if a is not None:
            a.resolved_first += n


class ByItem:
    """The facts a tracker folds, summed by their item's customer, type and
    source (`history.attributes`, read when a page's facts are summed): an
    `incremental.FoldSink` holding one page's facts at most, and the
    attributes of the items the tracker still follows (an item's facts are
    folded over several pages; read once, not once a page)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sums: Rolled = {d: {} for d in BY_ITEM}
        self._added: list[tuple[FactRow, bool]] = []
        self._resolved: list[tuple[FactRow, int]] = []
        self._attrs: dict[str, dict[str, str]] = {}

    def add(self, row: FactRow, first_contact: bool) -> None:
        self._added.append((row, first_contact))

    def resolve(self, row: FactRow, n: int) -> None:
        self._resolved.append((row, n))

    async def flush(self, following: Container[str]) -> None:
        """Sum the facts told of since the last flush; keep the attributes
        of the items still `following` only."""
        added, resolved = self._added, self._resolved
        self._added, self._resolved = [], []
        attrs = self._attrs
        works = {r[F_WORK] for r, _ in added} | {r[F_WORK] for r, _ in resolved}
        missing = sorted(w for w in works if w and w not in attrs)
        for i in range(0, len(missing), ATTRS_CHUNK):
            attrs.update(await history.attributes(self.store, missing[i : i + ATTRS_CHUNK]))
        for row, first_contact in added:
            of = attrs.get(row[F_WORK], {})
            for dim in BY_ITEM:
                apply_row(agg_of(self.sums[dim], of.get(dim, "")), row, first_contact)
        for row, n in resolved:
            of = attrs.get(row[F_WORK], {})
            for dim in BY_ITEM:
                agg_of(self.sums[dim], of.get(dim, "")).resolved_first += n
        self._attrs = {w: a for w, a in attrs.items() if w in following}


def _fold(tracker: IncrementalTracker, before: int) -> Generator[None, None, None]:
    """Fold everything before `before` into the sums from the range's start.
    No sliding window is asked for: a horizon past the fold point keeps no
    per-minute buckets or marks (summing each fact into a bucket too was a
    quarter of the roll-up's CPU)."""
    return tracker.fold_steps(before, before + -before % BUCKET_MS)


async def _steps(steps: Generator[None, None, T]) -> T:
    """Run a tracker's steps, yielding to the event loop between them (the
    roll-up runs beside this process's sockets)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await asyncio.sleep(0)


class Rollup(Periodic):
    """The periodic roll-up and trim task of one process.

    An hour is rolled up in parts of `step_minutes` (default 60: the hour in
    one piece), each once it has closed plus `LAG_MS`: the part's sums are
    added to its hour's, written with the cursor (``kpi_state``: ``rolled``,
    where the next part starts, and ``open``, the items the part still
    followed at its end) in one MULTI, so a process dying between two parts
    leaves the hour and the cursor as they were. The next part resumes from
    that cursor (`roll_part`): it reads the streams from its own start, not
    from six hours before it."""

    name = "kpi-rollup"
    tick_first = True

    def __init__(
        self,
        store: Store,
        *,
        retention_days: float,
        rollup_days: float = 400,
        timezone: str = "UTC",
        every: float = 30.0,
        step_minutes: int = 60,
        margin_ms: int = history.MARGIN_MS,
    ) -> None:
        if step_minutes <= 0 or HOUR_MS % (step_minutes * 60_000):
            raise ValueError(f"a roll-up step must divide the hour, got {step_minutes} minutes")
        self.store = store
        self.retention_ms = int(retention_days * 86400_000)
        self.rollup_ttl = int(rollup_days * 86400)
        self.tz = ZoneInfo(timezone)
        self.step = step_minutes * 60_000
        # kept behind the cursor by the trim (PRESENCE_CLOCK_MARGIN_SECONDS):
        # the servers' clock skew against Redis's. The reads keep
        # `history.MARGIN_MS`, which bounds it: reading more than is kept
        # costs nothing, keeping more than is read would lose events.
        if not 0 < margin_ms <= history.MARGIN_MS:
            raise ValueError(f"the trim's clock margin must be 1 to {history.MARGIN_MS} ms, got {margin_ms}")
        self.margin_ms = margin_ms
        super().__init__(every)
        self.lock = Lock(store, store.keys.kpi_lock("rollup"), LOCK_TTL_MS)

    async def tick(self) -> None:
        await self.run_once()

    def next_delay(self) -> float:
        """Until the next multiple of the interval on the store's clock, plus `ALIGN_MS`."""
        every = int(self.interval * 1000)
        if every <= 0:
            return self.interval
        return ((ALIGN_MS - self.store.now_ms()) % every or every) / 1000

    async def run_once(self, max_hours: int = 48) -> int:
        """Roll up the closed parts not yet done (at most `max_hours` hours
        of them), then trim; the parts rolled up."""
        if not await self.lock.acquire():
            return 0
        try:
            done = 0
            now = self.store.now_ms()
            rolled = await self._first_hour(now)
            resume = await self._resume(rolled)
            settings = None
            days: dict[str, int] = {}
            while done < max_hours * (HOUR_MS // self.step) and rolled + self.step + LAG_MS <= now:
                if settings is None:
                    # every agent's profile: read only when a part is due,
                    # not on every 30-second tick
                    settings = await history.settings(self.store)
                end = rolled - rolled % self.step + self.step
                resume = await self.roll_part(rolled, end, settings, resume)
                days.setdefault(day_name(rolled, self.tz), rolled)
                rolled = end
                done += 1
                if not await self.lock.renew():
                    # this run outlived the lock: its holder rolls up the next
                    # parts; the days of ours are still summed below (nobody
                    # else would, and the sums are idempotent overwrites)
                    log.warning("roll-up lock lost after %d parts; leaving the rest to its holder", done)
                    break
            for first in days.values():
                await self.roll_day(first)
            await self.trim(now, rolled, resumable=resume is not None)
            return done
        finally:
            await self.lock.release()

    async def _first_hour(self, now: int) -> int:
        k = self.store.keys
        raw = await self.store.redis.hget(k.kpi_state, "rolled")
        if raw:
            return int(raw)
        first: list[Any] = await self.store.redis.xrange(k.event_stream, count=1) or []
        start = now
        if first:
            # any entry's time (a status change's too: the first is often a login)
            e = parse_event(first[0][1])
            start = e.ts if e is not None else now
        hour = start - start % HOUR_MS
        await self.store.redis.hset(k.kpi_state, "rolled", hour)
        return hour

    async def _resume(self, rolled: int) -> list[str] | None:
        """The items followed at `rolled` by the part that ended there (None:
        none recorded, e.g. the first part or one rolled by `roll_hour`)."""
        at, raw = await self.store.redis.hmget(self.store.keys.kpi_state, "open_at", "open")
        if at is None or int(at) != rolled or raw is None:
            return None
        return [str(w) for w in msgpack.unpackb(raw, raw=False)]

    async def roll_part(self, start: int, end: int, settings: Any, resume: Sequence[str] | None) -> list[str]:
        """Roll up [start, end) (within one hour), add it to its hour's sums
        and move the cursor to `end`, in one MULTI; the items followed at `end`."""
        part, followed = await roll_part(self.store, start, end, settings, resume)
        k = self.store.keys
        hour = start - start % HOUR_MS
        if start != hour:
            # the parts before in this hour: written by this task, under its lock
            merge(part, decode(await self.store.redis.get(k.kpi_hour(hour_name(hour)))))
        pipe = self.store.redis.pipeline(transaction=True)
        pipe.set(k.kpi_hour(hour_name(hour)), encode(part), ex=self.rollup_ttl)
        pipe.hset(k.kpi_state, mapping={"rolled": end, "open_at": end, "open": msgpack.packb(followed)})
        await pipe.execute()
        return followed

    async def roll_hour(self, start: int, settings: Any = None, *, day: bool = True) -> Rolled:
        """Compute and store one hour from its look-back (no cursor), and
        (unless told not to) re-sum its day."""
        rolled = await roll_range(self.store, start, start + HOUR_MS, settings)
        k = self.store.keys
        await self.store.redis.set(k.kpi_hour(hour_name(start)), encode(rolled), ex=self.rollup_ttl)
        if day:
            await self.roll_day(start)
        return rolled

    async def roll_day(self, any_ms: int) -> None:
        day = day_name(any_ms, self.tz)
        local = datetime.fromtimestamp(any_ms / 1000, self.tz).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        first = int(local.timestamp() * 1000)
        hours = [first + i * HOUR_MS for i in range(25) if day_name(first + i * HOUR_MS, self.tz) == day]
        k = self.store.keys
        raws = await self.store.redis.mget([k.kpi_hour(hour_name(h)) for h in hours])
        total: Rolled = {}
        for raw in raws:
            merge(total, decode(raw))
        await self.store.redis.set(k.kpi_day(day), encode(total), ex=self.rollup_ttl)

    async def trim(self, now: int, rolled: int, *, resumable: bool = False) -> None:
        """Drop raw events older than the retention, but none not yet rolled
        up: with a cursor (`resumable`) the next part reads from `rolled`
        on, without one it reads its look-back too."""
        keep_from = min(now - self.retention_ms, rolled if resumable else rolled - LOOKBACK_MS)
        if keep_from <= 0:
            return
        k = self.store.keys
        for key in (k.event_stream, k.status_stream):
            # ids are Redis's clock; the margin keeps skewed events inside the retention
            await self.store.redis.xtrim(key, minid=f"{keep_from - self.margin_ms}-0", approximate=False)
        await self.store.redis.hset(k.kpi_state, "trimmed", keep_from)


async def read_rollups(store: Store, start: int, end: int) -> dict[int, Rolled]:
    """Stored hours in [start, end), by hour start (hours never rolled are absent)."""
    first = start - start % HOUR_MS
    hours = list(range(first, end, HOUR_MS))
    if not hours:
        return {}
    raws = await store.redis.mget([store.keys.kpi_hour(hour_name(h)) for h in hours])
    return {h: decode(raw) for h, raw in zip(hours, raws, strict=True) if raw}
