"""The live tracker: the same figures as the full pass, kept up to date as events arrive (pure).

`IncrementalTracker` is the `Tracker` the live wallboard task keeps between
ticks. It folds events exactly as the full pass does, and also keeps:

* per window, running sums of the facts inside it (`RunningWindow`): facts
  enter and leave in time order, so a tick costs the facts that moved, not
  the window's; a fact recorded out of time order is slotted in where it
  belongs;
* per agent, a `Timeline`: the integrals of each time measure at each change
  and the rates after it, so an agent's time in any window is two look-ups,
  not a pass over its day.

**Bounded memory.** Given `since` (the start of the cumulative window, the
wallboard's "today"), `fold(before, horizon)` sums everything before
`before` into that window's sums and forgets it: the facts (into `base`,
and from `horizon` on into per-bucket sums, `buckets`: one `Bucket` per
minute, each group's fact sums and longest answer wait packed in bytes),
each agent's time (into its timeline's `base`, and its integrals at each
whole minute from `horizon` on, `marks`), the closed spans, and the items
that are finished, not held and have no fact left. A sliding window starting on a whole
minute at or after `horizon` is then its buckets plus the facts kept, and
an agent's time in it is its integral at the fold point less its mark,
plus what the timeline holds after. What stays is what a later figure can
still need: the facts since `before` (the live task folds every minute,
two minutes back), one bucket per minute of the longest sliding window and
one mark per agent and minute, open items, agents' current spans. So
memory follows the traffic of the last minutes and the number of groups,
not the hour's or the day's. Kept facts and spans are plain tuples of
strings and numbers, and bucket sums and marks bytes, which the cyclic GC
does not walk.

A closed range (the hourly roll-up, `rollup.roll_range`) is the same
fold with `since` at its start: folded up to its end, `folded_sums` is its
facts and agent time as the full pass sums them; `on_fold` (a `FoldSink`)
is told of each fact as it is summed, and of a first-contact resolution a
later flag takes back, for a caller grouping them its own way.

Nothing is lost by forgetting, because whatever could still change a folded
figure is known or can be asked for:

* an event of a forgotten item (a case re-opened hours later) first brings
  its state back: the caller hands `recall` the item's own events fed
  before (its history in Redis), replayed without counting anything, so a
  reopen still spoils the first-contact resolution of a completion already
  summed in "today" (and takes it out of the bucket that holds it);
* a fact recorded late, before the fold point, goes straight into "today",
  its bucket and the windows that hold its minute;
* a change that would reach before the fold point in agent time (an event
  that old arriving late, a changed list of routable statuses) cannot be
  replayed from memory: the tracker says so (`inexact`) and the caller
  rebuilds it from the streams.

Every sum is integer arithmetic, so every figure equals the full pass's
exactly (``tests/unit/test_kpi.py`` compares the two on random histories,
folded or not).
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Mapping
from operator import attrgetter, itemgetter
from typing import Protocol

from presence.kpi.aggregates import (
    Agg,
    Groups,
    agg_of,
    apply_row,
    fact_targets,
    queues_of,
    sign_fact,
    time_into,
)
from presence.kpi.events import Event
from presence.kpi.facts import (
    F_FIRST,
    F_KIND,
    F_TS,
    F_WAIT,
    F_WORK,
    S_AGENT,
    S_END,
    S_REASON,
    S_START,
    S_STATUS,
    S_WEIGHT,
    Fact,
    FactRow,
    Settings,
    Span,
    SpanRow,
)
from presence.kpi.tracker import STEP, ItemState, Tracker

_ts = itemgetter(F_TS)

# The width of a bucket of folded facts and the spacing of the timelines'
# marks: a sliding window that reaches before the fold point starts on one.
BUCKET_MS = 60_000


class FoldSink(Protocol):
    """What a caller grouping the folded facts its own way (by an item's
    customer, type, source: `rollup`) is told, as `IncrementalTracker.base` is."""

    def add(self, row: FactRow, first_contact: bool) -> None:
        """`row` is summed, first-contact resolved or not."""

    def resolve(self, row: FactRow, n: int) -> None:
        """`row`, summed before, stops (n = -1) counting as first-contact resolved."""


class IncrementalTracker(Tracker):
    """A `Tracker` whose inclusive windows cost the events since the last
    aggregation, not the day's history; with `since`, one that can fold what
    lies before its sliding windows into the sums of the window starting at
    `since`."""

    def __init__(
        self,
        settings: Settings,
        arrivals: Mapping[str, int] | None = None,
        accepts: Mapping[str, int] | None = None,
        *,
        since: int | None = None,
        bucket_ms: int = BUCKET_MS,
    ) -> None:
        super().__init__(settings, arrivals, accepts)
        self.since = since  # start of the cumulative window whose sums survive `fold`
        self.folded_to: int | None = None  # everything before this is folded
        self.bucket_ms = bucket_ms
        # the sums of the facts folded, per bucket [start, start + bucket_ms)
        # from `horizon` on: what the sliding windows hold before the fold point
        self.buckets: dict[int, Bucket] = {}
        self.horizon: int | None = None
        # why the figures can no longer be made exact from memory ("" while
        # they can): the caller rebuilds the tracker from the streams
        self.inexact = ""
        self.rows: list[FactRow] = []  # the facts kept, sorted by time
        # work -> its first-contact handled facts kept, then those folded into
        # `base` while the item is still followed (a later flag takes them back)
        self.first: dict[str, tuple[FactRow, ...]] = {}
        self.folded_first: dict[str, tuple[FactRow, ...]] = {}
        self.base = Groups()  # the sums of the facts folded, from `since` on
        # per agent, the running integrals of its spans, kept up to date as
        # events are fed
        self.timelines: dict[str, Timeline] = {}
        self.held: dict[str, dict[str, ItemState]] = {}  # agent -> items it holds now
        self.agent_spans: dict[str, list[SpanRow]] = {}  # closed spans by agent
        self._stale: set[str] = set()  # agents whose timeline is rebuilt from spans
        self._rates_key: tuple[frozenset[str], str] = (settings.routable, settings.offline)
        self._measures = Measures(bucket_ms)  # the timelines' marks, as arrays in this order
        # per window, running sums of the facts inside it
        self._running: dict[str, RunningWindow] = {}
        # told of every fact summed into "today"'s base, and of every change of
        # its first-contact resolution there: a caller's own grouping of them
        self.on_fold: FoldSink | None = None

    # -- folding: the full pass's, plus the timelines and running sums

    def _close(self, span: Span) -> None:
        self.agent_spans.setdefault(span.agent, []).append(tuple(span))  # type: ignore[arg-type]

    def _record(self, f: Fact) -> None:
        row: FactRow = tuple(f)  # type: ignore[assignment]
        it = self.items.get(f.work)
        if it is not None and (it.last_fact is None or f.ts > it.last_fact):
            it.last_fact = f.ts
        if self.folded_to is not None and f.ts < self.folded_to:
            self._record_folded(row)
            return
        if f.first_contact:
            self.first[f.work] = (*self.first.get(f.work, ()), row)
        rows, ts = self.rows, f.ts
        if not rows or rows[-1][F_TS] <= ts:
            p = len(rows)
            rows.append(row)
        else:  # out of time order: slotted in after the facts of its time
            p = bisect_right(rows, ts, key=_ts)
            rows.insert(p, row)
        if not self._running:
            return
        fc = self._counts_first(row)
        for rw in self._running.values():
            if p < rw.lo or (p <= rw.hi and ts < rw.start):
                rw.lo += 1
                rw.hi += 1
            elif p <= rw.hi and ts <= rw.end:
                rw.add(row, fc, late=p < rw.hi)
                rw.hi += 1

    def _record_folded(self, row: FactRow) -> None:
        """A fact recorded late, before the fold point: straight into the
        folded sums and the windows that hold its time."""
        fc = self._counts_first(row)
        counted = self._into_folded(row, fc)
        for rw in self._running.values():
            self._add_folded(rw, row, fc)
        if counted and fc and row[F_WORK] in self.items:
            self.folded_first[row[F_WORK]] = (*self.folded_first.get(row[F_WORK], ()), row)

    def _into_folded(self, row: FactRow, fc: bool) -> bool:
        """Count a folded fact in "today"'s base and its bucket; whether it
        counts in either."""
        ts, counted = row[F_TS], False
        if self.since is not None and ts >= self.since:
            _apply(self.base, row, fc)
            counted = True
            if self.on_fold is not None:
                self.on_fold.add(row, fc)
        if self.horizon is not None and ts >= self.horizon:
            m = ts - ts % self.bucket_ms
            b = self.buckets.get(m)
            if b is None:
                b = self.buckets[m] = Bucket()
            b.add(row, fc)
            counted = True
        return counted

    def _add_folded(self, rw: RunningWindow, row: FactRow, fc: bool) -> None:
        """Count a folded fact in `rw` if the window holds its time: "today"
        from `since`, a sliding window from its start (only in a bucket)."""
        ts = row[F_TS]
        if rw.anchored:
            if self.since is not None and ts >= self.since:
                rw.add(row, fc)
        elif rw.start <= ts:
            rw.add(row, fc, folded=True)

    def _counts_first(self, row: FactRow) -> bool:
        """Whether `row` counts as first-contact resolved now (as `Tracker._facts` reads it)."""
        if not row[F_FIRST]:
            return False
        it = self.items.get(row[F_WORK])
        return it is None or not it.flagged

    def _facts(self) -> Iterable[Fact]:
        for row in self.rows:
            f = Fact._make(row)
            if f.first_contact and not self._counts_first(row):
                f = f._replace(first_contact=False)
            yield f

    def _flag(self, it: ItemState) -> None:
        if not it.flagged:
            super()._flag(it)
            self._judge(it.work, -1)

    def _judge(self, work: str, n: int) -> None:
        """The item's first-contact facts stop (n = -1) or start again (n = 1)
        counting as resolved, in every window that holds them."""
        for row in self.first.get(work, ()):
            i = self._index(row)
            for rw in self._running.values():
                if rw.lo <= i < rw.hi:
                    rw.resolve(row, n)
        # folded into "today" and the buckets (only ever taken back: `prune`
        # never follows a fold)
        for row in self.folded_first.pop(work, ()):
            ts = row[F_TS]
            if self.since is not None and ts >= self.since:
                _resolve(self.base, row, n)
                if self.on_fold is not None:
                    self.on_fold.resolve(row, n)
            b = self.buckets.get(ts - ts % self.bucket_ms)  # none is kept before `horizon`
            if b is not None:
                b.resolve(row, n)
            for rw in self._running.values():
                if rw.anchored:
                    if self.since is not None and ts >= self.since:
                        rw.resolve(row, n)
                elif rw.start <= ts:  # in the part of the window summed from buckets
                    rw.resolve(row, n)

    def _drop_first(self, row: FactRow) -> None:
        """`row` leaves the kept facts: no longer one of its item's."""
        if row[F_FIRST]:
            work = row[F_WORK]
            left = tuple(r for r in self.first.get(work, ()) if r is not row)
            if left:
                self.first[work] = left
            else:
                self.first.pop(work, None)

    def _index(self, row: FactRow) -> int:
        i = bisect_left(self.rows, row[F_TS], key=_ts)
        while self.rows[i] is not row:
            i += 1
        return i

    def _release(self, it: ItemState, ts: int) -> None:
        holder = it.holder
        super()._release(it, ts)
        if holder:
            self.held.get(holder, {}).pop(it.work, None)
            self._touch(holder, ts)

    def _hold(self, it: ItemState, agent: str, ts: int) -> None:
        super()._hold(it, agent, ts)
        self.held.setdefault(agent, {})[it.work] = it
        self._touch(agent, ts)

    def _weigh(self, it: ItemState, weight: int) -> None:
        old, new = max(1, it.weight), max(1, weight)
        if it.holder and new != old:
            # a held item's span counts with its last weight throughout, also
            # in the part of it already folded
            self._stale.add(it.holder)
            tl = self.timelines.get(it.holder)
            if tl is not None and tl.folded is not None:
                tl.reweigh(it.held_since, new - old)
        super()._weigh(it, weight)

    def _status(self, e: Event) -> None:
        super()._status(e)
        self._touch(e.agent, e.ts)

    def _close_before_first(self, span: Span) -> None:
        super()._close_before_first(span)
        self._stale.add(span.agent)  # a span before its first change
        self._reaches_fold(span.agent, span.start, "a status held before the first change seen")

    def seed_status(self, agent: str, status: str, reason: str, since: int) -> None:
        if agent not in self.status:
            self._stale.add(agent)
            self._reaches_fold(agent, since, "an agent's status seeded")
        super().seed_status(agent, status, reason, since)

    def _reaches_fold(self, agent: str, ts: int, what: str) -> None:
        tl = self.timelines.get(agent)
        if tl is not None and tl.folded is not None and ts < tl.folded and not self.inexact:
            self.inexact = f"{what} at {ts}, before the agent's time folded at {tl.folded}"

    def _touch(self, agent: str, ts: int) -> None:
        """The agent's state changed at `ts`: extend its timeline, or, for a
        change out of time order, have it rebuilt from its spans."""
        self._reaches_fold(agent, ts, "a change of an agent")
        if agent in self._stale:
            return
        tl = self.timelines.get(agent)
        if tl is None:
            tl = self.timelines[agent] = Timeline(self._measures)
        if not tl.append(ts, rates_of(self._open_spans(agent), self.settings)):
            self._stale.add(agent)

    def _open_spans(self, agent: str) -> list[SpanRow]:
        """The agent's spans open now: its status and each item it holds."""
        spans: list[SpanRow] = []
        st = self.status.get(agent)
        if st is not None:
            spans.append((agent, st[2], None, st[0], st[1], 0))
        for it in self.held.get(agent, {}).values():
            spans.append((agent, it.held_since, None, "", "", max(1, it.weight)))
        return spans

    def recall(self, work: str, earlier: Iterable[Event]) -> None:
        """Bring back the state of `work`, forgotten by `fold`, from the events
        of it this tracker was fed before (in the order fed); call it before
        feeding the item's next events. Nothing is counted again."""
        if work in self.items:
            return
        one = {work: self.arrivals[work]} if work in self.arrivals else None
        acc = {work: self.accepts[work]} if work in self.accepts else None
        replay = Tracker(self.settings, one, acc)
        replay.feed(e for e in earlier if e.work == work)
        it = replay.items.get(work)
        if it is None:
            return
        # held, it would not have been forgotten: nothing of a span to resume
        it.holder, it.held_since = "", 0
        it.last_fact = max((f.ts for f in replay.facts), default=None)
        self.items[work] = it
        if not it.flagged and self.since is not None and self.folded_to is not None:
            since, to = self.since, self.folded_to
            lo = since if self.horizon is None else min(since, self.horizon)
            done = tuple(
                tuple(f) for f in replay.facts if f.first_contact and lo <= f.ts < to
            )  # fmt: skip
            if done:  # summed in "today" or a bucket as resolved: a later flag takes them back
                self.folded_first[work] = done  # type: ignore[assignment]

    def use(self, settings: Settings) -> None:
        """New settings (re-read from Redis): when they change which statuses
        are routable or offline, agent time already folded is `inexact`."""
        self.settings = settings
        self._check_rates()

    # -- folding what is older than the sliding windows

    def fold(self, before: int, horizon: int | None = None) -> None:
        """Sum everything before `before` into the window starting at `since`
        and into per-bucket sums from `horizon` on, and forget it
        (`fold_steps` in one go)."""
        for _ in self.fold_steps(before, horizon):
            pass

    def fold_steps(
        self, before: int, horizon: int | None = None, chunk: int = STEP
    ) -> Generator[None, None, None]:
        """`fold` in steps of about `chunk` facts, agents or items: the caller
        may yield to its event loop at each step (and leaves the tracker
        alone until the last).

        `horizon` (floored to a bucket; None: `before`, no buckets) is the
        earliest start of a sliding window still to be asked for: the facts
        folded from there on are kept as sums per bucket, each agent's time
        as its integrals at each bucket's start, and older buckets are
        forgotten. Afterwards a window must end at `before` or later and
        start at `since`, at the start of a bucket from `horizon` on, or at
        `before` or later.
        """
        if self.since is None:
            raise ValueError("fold needs `since`, the start of the window that keeps the sums")
        if self.folded_to is not None and before <= self.folded_to:
            return
        w = self.bucket_ms
        h = before if horizon is None else horizon
        h -= h % w
        if self.horizon is not None:
            h = max(h, self.horizon)
        # agent time is folded from exact timelines only
        self._check_rates()
        yield from self._rebuild_stale(chunk)
        self._forget_buckets(h)
        yield from self._fold_facts(before, chunk)
        for b in self.buckets.values():
            b.seal()
        n = 0
        for aid, tl in self.timelines.items():
            n += 1 + tl.fold(before, self.since, h)  # an agent, and the marks it made
            ss = self.agent_spans.get(aid)
            if ss and ss[0][S_END] <= before:  # type: ignore[operator]
                kept = [s for s in ss if s[S_END] > before]  # type: ignore[operator]
                if kept:
                    self.agent_spans[aid] = kept
                else:
                    del self.agent_spans[aid]
            if n >= chunk:
                n = 0
                yield
        self.folded_to = before
        for wid in list(self.items):
            it = self.items[wid]
            # finished (or never known to have arrived), held by nobody, and
            # with no fact left: nothing in memory depends on it any more
            if (
                not it.holder
                and (it.last_fact is None or it.last_fact < before)
                and (it.done or (it.created is None and it.accepted is None))
            ):
                del self.items[wid]
                self.folded_first.pop(wid, None)
            n += 1
            if n % chunk == 0:
                yield
        for aid in [a for a, h in self.held.items() if not h]:
            del self.held[aid]

    def _forget_buckets(self, horizon: int) -> None:
        """Forget the buckets before `horizon` (their facts stay in `base`),
        and the sliding windows that would still need them."""
        self.horizon = horizon
        for m in [m for m in self.buckets if m < horizon]:
            del self.buckets[m]
        for name, rw in list(self._running.items()):
            if not rw.anchored and rw.start < horizon:
                del self._running[name]  # made again from what is kept, if asked for

    def _fold_facts(self, before: int, chunk: int) -> Generator[None, None, None]:
        assert self.since is not None and self.horizon is not None
        rows, w = self.rows, self.bucket_ms
        k = bisect_left(rows, before, key=_ts)
        for name, rw in list(self._running.items()):
            # a window folded into buckets starts on one
            if not rw.anchored and rw.start < before and rw.start % w:
                del self._running[name]
        running = list(self._running.values())
        for i in range(k):
            row = rows[i]
            work = row[F_WORK]
            self._drop_first(row)
            fc = self._counts_first(row)
            counted = self._into_folded(row, fc)
            for rw in running:
                if i >= rw.hi:  # not summed yet: it never will be from the list
                    self._add_folded(rw, row, fc)
                elif i >= rw.lo and not rw.anchored:
                    rw.fold_row(row)  # from the kept facts to the buckets: same sums
            if counted and fc and work in self.items:
                self.folded_first[work] = (*self.folded_first.get(work, ()), row)
            if (i + 1) % chunk == 0:
                yield
        del rows[:k]
        for rw in running:
            if rw.hi < k:
                rw.end = max(rw.end, before - 1)
            rw.lo, rw.hi = max(0, rw.lo - k), max(0, rw.hi - k)

    def folded_sums(self, chunk: int = STEP) -> Generator[None, None, Groups]:
        """The sums of [since, folded_to) once folded there, facts and agent
        time (for a closed range, as the full pass sums it with facts up to
        but not at its end), in steps; the tracker's base is spent on it."""
        if self.since is None or self.folded_to is None:
            raise ValueError("folded_sums needs a tracker folded from `since`")
        out = {"w": self.base}
        yield from self._agent_sums(
            out, [("w", self.since)], self.folded_to, queues_of(self.settings), chunk, None
        )
        self.base = Groups()
        return out["w"]

    def folded_time(self) -> Agg:
        """Every agent's time in [since, folded_to), summed over agents (a
        closed range's time buckets are the differences of these at their
        bounds: integrals, so exactly the full pass's per bucket)."""
        if self.since is None or self.folded_to is None:
            raise ValueError("folded_time needs a tracker folded from `since`")
        caps, out = self.settings.capacities, Agg()
        for aid, tl in self.timelines.items():
            a = tl.window(self.since, self.folded_to, caps.get(aid, 0))
            if a is not None:
                time_into(out, a)
        return out

    def retained(self) -> dict[str, int]:
        """How much the tracker holds: facts, items, closed spans, timeline
        breakpoints, first-contact records (the memory bound's witnesses)."""
        return {
            "facts": len(self.rows),
            "items": len(self.items),
            "spans": sum(len(ss) for ss in self.agent_spans.values()),
            "breakpoints": sum(len(tl.times) for tl in self.timelines.values()),
            "first_contact": len(self.first) + len(self.folded_first),
            "buckets": len(self.buckets),
            "bucket_groups": sum(
                1 + len(b.queues) + len(b.channels) + len(b.agents) for b in self.buckets.values()
            ),
            "marks": sum(len(tl.marks) for tl in self.timelines.values()),
        }

    # -- windows

    def _check_windows(self, now: int, wins: list[tuple[str, int]], inclusive: bool) -> None:
        to = self.folded_to
        if to is None:
            return
        if now < to:
            raise ValueError(f"a window ending at {now} is before the facts folded up to {to}")
        h, w = self.horizon, self.bucket_ms
        for name, start in wins:
            # before the fold point: the running window from `since` holds
            # the folded sums, a sliding one those of whole buckets
            if start >= to or (inclusive and start == self.since):
                continue
            if not (inclusive and h is not None and start >= h and start % w == 0):
                raise ValueError(
                    f"window {name} starts at {start}, before the facts folded up to {to}, "
                    f"and not at a bucket kept (every {w} ms from {h})"
                )

    def _check_rates(self) -> None:
        key = (self.settings.routable, self.settings.offline)
        if key != self._rates_key:
            # the rates depend on which statuses are routable or offline
            self._rates_key = key
            self._stale.update(self.timelines)
            if self.folded_to is not None and not self.inexact:
                self.inexact = "the routable or offline statuses changed after agent time was folded"

    def _fact_sums(
        self, now: int, wins: list[tuple[str, int]], inclusive: bool, chunk: int,
        agents_for: Collection[str] | None,
    ) -> Generator[None, None, dict[str, Groups]]:  # fmt: skip
        self._check_windows(now, wins, inclusive)
        if not inclusive:  # a closed range: the full pass
            return (yield from super()._fact_sums(now, wins, inclusive, chunk, agents_for))
        out = {}
        for name, start in wins:
            out[name] = yield from self._running_window(
                name, start, now, chunk, agents_for is None or name in agents_for
            )
        return out

    def _agent_sums(
        self, out: dict[str, Groups], wins: list[tuple[str, int]], now: int,
        member_of: Mapping[str, list[str]], chunk: int, agents_for: Collection[str] | None,
    ) -> Generator[None, None, None]:  # fmt: skip
        self._check_rates()
        yield from self._rebuild_stale(chunk)
        caps = self.settings.capacities
        # agent time is summed as plain measure -> ms dicts, one per window and
        # set of queues (agents of the same queues share one), and made the
        # center's and the queues' `Agg`s once at the end: an `Agg` per agent
        # and window and a `time_into` per group were most of a tick's cost
        # (2,000 windows a second for 500 agents). The integer sums are the
        # same; the statuses and queues keep the order in which an agent by
        # agent pass first meets them (`_Time`).
        member = {aid: tuple(qs) for aid, qs in member_of.items()}
        sums = [(name, start, agents_for is None or name in agents_for, _Time()) for name, start in wins]
        starts = [start for _, start in wins]
        n = 0
        for aid, tl in self.timelines.items():
            cap = caps.get(aid, 0)
            queues = member.get(aid, ())
            for (name, _, rows, time), d in zip(sums, tl.windows_sums(starts, now), strict=True):
                if d is None:
                    continue
                if rows:
                    time_into(agg_of(out[name].agents, aid), _time_agg(d, cap))
                time.add(queues, d, cap)
            n += len(wins)
            if n >= chunk:
                n = 0
                yield
        for name, _, _, time in sums:
            time.into(out[name])

    def _rebuild_stale(self, chunk: int) -> Generator[None, None, None]:
        n = 0
        for aid in list(self._stale):
            self.timelines[aid] = self._rebuild_timeline(aid)
            n += len(self.agent_spans.get(aid, ())) + 1
            if n >= chunk:
                n = 0
                yield
        self._stale.clear()

    def _running_window(
        self, name: str, start: int, now: int, chunk: int, agents: bool
    ) -> Generator[None, None, Groups]:
        """The fact sums of [start, now], moved on from the last tick's."""
        anchored = self.since is not None and start == self.since
        rw = self._running.get(name)
        to = self.folded_to
        if rw is None or start < rw.start or now < rw.end or rw.anchored != anchored:
            i = bisect_left(self.rows, start, key=_ts)
            rw = self._running[name] = RunningWindow(start, i, self.base if anchored else None)
            if not anchored and to is not None and start < to:
                yield from rw.add_buckets(self._buckets_in(start, to), chunk)
        elif not anchored and to is not None and rw.start < to and start > rw.start:
            # the start moves on by whole buckets: theirs leave the sums
            gone = self._buckets_in(rw.start, start)
            yield from rw.drop_buckets(gone, self._buckets_in(start, to), chunk)
        rows, n = self.rows, 0
        while rw.hi < len(rows) and rows[rw.hi][F_TS] <= now:
            rw.add(rows[rw.hi], self._counts_first(rows[rw.hi]))
            rw.hi += 1
            n += 1
            if n % chunk == 0:
                yield
        while rw.lo < rw.hi and rows[rw.lo][F_TS] < start:
            rw.remove(rows[rw.lo], self._counts_first(rows[rw.lo]))
            rw.lo += 1
            n += 1
            if n % chunk == 0:
                yield
        rw.start, rw.end = start, now
        return (yield from rw.snapshot(agents, chunk))

    def _buckets_in(self, start: int, end: int) -> list[Bucket]:
        """The buckets starting in [start, end), in time order."""
        return [self.buckets[m] for m in sorted(self.buckets) if start <= m < end]

    def _rebuild_timeline(self, agent: str) -> Timeline:
        old = self.timelines.get(agent)
        cut = old.folded if old is not None else None
        spans = [*self.agent_spans.get(agent, ()), *self._open_spans(agent)]
        if cut is not None:
            # what lies before the fold point is in the timeline's base
            spans = [(s[S_AGENT], max(s[S_START], cut), s[S_END], s[S_STATUS], s[S_REASON], s[S_WEIGHT])
                     for s in spans]  # fmt: skip
        tl = Timeline(self._measures)
        for t, r in sweep(spans, self.settings):
            tl.append(t, r)
        if old is not None:
            tl.base, tl.base_from, tl.folded = old.base, old.base_from, old.folded
            tl.cum, tl.marks, tl.mark0 = old.cum, old.marks, old.mark0
        return tl

    def prune(self, before: int) -> None:
        if self.folded_to is not None:
            raise RuntimeError("prune forgets what fold keeps the sums of: use one or the other")
        rows = self.rows
        gone = bisect_left(rows, before, key=_ts)
        for row in rows[:gone]:
            self._drop_first(row)
        del rows[:gone]
        for name, rw in list(self._running.items()):
            # sorted facts: those forgotten were the first `gone`
            if rw.lo < gone:
                del self._running[name]
            else:
                rw.lo -= gone
                rw.hi -= gone
        self._prune_items(before)
        for aid, ss in self.agent_spans.items():
            if ss and ss[0][S_END] is not None and ss[0][S_END] < before:
                self.agent_spans[aid] = [s for s in ss if s[S_END] is None or s[S_END] >= before]
        for tl in self.timelines.values():
            tl.forget(before)

    def _forgot(self, it: ItemState) -> None:
        if it.flagged:
            # its facts count as recorded again (as `Tracker._facts` reads them)
            self._judge(it.work, 1)


