"""Replaying the streams into an `IncrementalTracker`, page by page, folding as it reads.

The live KPIs' rebuild (`live.LiveKpis`) and the hourly roll-up (`rollup`)
both need a tracker fed a long stretch of the streams (a day so far, an hour
and its look-back) without holding it: `replay` reads both streams a page at
a time (`merged_pages`), feeds each page (`fold_in`) and hands the caller the
latest ``ts`` fed, so it folds what lies behind the read position (less the
clock margin: entries are read by id, which follows ``ts`` only that
closely). What stays in memory is then the last minutes' events, the items
still open and one timeline per agent, not the stretch read.

Two things a stretch read from its start cannot tell are asked for apart:

* each agent's status at the start (`status_at`): what preceded its first
  change since, or its view when it has not changed (`seed`). Learnt from
  that first change only when it is read, it would come after the agent's
  time was folded;
* an item the tracker forgot (folded, finished) that has events again, e.g.
  a case re-opened: its state comes back from its own history (`recall`),
  so its earlier completion is judged again exactly.

What `Reach` bounds (by ``ts``) is what the full pass over the same stretch
is fed, so the two give the same figures.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from presence.kpi import history
from presence.kpi.events import Event
from presence.kpi.incremental import IncrementalTracker
from presence.store import Store

Entry = tuple[str, dict[Any, Any]]  # a stream entry: id, fields

# Stream entries decoded, and events fed, between two yields: a step of 500
# held the loop for several ms under load, and a status change's trip to its
# own socket (a few hops through the loop) waited for one step at each hop
FEED_CHUNK = 100
VIEWS_CHUNK = 500  # agents' views per script call
MAX_SEQ = 18446744073709551615  # the highest sequence number of a stream id


@dataclass(frozen=True, slots=True)
class Reach:
    """The events a replay feeds, by ``ts``: routing events from `routing`
    (an item's earlier events are recalled from there too), status changes
    from `status`, none after `until` (None: up to the streams' end).
    With `fed_from`, the routing events before it are not read from the
    streams: the items followed then were fed from their own histories
    (`prefeed`), and an item met later is recalled from `routing` on."""

    routing: int
    status: int
    until: int | None = None
    fed_from: int | None = None

    def lo(self) -> str:
        """The first stream id to read (ids are Redis's clock: a margin before)."""
        first = self.routing if self.fed_from is None else self.fed_from
        return f"{max(0, min(first, self.status) - history.MARGIN_MS)}-0"

    def hi(self) -> str:
        return "+" if self.until is None else f"{self.until + history.MARGIN_MS}-{MAX_SEQ}"


async def replay(
    store: Store,
    tracker: IncrementalTracker,
    reach: Reach,
    fold: Callable[[int], Awaitable[None]],
    *,
    page: int = history.PAGE,
) -> AsyncIterator[tuple[list[Entry], list[Entry]]]:
    """Feed `tracker` the streams within `reach`, a page at a time; after
    each page that fed an event, `fold(latest ts fed)` (the caller folds
    what lies far enough behind it). Yields each page's entries once fed,
    for a caller that follows its read position."""
    async for ev_entries, st_entries in merged_pages(store, reach.lo(), page, reach.hi()):
        last = await fold_in(store, tracker, ev_entries, st_entries, reach)
        if last is not None:
            await fold(last)
        yield ev_entries, st_entries


async def fold_in(
    store: Store, tracker: IncrementalTracker, ev_entries: list[Entry], st_entries: list[Entry], reach: Reach
) -> int | None:
    """Feed stream entries within `reach` to `tracker`; the latest ``ts`` fed (None: none)."""
    # a second of events under load is thousands of entries: decode and
    # fold them in chunks, yielding between, or the pass stalls every
    # socket of this process (it was the tail of the assignment latency)
    until = reach.until
    if reach.fed_from is not None:
        # the entries read for the clock margin only (most of a short
        # range's read): left out before they are decoded
        ev_entries = _within(ev_entries, reach.fed_from, until)
    st_entries = _within(st_entries, reach.status, until)
    routing: list[Event] = []
    for i in range(0, len(ev_entries), FEED_CHUNK):
        routing += history.decode(ev_entries[i : i + FEED_CHUNK], status=False)
        await asyncio.sleep(0)
    if until is not None:
        routing = [e for e in routing if e.ts <= until]
    if reach.fed_from is not None:
        # read for the clock margin only: what of them counts was prefed
        routing = [e for e in routing if e.ts >= reach.fed_from]
    await recall(store, tracker, routing, reach.routing)
    events = [e for e in routing if e.ts >= reach.routing]
    for i in range(0, len(st_entries), FEED_CHUNK):
        events += [
            e
            for e in history.decode(st_entries[i : i + FEED_CHUNK], status=True)
            if e.ts >= reach.status and (until is None or e.ts <= until)
        ]
        await asyncio.sleep(0)
    if not events:
        return None
    await _feed_in_order(store, tracker, events)
    return events[-1].ts


async def _feed_in_order(store: Store, tracker: IncrementalTracker, events: list[Event]) -> None:
    """Feed `events`, sorted by time here, with the arrival and accept
    times of their items, a chunk at a time (the loop runs between)."""
    events.sort(key=lambda e: e.ts)
    arrivals, accepts = await history.item_times(store, events, tracker.items, tracker.arrived, more=True)
    tracker.arrivals.update(arrivals)
    tracker.accepts.update(accepts)
    for i in range(0, len(events), FEED_CHUNK):
        tracker.feed(events[i : i + FEED_CHUNK])
        await asyncio.sleep(0)


def _within(entries: list[Entry], lo: int, hi: int | None) -> list[Entry]:
    """The entries whose ``ts`` lies in [lo, hi] (None: no end), read from
    the raw fields; one without a readable ``ts`` is kept (decoding drops it)."""
    out = []
    for entry in entries:
        raw = entry[1].get(b"ts", entry[1].get("ts"))
        try:
            ts = int(float(raw if raw is not None else ""))
        except ValueError:
            out.append(entry)
            continue
        if ts >= lo and (hi is None or ts <= hi):
            out.append(entry)
    return out


async def prefeed(
    store: Store, tracker: IncrementalTracker, works: Sequence[str], since: int, before: int
) -> None:
    """Feed `tracker` the events of `works` with `since` <= ts < `before`,
    from each item's own history rather than the streams: a range that
    resumes where the previous one ended (`rollup`) starts with the items
    that one still followed, as a read of the look-back would have, without
    reading (nor keeping in the streams) everything else of the look-back."""
    events: list[Event] = []
    for i in range(0, len(works), VIEWS_CHUNK):
        for hist in (await history.item_histories(store, works[i : i + VIEWS_CHUNK])).values():
            events += [e for e in hist if since <= e.ts < before]
        await asyncio.sleep(0)
    if events:
        await _feed_in_order(store, tracker, events)


async def recall(store: Store, tracker: IncrementalTracker, routing: list[Event], since: int) -> None:
    """Items the tracker forgot (finished and folded) that have events
    again, e.g. a case re-opened: their state back from their own history
    (from `since` on, as the tracker was fed) first. An item whose first
    event is its create is new."""
    batch: dict[str, list[Event]] = {}
    new: set[str] = set()  # first seen here by their create: nothing to recall
    for e in routing:
        if not e.work or e.work in new:
            continue
        if e.work in batch:
            batch[e.work].append(e)
        elif e.work not in tracker.items:
            if e.ev == "create":
                new.add(e.work)
            else:
                batch[e.work] = [e]
    if not batch:
        return
    for wid, hist in (await history.item_histories(store, batch)).items():
        tracker.recall(wid, history.earlier(hist, batch[wid], since))


async def status_at(
    store: Store, since: int, until: int | None = None, *, page: int = history.PAGE
) -> tuple[dict[str, tuple[str, str, int]], set[str]]:
    """Per agent with a status change in [since, until], the status it left
    at its earliest: (status, reason, since), as `Tracker` reads a first
    change's ``prev``; and every agent with a change there (those with no
    usable ``prev`` too, whom a view must not seed either)."""
    out: dict[str, tuple[str, str, int]] = {}
    first: dict[str, int] = {}
    hi = "+" if until is None else f"{until + history.MARGIN_MS}-{MAX_SEQ}"
    lo = f"{max(0, since - history.MARGIN_MS)}-0"
    async for entries in history.pages(store, store.keys.status_stream, lo, hi, page_size=page):
        for e in history.decode(entries, status=True):
            # the earliest by ``ts`` (read by id, the stream follows it only
            # to within the clock margin), as the full pass sorts them
            if e.ts < since or (until is not None and e.ts > until) or first.get(e.agent, e.ts + 1) <= e.ts:
                continue
            first[e.agent] = e.ts
            out.pop(e.agent, None)
            try:
                at = int(float(e.get("prev_since")))
            except ValueError:
                continue
            if e.get("prev") and 0 < at <= e.ts:
                out[e.agent] = (e.get("prev"), e.get("prev_reason"), at)
    return out, set(first)


def seed(tracker: IncrementalTracker, view: Mapping[str, Any]) -> None:
    """The agent's current status (its view), for a tracker that saw no change of it."""
    since = int(view.get("since", 0))
    tracker.seed_status(view["agent_id"], view.get("status", ""), view.get("reason", ""), since)


async def views_chunked(store: Store, chunk: int = VIEWS_CHUNK) -> list[dict[str, Any]]:
    """Every agent's view, read `chunk` agents per script call (the loop runs between)."""
    ids = sorted(history._s(x) for x in await store.redis.smembers(store.keys.agents))
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), chunk):
        out += await store.views(ids[i : i + chunk])
    return out


async def merged_pages(
    store: Store, lo: str, page: int, hi: str = "+"
) -> AsyncIterator[tuple[list[Entry], list[Entry]]]:
    """Both streams with ids in [lo, hi], `page` entries per call, as chunks
    of (event entries, status entries) that end at the same id: each chunk
    holds every entry of either stream up to where it ends."""
    k = store.keys
    keys = {"events": k.event_stream, "status": k.status_stream}
    start = dict.fromkeys(keys, lo)
    buf: dict[str, list[Entry]] = {n: [] for n in keys}
    done = dict.fromkeys(keys, False)
    while True:
        for n, key in keys.items():
            if not buf[n] and not done[n]:
                got: list[Any] = await store.redis.xrange(key, min=start[n], max=hi, count=page) or []
                # redis-py's own dict of each entry's fields, not a copy
                # (a page held twice while it was decoded)
                buf[n] = [(history._s(i), f if isinstance(f, dict) else dict(f or {})) for i, f in got]
                done[n] = len(got) < page
                del got
                if buf[n]:
                    start[n] = "(" + buf[n][-1][0]
        if not buf["events"] and not buf["status"]:
            return
        # as far as both are known: a stream still being read bounds the chunk
        ends = [entry_id(buf[n][-1][0]) for n in keys if buf[n] and not done[n]]
        upto = min(ends) if ends else None
        chunk = {}
        for n in keys:
            i = len(buf[n]) if upto is None else sum(1 for e in buf[n] if entry_id(e[0]) <= upto)
            chunk[n], buf[n] = buf[n][:i], buf[n][i:]
        yield chunk["events"], chunk["status"]


async def ordered(
    store: Store, start_ms: int, end_ms: int, *, page: int = history.PAGE
) -> AsyncIterator[Event]:
    """Every event (routing and status) with start <= ts <= end, in time
    order as `history.load` sorts them (by ts, routing before status, each
    stream in its order), read a page at a time (`merged_pages`). What is
    held is a page and the clock margin's events: once both streams are
    read up to an id, every entry still unread has a later id, so a ts no
    earlier than the margin before it; what lies before that is given."""
    lo, hi = f"{max(0, start_ms - history.MARGIN_MS)}-0", f"{end_ms + history.MARGIN_MS}-{MAX_SEQ}"
    held: list[tuple[int, int, int, Event]] = []
    n = 0
    async for ev_entries, st_entries in merged_pages(store, lo, page, hi):
        read_to = 0
        for kind, entries in enumerate((ev_entries, st_entries)):
            if entries:
                read_to = max(read_to, entry_id(entries[-1][0])[0])
            for i in range(0, len(entries), FEED_CHUNK):
                for e in history.decode(entries[i : i + FEED_CHUNK], status=kind == 1):
                    if start_ms <= e.ts <= end_ms:
                        heapq.heappush(held, (e.ts, kind, n, e))
                        n += 1
                await asyncio.sleep(0)
        while held and held[0][0] < read_to - history.MARGIN_MS:
            yield heapq.heappop(held)[3]
    while held:
        yield heapq.heappop(held)[3]


def entry_id(entry_id: str) -> tuple[int, int]:
    """A stream id as (ms, sequence), for comparing two."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
