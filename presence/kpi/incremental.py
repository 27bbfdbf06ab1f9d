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
wallboard's "today"), `fold(before)` sums everything before `before` into
that window's sums and forgets it: the facts (into `base`), each agent's
time (into its timeline's `base`), the closed spans, and the items that are
finished, not held and have no fact left. What stays is what a later figure
can still need: the facts inside the sliding windows, open items, agents'
current spans. Kept facts and spans are plain tuples of strings and numbers,
which the cyclic GC stops tracking. So memory follows the sliding windows'
traffic, not the day's.

Nothing is lost by forgetting, because whatever could still change a folded
figure is known or can be asked for:

* an event of a forgotten item (a case re-opened hours later) first brings
  its state back: the caller hands `recall` the item's own events fed
  before (its history in Redis), replayed without counting anything, so a
  reopen still spoils the first-contact resolution of a completion already
  summed in "today";
* a change that would reach before the fold point in agent time (an event
  that old arriving late, a changed list of routable statuses) cannot be
  replayed from memory: the tracker says so (`inexact`) and the caller
  rebuilds it from the streams.

Every sum is integer arithmetic, so every figure equals the full pass's
exactly (``tests/unit/test_kpi.py`` compares the two on random histories,
folded or not).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Collection, Generator, Iterable, Mapping
from operator import itemgetter

from presence.kpi.aggregates import Agg, Groups, add_time, agg_of, fact_targets, sign_fact
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
    ) -> None:
        super().__init__(settings, arrivals, accepts)
        self.since = since  # start of the cumulative window whose sums survive `fold`
        self.folded_to: int | None = None  # everything before this is folded
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
        # per window, running sums of the facts inside it
        self._running: dict[str, RunningWindow] = {}

    # -- folding: the full pass's, plus the timelines and running sums

    def _close(self, span: Span) -> None:
        self.agent_spans.setdefault(span.agent, []).append(tuple(span))  # type: ignore[arg-type]

    def _record(self, f: Fact) -> None:
        row: FactRow = tuple(f)  # type: ignore[assignment]
        it = self.items.get(f.work)
        if it is not None and (it.last_fact is None or f.ts > it.last_fact):
            it.last_fact = f.ts
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
        # folded into "today" (only ever taken back: `prune` never follows a fold)
        for row in self.folded_first.pop(work, ()):
            _resolve(self.base, row, n)
            for rw in self._running.values():
                if rw.anchored:
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
                lo = max(it.held_since, tl.base_from)
                if lo < tl.folded:
                    tl.base["load_ms"] = tl.base.get("load_ms", 0) + (new - old) * (tl.folded - lo)
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
            tl = self.timelines[agent] = Timeline()
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
            done = tuple(
                tuple(f) for f in replay.facts if f.first_contact and since <= f.ts < to
            )  # fmt: skip
            if done:  # summed in "today" as resolved: a later flag takes them back
                self.folded_first[work] = done  # type: ignore[assignment]

    def use(self, settings: Settings) -> None:
        """New settings (re-read from Redis): when they change which statuses
        are routable or offline, agent time already folded is `inexact`."""
        self.settings = settings
        self._check_rates()

    # -- folding what is older than the sliding windows

    def fold(self, before: int) -> None:
        """Sum everything before `before` into the window starting at `since`
        and forget it (`fold_steps` in one go)."""
        for _ in self.fold_steps(before):
            pass

    def fold_steps(self, before: int, chunk: int = STEP) -> Generator[None, None, None]:
        """`fold` in steps of about `chunk` facts, agents or items: the caller
        may yield to its event loop at each step (and leaves the tracker
        alone until the last).

        Afterwards a window must start at `since` or at `before` or later,
        and end at `before` or later.
        """
        if self.since is None:
            raise ValueError("fold needs `since`, the start of the window that keeps the sums")
        if self.folded_to is not None and before <= self.folded_to:
            return
        # agent time is folded from exact timelines only
        self._check_rates()
        yield from self._rebuild_stale(chunk)
        yield from self._fold_facts(before, chunk)
        n = 0
        for aid, tl in self.timelines.items():
            tl.fold(before, self.since)
            ss = self.agent_spans.get(aid)
            if ss and ss[0][S_END] <= before:  # type: ignore[operator]
                kept = [s for s in ss if s[S_END] > before]  # type: ignore[operator]
                if kept:
                    self.agent_spans[aid] = kept
                else:
                    del self.agent_spans[aid]
            n += 1
            if n % chunk == 0:
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

    def _fold_facts(self, before: int, chunk: int) -> Generator[None, None, None]:
        assert self.since is not None
        rows, since = self.rows, self.since
        k = bisect_left(rows, before, key=_ts)
        anchored = [rw for rw in self._running.values() if rw.anchored]
        for i in range(k):
            row = rows[i]
            work = row[F_WORK]
            self._drop_first(row)
            if row[F_TS] >= since:
                fc = self._counts_first(row)
                _apply(self.base, row, fc)
                for rw in anchored:
                    if i >= rw.hi:  # not summed yet: it never will be from the list
                        rw.add(row, fc)
                if fc and work in self.items:
                    self.folded_first[work] = (*self.folded_first.get(work, ()), row)
            if (i + 1) % chunk == 0:
                yield
        del rows[:k]
        for name, rw in list(self._running.items()):
            if rw.anchored:
                if rw.hi < k:
                    rw.end = max(rw.end, before - 1)
                rw.lo, rw.hi = max(0, rw.lo - k), max(0, rw.hi - k)
            elif rw.start < before:
                del self._running[name]  # made again from what is kept, if asked for
            else:
                rw.lo -= k
                rw.hi -= k

    def retained(self) -> dict[str, int]:
        """How much the tracker holds: facts, items, closed spans, timeline
        breakpoints, first-contact records (the memory bound's witnesses)."""
        return {
            "facts": len(self.rows),
            "items": len(self.items),
            "spans": sum(len(ss) for ss in self.agent_spans.values()),
            "breakpoints": sum(len(tl.times) for tl in self.timelines.values()),
            "first_contact": len(self.first) + len(self.folded_first),
        }

    # -- windows

    def _check_windows(self, now: int, wins: list[tuple[str, int]], inclusive: bool) -> None:
        to = self.folded_to
        if to is None:
            return
        if now < to:
            raise ValueError(f"a window ending at {now} is before the facts folded up to {to}")
        for name, start in wins:
            # only the running window from `since` holds the folded sums
            if start < to and (start != self.since or not inclusive):
                raise ValueError(f"window {name} starts at {start}, before the facts folded up to {to}")

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
        n = 0
        for aid, tl in self.timelines.items():
            for name, start in wins:
                a = tl.window(start, now, caps.get(aid, 0))
                if a is not None:
                    add_time(out[name], aid, a, member_of, agents_for is None or name in agents_for)
            n += len(wins)
            if n >= chunk:
                n = 0
                yield

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
        if rw is None or start < rw.start or now < rw.end or rw.anchored != anchored:
            i = bisect_left(self.rows, start, key=_ts)
            rw = self._running[name] = RunningWindow(start, i, self.base if anchored else None)
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

    def _rebuild_timeline(self, agent: str) -> Timeline:
        old = self.timelines.get(agent)
        cut = old.folded if old is not None else None
        spans = [*self.agent_spans.get(agent, ()), *self._open_spans(agent)]
        if cut is not None:
            # what lies before the fold point is in the timeline's base
            spans = [(s[S_AGENT], max(s[S_START], cut), s[S_END], s[S_STATUS], s[S_REASON], s[S_WEIGHT])
                     for s in spans]  # fmt: skip
        tl = Timeline()
        for t, r in sweep(spans, self.settings):
            tl.append(t, r)
        if old is not None:
            tl.base, tl.base_from, tl.folded = old.base, old.base_from, old.folded
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
        a = g.center if d is None else agg_of(d, name)
        sign_fact(a, row, 1, first_contact)
        if row[F_KIND] == "answered" and row[F_WAIT] > a.max_wait_ms:
            a.max_wait_ms = row[F_WAIT]