def _apply(g: Groups, row: FactRow, first_contact: bool) -> None:
    """Count `row` in `g` (its maximum wait included)."""
    for d, name in fact_targets(g, row):
        apply_row(g.center if d is None else agg_of(d, name), row, first_contact)


def _resolve(g: Groups, row: FactRow, n: int) -> None:
    for d, name in fact_targets(g, row):
        (g.center if d is None else d[name]).resolved_first += n


# the additive fact sums of an `Agg` (what a bucket adds to a window)
_FACT_SUMS = ("offered", "answered", "abandoned", "answered_in_sl", "abandoned_in_sl", "wait_ms",
              "abandon_wait_ms", "handled", "handle_ms", "resolved_first", "transfers", "csat_n",
              "csat_sum")  # fmt: skip


_MAX = len(_FACT_SUMS)  # a bucket's sums: the fact sums, then the longest answer wait
_ZERO = (0,) * (_MAX + 1)
_RESOLVED = _FACT_SUMS.index("resolved_first")
_bucket_sums = attrgetter(*_FACT_SUMS, "max_wait_ms")  # an `Agg`'s, as a bucket holds them


def _shift(a: Agg, sums: tuple[int, ...], n: int) -> None:
    """Add (n = 1) or take away (n = -1) a bucket's fact sums to `a`'s."""
    for i, f in enumerate(_FACT_SUMS):
        if sums[i]:
            setattr(a, f, getattr(a, f) + n * sums[i])


