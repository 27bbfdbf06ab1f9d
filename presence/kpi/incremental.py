"""The live tracker: the same figures as the full pass, kept up to date as events arrive (pure).

`IncrementalTracker` is the `Tracker` the live wallboard task keeps between
ticks. It folds events exactly as the full pass does, and also keeps:

* per window, running sums of the facts inside it (`RunningWindow`): facts
  enter and leave in time order, so a tick costs the facts that moved, not
  the window's;
* per agent, a `Timeline`: the integrals of each time measure at each change
  and the rates after it, so an agent's time in any window is two look-ups,
  not a pass over its day.

Both are integer arithmetic, so every figure equals the full pass's exactly
(``tests/unit/test_kpi.py`` compares the two on random histories). An event
out of time order has that agent's timeline rebuilt from its spans, or the
facts re-sorted. What the live tracker remembers (and so how "today" is
summed) is decided here and in `prune`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Mapping

from presence.kpi.aggregates import Agg, Groups, add_time, agg_of, fact_targets, sign_fact
from presence.kpi.events import Event
from presence.kpi.facts import Fact, Settings, Span
from presence.kpi.tracker import STEP, ItemState, Tracker


class IncrementalTracker(Tracker):
    """A `Tracker` whose inclusive windows cost the events since the last
    aggregation, not the day's history."""

    def __init__(
        self,
        settings: Settings,
        arrivals: Mapping[str, int] | None = None,
        accepts: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(settings, arrivals, accepts)
        # per agent, the running integrals of its spans, kept up to date as
        # events are fed
        self.timelines: dict[str, Timeline] = {}
        self.held: dict[str, dict[str, ItemState]] = {}  # agent -> items it holds now
        self.agent_spans: dict[str, list[Span]] = {}  # closed spans by agent
        self._stale: set[str] = set()  # agents whose timeline is rebuilt from spans
        self._rates_key: tuple[frozenset[str], str] = (settings.routable, settings.offline)
        # per window, running sums of the facts inside it
        self._running: dict[str, RunningWindow] = {}
        self._disordered = False  # a fact recorded before an earlier one

    # -- folding: the full pass's, plus the timelines and running sums

    def _close(self, span: Span) -> None:
        super()._close(span)
        self.agent_spans.setdefault(span.agent, []).append(span)

    def _record(self, f: Fact) -> None:
        if self.facts and f.ts < self.facts[-1].ts:
            self._disordered = True
        super()._record(f)

    def _flag(self, it: ItemState) -> None:
        if not it.flagged:
            super()._flag(it)
            for rw in self._running.values():
                rw.spoil(it.work)

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
        if it.holder and max(1, weight) != max(1, it.weight):
            # a held item's span counts with its last weight throughout
            self._stale.add(it.holder)
        super()._weigh(it, weight)

    def _status(self, e: Event) -> None:
        super()._status(e)
        self._touch(e.agent, e.ts)

    def _close_before_first(self, span: Span) -> None:
        super()._close_before_first(span)
        self._stale.add(span.agent)  # a span before its first change

    def seed_status(self, agent: str, status: str, reason: str, since: int) -> None:
        if agent not in self.status:
            self._stale.add(agent)
        super().seed_status(agent, status, reason, since)

    def _touch(self, agent: str, ts: int) -> None:
        """The agent's state changed at `ts`: extend its timeline, or, for a
        change out of time order, have it rebuilt from its spans."""
        if agent in self._stale:
            return
        tl = self.timelines.get(agent)
        if tl is None:
            tl = self.timelines[agent] = Timeline()
        if not tl.append(ts, self._rates_now(agent)):
            self._stale.add(agent)

    def _rates_now(self, agent: str) -> dict[str, int]:
        covering: list[Span] = []
        st = self.status.get(agent)
        if st is not None:
            covering.append(Span(agent, st[2], None, st[0], st[1]))
        for it in self.held.get(agent, {}).values():
            covering.append(Span(agent, it.held_since, None, weight=max(1, it.weight)))
        return rates_of(covering, self.settings)

    # -- windows

    def _fact_sums(
        self, now: int, wins: list[tuple[str, int]], inclusive: bool, chunk: int,
        agents_for: Collection[str] | None,
    ) -> Generator[None, None, dict[str, Groups]]:  # fmt: skip
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
        key = (self.settings.routable, self.settings.offline)
        if key != self._rates_key:
            # the rates depend on which statuses are routable or offline
            self._rates_key = key
            self._stale.update(self.timelines)
        n = 0
        for aid in list(self._stale):
            self.timelines[aid] = self._rebuild_timeline(aid)
            n += len(self.agent_spans.get(aid, ())) + 1
            if n >= chunk:
                n = 0
                yield
        self._stale.clear()
        caps = self.settings.capacities
        for aid, tl in self.timelines.items():
            for name, start in wins:
                a = tl.window(start, now, caps.get(aid, 0))
                if a is not None:
                    add_time(out[name], aid, a, member_of, agents_for is None or name in agents_for)
            n += len(wins)
            if n >= chunk:
                n = 0
                yield

    def _running_window(
        self, name: str, start: int, now: int, chunk: int, agents: bool
    ) -> Generator[None, None, Groups]:
        """The fact sums of [start, now], moved on from the last tick's."""
        if self._disordered:
            self.facts.sort(key=lambda f: f.ts)
            self._running.clear()
            self._disordered = False
        rw = self._running.get(name)
        if rw is None or start < rw.start or now < rw.end:
            i = bisect_left(self.facts, start, key=lambda f: f.ts)
            rw = self._running[name] = RunningWindow(start, i, self.flagged)
        facts, n = self.facts, 0
        while rw.hi < len(facts) and facts[rw.hi].ts <= now:
            rw.add(facts[rw.hi])
            rw.hi += 1
            n += 1
            if n % chunk == 0:
                yield
        while rw.lo < rw.hi and facts[rw.lo].ts < start:
            rw.remove(facts[rw.lo])
            rw.lo += 1
            n += 1
            if n % chunk == 0:
                yield
        rw.start, rw.end = start, now
        return (yield from rw.snapshot(agents, chunk))

    def _rebuild_timeline(self, agent: str) -> Timeline:
        spans = list(self.agent_spans.get(agent, ()))
        st = self.status.get(agent)
        if st is not None:
            spans.append(Span(agent, st[2], None, st[0], st[1]))
        for it in self.held.get(agent, {}).values():
            spans.append(Span(agent, it.held_since, None, weight=max(1, it.weight)))
        tl = Timeline()
        for t, r in sweep(spans, self.settings):
            tl.append(t, r)
        return tl

    def prune(self, before: int) -> None:
        kept = len(self.facts)
        super().prune(before)
        gone = kept - len(self.facts)
        for name, rw in list(self._running.items()):
            # sorted facts: those forgotten were the first `gone`
            if self._disordered or rw.lo < gone:
                del self._running[name]
            else:
                rw.lo -= gone
                rw.hi -= gone
        for aid, ss in self.agent_spans.items():
            if ss and ss[0].end is not None and ss[0].end < before:
                self.agent_spans[aid] = [s for s in ss if s.end is None or s.end >= before]
        for tl in self.timelines.values():
            tl.forget(before)

    def _forgot(self, it: ItemState) -> None:
        if it.flagged:
            # its facts count as recorded again (as `Tracker._facts` reads them)
            for rw in self._running.values():
                rw.unspoil(it.work)


class RunningWindow:
    """Sums of the facts fact[lo:hi] (sorted by time) of one sliding window.

    Facts enter and leave in time order, so a tick costs the facts that
    moved, not the window's. The longest answer wait per group is kept by a
    monotonic queue (a maximum cannot be subtracted); first-contact
    resolution follows the item's flag as `Tracker._facts` reads it.
    """

    def __init__(self, start: int, at: int, flagged: Callable[[str], bool]) -> None:
        self.start, self.end, self.lo, self.hi = start, start, at, at
        self.flagged = flagged
        self.groups = Groups()
        self.count: dict[tuple[int, str], int] = {}  # (id of group dict, name) -> facts
        self.maxq: dict[tuple[int, str], deque[Fact]] = {}
        self.counted: dict[str, list[Fact]] = {}  # work -> first-contact facts counted
        self.spoiled: dict[str, list[Fact]] = {}  # work -> first-contact facts not counted

    def _agg(self, d: dict[str, Agg] | None, name: str, create: bool) -> Agg:
        if d is None:
            return self.groups.center
        return agg_of(d, name) if create else d[name]

    def add(self, f: Fact) -> None:
        fc = False
        if f.kind == "handled" and f.first_contact:
            fc = not self.flagged(f.work)
            (self.counted if fc else self.spoiled).setdefault(f.work, []).append(f)
        for d, name in fact_targets(self.groups, f):
            key = (id(d), name)
            self.count[key] = self.count.get(key, 0) + 1
            a = self._agg(d, name, True)
            sign_fact(a, f, 1, fc)
            if f.kind == "answered":
                q = self.maxq.setdefault(key, deque())
                while q and q[-1].wait_ms <= f.wait_ms:
                    q.pop()
                q.append(f)

    def remove(self, f: Fact) -> None:
        fc = False
        if f.kind == "handled" and f.first_contact:
            fc = _take(self.counted, f)
            if not fc:
                _take(self.spoiled, f)
        for d, name in fact_targets(self.groups, f):
            key = (id(d), name)
            a = self._agg(d, name, False)
            sign_fact(a, f, -1, fc)
            q = self.maxq.get(key)
            if q and q[0] is f:
                q.popleft()
            self.count[key] -= 1
            if not self.count[key] and d is not None:
                del self.count[key], d[name]
                self.maxq.pop(key, None)

    def _resolved(self, work: str, into: dict[str, list[Fact]], src: dict[str, list[Fact]], n: int) -> None:
        for f in src.pop(work, []):
            into.setdefault(work, []).append(f)
            for d, name in fact_targets(self.groups, f):
                self._agg(d, name, False).resolved_first += n

    def spoil(self, work: str) -> None:
        self._resolved(work, self.spoiled, self.counted, -1)

    def unspoil(self, work: str) -> None:
        self._resolved(work, self.counted, self.spoiled, 1)

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
        q = self.maxq.get((id(d), name))
        # positional: `dataclasses.replace` was most of a tick with 10,000 agents
        return Agg(a.offered, a.answered, a.abandoned, a.answered_in_sl, a.abandoned_in_sl, a.wait_ms,
                   a.abandon_wait_ms, q[0].wait_ms if q else 0, a.handled, a.handle_ms, a.resolved_first,
                   a.transfers)  # fmt: skip


def _take(d: dict[str, list[Fact]], f: Fact) -> bool:
    fs = d.get(f.work)
    if not fs:
        return False
    for i, x in enumerate(fs):
        if x is f:
            del fs[i]
            if not fs:
                del d[f.work]
            return True
    return False


def rates_of(covering: Iterable[Span], settings: Settings) -> dict[str, int]:
    """How fast each measure grows (per ms) while exactly `covering` are open.

    Handling, available and staffed are unions (0 or 1), the others sums,
    as in `aggregates.one_agent_time`; a status is counted under
    ``s:<status>`` and ``s:<status>/<reason>``.
    """
    r: dict[str, int] = {}
    handling = routable = 0
    for s in covering:
        if s.weight:
            handling += 1
            r["load_ms"] = r.get("load_ms", 0) + s.weight
            continue
        k = "s:" + s.status
        r[k] = r.get(k, 0) + 1
        if s.reason:
            k = f"s:{s.status}/{s.reason}"
            r[k] = r.get(k, 0) + 1
        if s.status != settings.offline:
            r["logged_in_ms"] = r.get("logged_in_ms", 0) + 1
        if s.status in settings.routable:
            routable += 1
    if handling:
        r["handling_ms"] = 1
    if routable:
        r["available_ms"] = 1
    if handling or routable:
        r["staffed_ms"] = 1
    return r


def sweep(spans: Iterable[Span], settings: Settings) -> list[tuple[int, dict[str, int]]]:
    """(time, rates from then on) at every start and end of `spans`."""
    changes: dict[int, list[tuple[int, Span]]] = {}
    for s in spans:
        if s.end is not None and s.end <= s.start:
            continue  # empty (or, out of time order, negative): counts for nothing
        changes.setdefault(s.start, []).append((1, s))
        if s.end is not None:
            changes.setdefault(s.end, []).append((-1, s))
    out: list[tuple[int, dict[str, int]]] = []
    open_: dict[int, tuple[Span, int]] = {}
    for t in sorted(changes):
        for d, s in changes[t]:
            n = open_.get(id(s), (s, 0))[1] + d
            if n:
                open_[id(s)] = (s, n)
            else:
                open_.pop(id(s), None)
        out.append((t, rates_of([s for s, n in open_.values() for _ in range(n)], settings)))
    return out


class Timeline:
    """One agent's measures integrated over time: at each breakpoint the
    integrals so far and the rates from then on (pure integer arithmetic, so
    a window's figures equal the sum over its spans exactly)."""

    __slots__ = ("latest", "rates", "times", "totals")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.totals: list[dict[str, int]] = []
        self.rates: list[dict[str, int]] = []
        self.latest = 0  # the latest change appended (a breakpoint or not)

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

    def window(self, start: int, now: int, capacity: int) -> Agg | None:
        """The agent's time in [start, now], as `aggregates.one_agent_time` sums it."""
        times = self.times
        if now <= start or not times or now <= times[0]:
            return None
        i = bisect_right(times, now) - 1
        j = bisect_right(times, start) - 1
        rates, dt = self.rates[i], now - times[i]
        a = Agg()
        if j == i:  # one state all through the window: the usual case
            items = ((k, r * (now - start)) for k, r in rates.items())
        else:
            top = self.totals[i]
            if j < 0:
                low, low_rates, low_dt = {}, {}, 0
            else:
                low, low_rates, low_dt = self.totals[j], self.rates[j], start - times[j]
            items = (
                (k, top.get(k, 0) + rates.get(k, 0) * dt - low.get(k, 0) - low_rates.get(k, 0) * low_dt)
                for k in top.keys() | rates.keys()
            )
        for k, d in items:
            if d <= 0:
                continue
            if k[:2] == "s:":
                a.status_ms[k[2:]] = d
            else:
                setattr(a, k, d)
        a.capacity_ms = capacity * a.staffed_ms
        return a if a.status_ms or a.handling_ms else None

    def forget(self, before: int) -> None:
        """Drop breakpoints no window starting at `before` or later needs."""
        i = bisect_right(self.times, before) - 1
        if i > 0:
            del self.times[:i], self.totals[:i], self.rates[:i]