def _resolve(g: Groups, row: FactRow, n: int) -> None:
    for d, name in fact_targets(g, row):
        (g.center if d is None else d[name]).resolved_first += n


def _copy(a: Agg, max_wait: int) -> Agg:
    # positional: `dataclasses.replace` was most of a tick with 10,000 agents
    return Agg(a.offered, a.answered, a.abandoned, a.answered_in_sl, a.abandoned_in_sl, a.wait_ms,
               a.abandon_wait_ms, max_wait, a.handled, a.handle_ms, a.resolved_first,
               a.transfers, a.csat_n, a.csat_sum)  # fmt: skip


class RunningWindow:
    """Sums of the kept facts rows[lo:hi] (sorted by time) of one window
    [start, end]; `anchored` (given the folded sums to start from), a window
    whose start never moves, whose sums outlive the facts.

    Facts enter and leave in time order, so a tick costs the facts that
    moved, not the window's. The longest answer wait per group is kept by a
    monotonic queue (a maximum cannot be subtracted), or, in an anchored
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

    def add(self, f: FactRow, first_contact: bool, late: bool = False) -> None:
        """Count `f`; `late`: it lies before facts already counted."""
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
            # every fact counts once in exactly one of these: none left, no group
            if d is not None and not (
                a.offered or a.answered or a.abandoned or a.handled or a.transfers or a.csat_n
            ):
                del d[name]
                self.maxq.pop((id(d), name), None)

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
        q = self.maxq.get((id(d), name))
        return _copy(a, q[0][F_WAIT] if q else 0)


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
    starting at `base_from` that lies before the fold.
    """

    __slots__ = ("base", "base_from", "folded", "latest", "rates", "times", "totals")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.totals: list[dict[str, int]] = []
        self.rates: list[dict[str, int]] = []
        self.latest = 0  # the latest change appended (a breakpoint or not)
        self.base: dict[str, int] = {}
        self.base_from = 0
        self.folded: int | None = None

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
        top = self.totals[i]
        if j < 0:
            low, low_rates, low_dt = {}, {}, 0
        else:
            low, low_rates, low_dt = self.totals[j], self.rates[j], start - times[j]
        return (
            (k, top.get(k, 0) + rates.get(k, 0) * dt - low.get(k, 0) - low_rates.get(k, 0) * low_dt)
            for k in top.keys() | rates.keys()
        )

    def window(self, start: int, now: int, capacity: int) -> Agg | None:
        """The agent's time in [start, now], as `aggregates.one_agent_time` sums it."""
        folded = self.folded
        if folded is not None and start < folded:
            if start != self.base_from:
                raise ValueError(f"time before {folded} is folded into the window from {self.base_from}")
            d = dict(self.base)
            if now > folded:
                for k, v in self._between(folded, now):
                    d[k] = d.get(k, 0) + v
            items: Iterable[tuple[str, int]] = d.items()
        elif now <= start:
            return None
        else:
            items = self._between(start, now)
        a = Agg()
        for k, v in items:
            if v <= 0:
                continue
            if k[:2] == "s:":
                a.status_ms[k[2:]] = v
            else:
                setattr(a, k, v)
        a.capacity_ms = capacity * a.staffed_ms
        return a if a.status_ms or a.handling_ms else None

    def fold(self, before: int, since: int) -> None:
        """Add the measures of [since, before) not folded yet to `base`, then
        forget the breakpoints only windows starting before `before` need."""
        lo = since if self.folded is None else max(since, self.folded)
        if before > lo:
            for k, v in self._between(lo, before):
                if v:
                    self.base[k] = self.base.get(k, 0) + v
        self.base_from = since
        self.forget(before)
        self.folded = before

    def forget(self, before: int) -> None:
        """Drop breakpoints no window starting at `before` or later needs."""
        i = bisect_right(self.times, before) - 1
        if i > 0:
            del self.times[:i], self.totals[:i], self.rates[:i]