def _codec(mask: int) -> tuple[struct.Struct, tuple[int, ...]]:
    """The layout of a packed bucket sum whose nonzero fields are `mask`'s bits."""
    c = _CODECS.get(mask)
    if c is None:
        at = tuple(i for i in range(_MAX + 1) if mask >> i & 1)
        c = _CODECS[mask] = (struct.Struct(f"<H{len(at)}q"), at)
    return c


_CODECS: dict[int, tuple[struct.Struct, tuple[int, ...]]] = {}


def pack_sums(sums: tuple[int, ...]) -> bytes:
    """A bucket's sums as bytes: a mask of the nonzero fields, then those
    fields as 64-bit integers (an agent's minute has 4-7 of the 14 nonzero:
    ~105 bytes with its dict entry, against ~250 as a tuple of int objects)."""
    mask = 0
    for i, x in enumerate(sums):
        if x:
            mask |= 1 << i
    st, at = _codec(mask)
    return st.pack(mask, *[sums[i] for i in at])


def unpack_sums(raw: bytes) -> tuple[int, ...]:
    """`pack_sums` undone."""
    st, at = _codec(raw[0] | raw[1] << 8)
    out = [0] * (_MAX + 1)
    for i, v in zip(at, st.unpack(raw)[1:], strict=True):
        out[i] = v
    return tuple(out)


_PACKED_ZERO = pack_sums(_ZERO)


class Bucket:
    """One minute's folded facts: per group (the center, each queue, channel
    and agent) its `Agg` fact sums (`_FACT_SUMS`) and the longest answer
    wait, packed in bytes (`pack_sums`). Sixty of them per group live for an
    hour: with 1,000 agents at work, a tuple of int objects per agent and
    minute was ~14 MB an hour and what a soak's RSS grew by; bytes are also
    not walked by the collector (an `Agg` each, with 10,000 agents, made
    hundreds of thousands of objects every full collection walked).

    Facts are added to unpacked copies (`_open`), packed again the next
    time the sums are read (`parts`) or the fold ends (`seal`): a fold adds
    thousands of facts to the same few hundred sums."""

    __slots__ = ("_open", "agents", "center", "channels", "queues")

    def __init__(self) -> None:
        self.center = _PACKED_ZERO
        self.queues: dict[str, bytes] = {}
        self.channels: dict[str, bytes] = {}
        self.agents: dict[str, bytes] = {}
        # (id of the group dict, None's for the center, name) -> (that dict, the sums)
        self._open: dict[tuple[int, str], tuple[dict[str, bytes] | None, tuple[int, ...]]] = {}

    def parts(self) -> list[dict[str, bytes]]:
        """The packed sums by name of the center (named ""), queues, channels, agents."""
        self.seal()
        return [{"": self.center}, self.queues, self.channels, self.agents]

    def seal(self) -> None:
        """Pack the sums changed since the last time."""
        for (_, name), (d, sums) in self._open.items():
            if d is None:
                self.center = pack_sums(sums)
            else:
                d[name] = pack_sums(sums)
        self._open = {}

    def add(self, f: FactRow, first_contact: bool) -> None:
        """Count `f` (as `apply_row` does)."""
        one = Agg()
        apply_row(one, f, first_contact)
        d = _bucket_sums(one)
        self._each(f, lambda old: (*(x + y for x, y in zip(old[:_MAX], d, strict=False)),
                                   max(old[_MAX], d[_MAX])))  # fmt: skip

    def resolve(self, f: FactRow, n: int) -> None:
        """`f`'s first-contact resolution stops (n = -1) or starts again counting."""
        self._each(f, lambda old: (*old[:_RESOLVED], old[_RESOLVED] + n, *old[_RESOLVED + 1 :]))

    def _each(self, f: FactRow, change: Callable[[tuple[int, ...]], tuple[int, ...]]) -> None:
        for d, name in fact_targets(self, f):
            key = (id(d), name)
            held = self._open.get(key)
            if held is not None:
                old = held[1]
            else:
                raw = self.center if d is None else d.get(name)
                old = _ZERO if raw is None else unpack_sums(raw)
            self._open[key] = (d, change(old))


def _empty(a: Agg) -> bool:
    # every fact counts once in exactly one of these
    return not (a.offered or a.answered or a.abandoned or a.handled or a.transfers or a.csat_n)


def _parts(g: Groups) -> list[tuple[dict[str, Agg] | None, dict[str, Agg]]]:
    """(the dict a window's keys name, or None for the center; the sums by name)."""
    return [(None, {"": g.center}), (g.queues, g.queues), (g.channels, g.channels), (g.agents, g.agents)]


def _copy(a: Agg, max_wait: int) -> Agg:
    # positional: `dataclasses.replace` was most of a tick with 10,000 agents
    return Agg(a.offered, a.answered, a.abandoned, a.answered_in_sl, a.abandoned_in_sl, a.wait_ms,
               a.abandon_wait_ms, max_wait, a.handled, a.handle_ms, a.resolved_first,
               a.transfers, a.csat_n, a.csat_sum)  # fmt: skip


class RunningWindow:
    """Sums of one window [start, end]: the kept facts rows[lo:hi] (sorted
    by time), and before them what was folded. `anchored` (given the folded
    sums to start from), a window whose start never moves, whose sums
    outlive the facts; otherwise a sliding window, whose part before the
    fold point is the sum of whole buckets.

    Facts enter and leave in time order, so a tick costs the facts that
    moved, not the window's; buckets leave whole, once a minute. The longest
    answer wait per group is kept by a monotonic queue over the kept facts
    (a maximum cannot be subtracted) and, for the folded part, as the
    maximum of its buckets' maxima (`bmax`, looked at again over the
    buckets left when the bucket holding it leaves), or, in an anchored
    window that never loses a fact, as a plain maximum. First-contact
    resolution is whatever the tracker judges when a fact enters or leaves;
    it calls `resolve` when its judgement of a fact inside changes.
    """

    def __init__(self, start: int, at: int, base: Groups | None = None) -> None:
        self.start, self.end, self.lo, self.hi = start, start, at, at
        self.anchored = base is not None
        self.groups = Groups()
        if base is not None:
            g = self.groups
            g.center = _copy(base.center, base.center.max_wait_ms)
            for d, od in ((base.queues, g.queues), (base.channels, g.channels), (base.agents, g.agents)):
                for name, a in d.items():
                    od[name] = _copy(a, a.max_wait_ms)
        self.maxq: dict[tuple[int, str], deque[FactRow]] = {}  # (id of group dict, name) -> queue
        self.bmax: dict[tuple[int, str], int] = {}  # the same keys -> longest wait folded

    def add(self, f: FactRow, first_contact: bool, late: bool = False, folded: bool = False) -> None:
        """Count `f`; `late`: it lies before facts already counted; `folded`:
        it is in no kept fact, only in a bucket."""
        answered = f[F_KIND] == "answered"
        g = self.groups
        for d, name in fact_targets(g, f):
            if d is None:
                a = g.center
            else:
                a = d.get(name)  # type: ignore[assignment]
                if a is None:
                    a = d[name] = Agg()
            sign_fact(a, f, 1, first_contact)
            if not answered:
                continue
            if self.anchored:
                if f[F_WAIT] > a.max_wait_ms:
                    a.max_wait_ms = f[F_WAIT]
                continue
            if folded:
                key = (id(d), name)
                if f[F_WAIT] > self.bmax.get(key, 0):
                    self.bmax[key] = f[F_WAIT]
                continue
            q = self.maxq.get((id(d), name))
            if q is None:
                q = self.maxq[(id(d), name)] = deque()
            if late:
                _slot_in(q, f)
                continue
            while q and q[-1][F_WAIT] <= f[F_WAIT]:
                q.pop()
            q.append(f)

    def remove(self, f: FactRow, first_contact: bool) -> None:
        answered = f[F_KIND] == "answered"
        g = self.groups
        for d, name in fact_targets(g, f):
            a = g.center if d is None else d[name]
            sign_fact(a, f, -1, first_contact)
            if answered:
                q = self.maxq.get((id(d), name))
                if q and q[0] is f:
                    q.popleft()
            if d is not None and _empty(a):  # none left, no group
                del d[name]
                self.maxq.pop((id(d), name), None)
                self.bmax.pop((id(d), name), None)

    def fold_row(self, f: FactRow) -> None:
        """`f`, counted among the kept facts, is folded into its bucket: the
        sums stay, its wait moves from the queue to the folded maximum."""
        if f[F_KIND] != "answered":
            return
        for d, name in fact_targets(self.groups, f):
            key = (id(d), name)
            q = self.maxq.get(key)
            if q and q[0] is f:
                q.popleft()
            if f[F_WAIT] > self.bmax.get(key, 0):
                self.bmax[key] = f[F_WAIT]

    def add_buckets(self, buckets: list[Bucket], chunk: int = STEP) -> Generator[None, None, None]:
        """Count whole buckets (a window made again)."""
        n = 0
        for b in buckets:
            for (wkey, wd), bd in zip(_parts(self.groups), b.parts(), strict=True):
                for name, raw in bd.items():
                    a = unpack_sums(raw)
                    t = wd.get(name)
                    if t is None:
                        t = self.groups.center if wkey is None else agg_of(wkey, name)
                    _shift(t, a, 1)
                    key = (id(wkey), name)
                    if a[_MAX] > self.bmax.get(key, 0):
                        self.bmax[key] = a[_MAX]
                    n += 1
                    if n % chunk == 0:
                        yield

    def drop_buckets(
        self, gone: list[Bucket], left: list[Bucket], chunk: int = STEP
    ) -> Generator[None, None, None]:
        """The window's start passed the buckets `gone`; `left` are those it
        still holds (for the longest waits they held)."""
        n = 0
        again: dict[tuple[int, str], tuple[int, str]] = {}  # key -> (which part, name)
        for b in gone:
            for p, ((wkey, wd), bd) in enumerate(zip(_parts(self.groups), b.parts(), strict=True)):
                for name, raw in bd.items():
                    a = unpack_sums(raw)
                    t = wd[name]
                    _shift(t, a, -1)
                    key = (id(wkey), name)
                    if wkey is not None and _empty(t):
                        del wkey[name]
                        self.maxq.pop(key, None)
                        self.bmax.pop(key, None)
                        again.pop(key, None)
                    elif a[_MAX] and a[_MAX] >= self.bmax.get(key, 0):
                        again[key] = (p, name)
                    n += 1
                    if n % chunk == 0:
                        yield
        for key, (p, name) in again.items():
            top = 0
            for b in left:
                got = b.parts()[p].get(name)
                held = 0 if got is None else unpack_sums(got)[_MAX]
                if held > top:
                    top = held
            self.bmax[key] = top
            n += len(left)
            if n >= chunk:
                n = 0
                yield

    def resolve(self, f: FactRow, n: int) -> None:
        _resolve(self.groups, f, n)

    def snapshot(self, agents: bool = True, chunk: int = STEP) -> Generator[None, None, Groups]:
        """A copy of the sums (the caller adds agent time into it), in steps."""
        g = self.groups
        out = Groups(self._copy(None, "", g.center))
        pairs = [(g.queues, out.queues), (g.channels, out.channels)]
        n = 0
        for d, od in pairs + ([(g.agents, out.agents)] if agents else []):
            for name, a in d.items():
                od[name] = self._copy(d, name, a)
                n += 1
                if n % chunk == 0:
                    yield
        return out

    def _copy(self, d: dict[str, Agg] | None, name: str, a: Agg) -> Agg:
        if self.anchored:
            return _copy(a, a.max_wait_ms)
        key = (id(d), name)
        q = self.maxq.get(key)
        return _copy(a, max(q[0][F_WAIT] if q else 0, self.bmax.get(key, 0)))


def _slot_in(q: deque[FactRow], f: FactRow) -> None:
    """Put a late answer into a monotonic queue (in time order, each entry the
    longest wait from it on): dropped if a later one waited as long, and
    dropping the earlier ones that waited no longer."""
    items = list(q)
    i = len(items)
    while i and items[i - 1][F_TS] > f[F_TS]:  # after the entries of its time, like the facts
        i -= 1
    if i < len(items) and items[i][F_WAIT] >= f[F_WAIT]:
        return
    j = i
    while j and items[j - 1][F_WAIT] <= f[F_WAIT]:
        j -= 1
    q.clear()
    q.extend([*items[:j], f, *items[i:]])


def rates_of(covering: Iterable[SpanRow], settings: Settings) -> dict[str, int]:
    """How fast each measure grows (per ms) while exactly `covering` are open.

    Handling, available and staffed are unions (0 or 1), the others sums,
    as in `aggregates.one_agent_time`; a status is counted under
    ``s:<status>`` and ``s:<status>/<reason>``.
    """
    r: dict[str, int] = {}
    handling = routable = 0
    for s in covering:
        if s[S_WEIGHT]:
            handling += 1
            r["load_ms"] = r.get("load_ms", 0) + s[S_WEIGHT]
            continue
        status = s[S_STATUS]
        k = "s:" + status
        r[k] = r.get(k, 0) + 1
        if s[S_REASON]:
            k = f"s:{status}/{s[S_REASON]}"
            r[k] = r.get(k, 0) + 1
        if status != settings.offline:
            r["logged_in_ms"] = r.get("logged_in_ms", 0) + 1
        if status in settings.routable:
            routable += 1
    if handling:
        r["handling_ms"] = 1
    if routable:
        r["available_ms"] = 1
    if handling or routable:
        r["staffed_ms"] = 1
    return r


def sweep(spans: Iterable[SpanRow], settings: Settings) -> list[tuple[int, dict[str, int]]]:
    """(time, rates from then on) at every start and end of `spans`."""
    changes: dict[int, list[tuple[int, int, SpanRow]]] = {}
    for n, s in enumerate(spans):
        start, end = s[S_START], s[S_END]
        if end is not None and end <= start:
            continue  # empty (or, out of time order, negative): counts for nothing
        changes.setdefault(start, []).append((1, n, s))
        if end is not None:
            changes.setdefault(end, []).append((-1, n, s))
    out: list[tuple[int, dict[str, int]]] = []
    open_: dict[int, SpanRow] = {}
    for t in sorted(changes):
        for d, n, s in changes[t]:
            if d > 0:
                open_[n] = s
            else:
                open_.pop(n, None)
        out.append((t, rates_of(open_.values(), settings)))
    return out


class Timeline:
    """One agent's measures integrated over time: at each breakpoint the
    integrals so far and the rates from then on (pure integer arithmetic, so
    a window's figures equal the sum over its spans exactly).

    Once folded, breakpoints before `folded` are gone and `base` holds the
    measures of [base_from, folded): the part of the cumulative window
    starting at `base_from` that lies before the fold; `cum` holds the
    integrals up to `folded` and `marks` those up to the start of each
    bucket from the fold's horizon on (from the same origin), so a sliding
    window starting there is `cum` less its mark plus what follows the fold.
    """

    __slots__ = ("base", "base_from", "cum", "diffs", "folded", "latest", "mark0", "marks", "measures",
                 "rates", "times", "totals")  # fmt: skip

    def __init__(self, measures: Measures | None = None) -> None:
        self.times: list[int] = []
        self.totals: list[dict[str, int]] = []
        self.rates: list[dict[str, int]] = []
        self.latest = 0  # the latest change appended (a breakpoint or not)
        self.base: dict[str, int] = {}
        self.base_from = 0
        self.folded: int | None = None
        self.cum: dict[str, int] = {}
        # the integrals at mark0, mark0 + width, ...: 64-bit integers in the
        # order of `measures`, packed in bytes (a dict each was most of the
        # tracker; bytes, unlike an array, are not walked by the collector)
        self.marks: list[bytes] = []
        self.mark0 = 0
        self.measures = measures if measures is not None else Measures()
        # window start -> `cum` less its mark, until the next fold (every tick
        # asks the same few, and a mark is packed)
        self.diffs: dict[int, dict[str, int]] = {}

    def append(self, t: int, rates: dict[str, int]) -> bool:
        """The rates from `t` on; False when `t` is before a change already
        appended (then only a rebuild from the spans is exact)."""
        if t < self.latest:
            return False
        self.latest = t
        if not self.times:
            self.times.append(t)
            self.totals.append({})
            self.rates.append(rates)
            return True
        if t == self.times[-1]:
            self.rates[-1] = rates
            return True
        if rates == self.rates[-1]:
            return True  # nothing changed: one breakpoint fewer
        self.totals.append(self.at(t))
        self.times.append(t)
        self.rates.append(rates)
        return True

    def at(self, t: int) -> dict[str, int]:
        """The integrals from the first breakpoint up to `t`."""
        i = bisect_right(self.times, t) - 1
        if i < 0:
            return {}
        total, dt = dict(self.totals[i]), t - self.times[i]
        if dt:
            for k, r in self.rates[i].items():
                total[k] = total.get(k, 0) + r * dt
        return total

    def _between(self, start: int, now: int) -> Iterable[tuple[str, int]]:
        """(measure, its integral over [start, now]) for start < now."""
        times = self.times
        if not times or now <= times[0]:
            return ()
        i = bisect_right(times, now) - 1
        j = bisect_right(times, start) - 1
        rates, dt = self.rates[i], now - times[i]
        if j == i:  # one state all through the window: the usual case
            return ((k, r * (now - start)) for k, r in rates.items())
        # the integral to `now` less the one to `start`, a dict pass each (a
        # set of the names and four lookups per name were most of a tick);
        # totals only grow keys, so `top` and `rates` name every measure
        d = dict(self.totals[i])
        if dt:
            for k, r in rates.items():
                d[k] = d.get(k, 0) + r * dt
        if j >= 0:
            for k, v in self.totals[j].items():
                if k in d:
                    d[k] -= v
            low_dt = start - times[j]
            if low_dt:
                for k, r in self.rates[j].items():
                    if k in d:
                        d[k] -= r * low_dt
        return d.items()

    def window(self, start: int, now: int, capacity: int) -> Agg | None:
        """The agent's time in [start, now], as `aggregates.one_agent_time` sums it."""
        d = self.window_sums(start, now)
        return None if d is None else _time_agg(d, capacity)

    def window_sums(self, start: int, now: int) -> dict[str, int] | None:
        """`window`'s measures (``s:<status>`` for a status) with their ms, the
        positive ones only; None where `window` is None (no status, no item held)."""
        return self.windows_sums((start,), now)[0]

    def windows_sums(self, starts: Iterable[int], now: int) -> list[dict[str, int] | None]:
        """`window_sums` of each of `starts`, all ending at `now`. The time
        after the fold point is integrated once for every window that starts
        before it (the sliding windows and today, once folded), and the
        integral up to `now` once for every window that starts before the
        first breakpoint (a young tracker's, after its fold): it was the
        same pass made once per window, four times per agent and tick."""
        folded = self.folded
        tail: list[tuple[str, int]] | None = None
        # the sums of a window that starts before the first breakpoint (and
        # after the fold): the integral up to `now`, whatever the start (a
        # young tracker's timelines: every window starts before them)
        whole: dict[str, int] | None = None
        first = self.times[0] if self.times else None
        out: list[dict[str, int] | None] = []
        for start in starts:
            if folded is not None and start < folded:
                if tail is None:
                    tail = list(self._between(folded, now)) if now > folded else []
                d = self._before_fold(start, folded)
                for k, v in tail:
                    d[k] = d.get(k, 0) + v
                items: Iterable[tuple[str, int]] = d.items()
            elif now <= start:
                out.append(None)
                continue
            elif first is not None and start < first:
                if whole is None:
                    whole = {k: v for k, v in self._between(start, now) if v > 0}
                out.append(dict(whole) if _counted(whole) else None)
                continue
            else:
                items = self._between(start, now)
            sums = {k: v for k, v in items if v > 0}
            out.append(sums if _counted(sums) else None)
        return out

    def _before_fold(self, start: int, folded: int) -> dict[str, int]:
        """A copy of the measures of [start, folded), from the marks or the base."""
        diff = self.diffs.get(start)
        if diff is None:
            mark = self._mark(start)
            if mark is not None:
                diff = self.diffs[start] = {k: v - mark.get(k, 0) for k, v in self.cum.items()}
        if diff is not None:
            return dict(diff)
        if start == self.base_from:
            return dict(self.base)
        raise ValueError(
            f"time before {folded} is folded into the window from {self.base_from} "
            "and the buckets' marks only"
        )

    def fold(self, before: int, since: int, horizon: int | None = None) -> int:
        """Add the measures of [since, before) not folded yet to `base`, mark
        the integrals at each multiple of the marks' width from `horizon` (None: none)
        up to `before`, then forget the breakpoints only windows starting
        before `before` need, and the marks before `horizon`. Returns how
        many marks it made."""
        lo = since if self.folded is None else max(since, self.folded)
        if before > lo:
            for k, v in self._between(lo, before):
                if v:
                    self.base[k] = self.base.get(k, 0) + v
        made = 0
        self.diffs = {}
        if horizon is not None:
            width = self.measures.width
            m = horizon if self.folded is None else max(horizon, self.folded)
            m += -m % width
            if self.marks and m != self.mark0 + len(self.marks) * width:
                self.marks = []  # a gap: the marks before it are older than `horizon`
            if not self.marks:
                self.mark0 = m
            while m < before:
                self.marks.append(self.measures.pack(self._cum_at(m)))
                m += width
                made += 1
            gone = (horizon - self.mark0) // width
            if gone > 0:
                del self.marks[:gone]
                self.mark0 += gone * width
        self.cum = self._cum_at(before)
        self.base_from = since
        self.forget(before)
        self.folded = before
        return made

    def _cum_at(self, t: int) -> dict[str, int]:
        """The integrals up to `t` (not before the fold point) from `cum`'s origin."""
        if self.folded is None:
            return self.at(t)
        out = dict(self.cum)
        if t > self.folded:
            for k, v in self._between(self.folded, t):
                if v:
                    out[k] = out.get(k, 0) + v
        return out

    def reweigh(self, held_since: int, delta: int) -> None:
        """An item held since `held_since` changed its weight by `delta`: its
        span counts with the new weight throughout, in the part folded too."""
        folded = self.folded
        if folded is None:
            return
        lo = max(held_since, self.base_from)
        if lo < folded:
            self.base["load_ms"] = self.base.get("load_ms", 0) + delta * (folded - lo)
        if held_since < folded:
            self.diffs = {}
            # each window from a mark m gains delta x (folded - max(m, held_since))
            self.cum["load_ms"] = self.cum.get("load_ms", 0) + delta * (folded - held_since)
            for n, mark in enumerate(self.marks):
                m = self.mark0 + n * self.measures.width
                if m > held_since:
                    d = self.measures.unpack(mark)
                    d["load_ms"] = d.get("load_ms", 0) + delta * (m - held_since)
                    self.marks[n] = self.measures.pack(d)

    def _mark(self, t: int) -> dict[str, int] | None:
        """The integrals at mark `t`, None when there is none."""
        w = self.measures.width
        n, off = divmod(t - self.mark0, w)
        if off or n < 0 or n >= len(self.marks):
            return None
        return self.measures.unpack(self.marks[n])

    def forget(self, before: int) -> None:
        """Drop breakpoints no window starting at `before` or later needs."""
        i = bisect_right(self.times, before) - 1
        if i > 0:
            del self.times[:i], self.totals[:i], self.rates[:i]


def _counted(sums: Mapping[str, int]) -> bool:
    """Whether a window's sums count (a status held, or an item handled);
    a loop, not `any` over a generator: it runs per agent and window."""
    if "handling_ms" in sums:
        return True
    for k in sums:  # noqa: SIM110 - see above
        if k[:2] == "s:":
            return True
    return False


def _time_agg(d: Mapping[str, int], capacity: int) -> Agg:
    """The `Agg` of `Timeline.window_sums`'s measures (or of their sums, with
    ``capacity_ms`` summed in), capacity x staffed time added."""
    a = Agg()
    status = a.status_ms
    for k, v in d.items():
        if k[:2] == "s:":
            status[k[2:]] = v
        else:
            setattr(a, k, v)
    if capacity:
        a.capacity_ms += capacity * a.staffed_ms
    return a


class _Time:
    """One window's agent time summed over agents, per set of queues (an
    agent's `member_of`), for the center and each queue: what `add_time`
    agent by agent would give them, in the same order of statuses and queues."""

    __slots__ = ("center", "queues", "sums")

    def __init__(self) -> None:
        self.sums: dict[tuple[str, ...], dict[str, int]] = {}
        self.center: dict[str, None] = {}  # measures in the order first met
        self.queues: dict[str, dict[str, None]] = {}  # queue -> the same, queues in that order

    def add(self, queues: tuple[str, ...], d: Mapping[str, int], capacity: int) -> None:
        """One agent's `window_sums` `d`, with its capacity x staffed time."""
        acc = self.sums.get(queues)
        if acc is None:
            acc = self.sums[queues] = {}
            for q in queues:
                self.queues.setdefault(q, {})
        had = len(acc)
        for k, v in d.items():
            acc[k] = acc.get(k, 0) + v
        staffed = d.get("staffed_ms")
        if staffed and capacity:
            acc["capacity_ms"] = acc.get("capacity_ms", 0) + capacity * staffed
        if len(acc) != had:  # a measure new to these queues' agents, maybe to the center
            for order in (self.center, *(self.queues[q] for q in queues)):
                for k in d:
                    order.setdefault(k)

    def into(self, g: Groups) -> None:
        if not self.sums:
            return
        time_into(g.center, _time_total(self.center, list(self.sums.values())))
        parts: dict[str, list[dict[str, int]]] = {q: [] for q in self.queues}
        for queues, acc in self.sums.items():
            for q in queues:  # an agent listed twice in a queue counts twice, as in `add_time`
                parts[q].append(acc)
        for q, order in self.queues.items():
            time_into(agg_of(g.queues, q), _time_total(order, parts[q]))


def _time_total(order: Mapping[str, None], accs: list[dict[str, int]]) -> Agg:
    """The `Agg` of the sums `accs` (`_Time.sums`), measures in `order`
    (those in none of these agents' windows, another queue's, left out)."""
    totals = {k: v for k in order if (v := sum(acc.get(k, 0) for acc in accs))}
    a = _time_agg(totals, 0)
    a.capacity_ms = sum(acc.get("capacity_ms", 0) for acc in accs)
    return a


class Measures:
    """The names of the measures a tracker's timelines mark, each given a
    place in the arrays of their marks once (the first time it is marked),
    and the spacing of the marks."""

    __slots__ = ("names", "places", "width")

    def __init__(self, width: int = BUCKET_MS) -> None:
        self.names: list[str] = []
        self.places: dict[str, int] = {}
        self.width = width

    def index(self, name: str) -> int:
        i = self.places.get(name)
        if i is None:
            i = self.places[name] = len(self.names)
            self.names.append(name)
        return i

    def pack(self, values: Mapping[str, int]) -> bytes:
        for k in values:
            self.index(k)
        out = array("q", bytes(8 * len(self.names)))
        for k, v in values.items():
            out[self.places[k]] = v
        return out.tobytes()

    def unpack(self, mark: bytes) -> dict[str, int]:
        names = self.names
        return {names[i]: v for i, v in enumerate(memoryview(mark).cast("q")) if v}
