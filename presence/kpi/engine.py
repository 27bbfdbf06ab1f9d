"""The KPI engine: exact figures from a list of events and an explicit clock.

Pure: no I/O and no wall clock. `Tracker` folds routing events (as the Lua
scripts record them in ``stream:events``) and status changes (as in
``stream:status``) into *facts*: an item offered, answered, abandoned,
completed; an agent's status intervals and handling intervals. `Tracker.
aggregate` then sums the facts that fall in each window into additive
`Agg` records per queue, channel, agent and for the center, and `Agg.kpis`
derives the ratios. Every definition lives here and in ``docs/kpis.md``.

Counting rules (one place, so reports, roll-ups and the wallboard agree):

* an item counts as *offered* when it arrives (its ``create``);
* *answered* when first accepted (later accepts after a transfer are not a
  second answer), with its wait = accept - arrival;
* *abandoned* when the customer gives up before any accept;
* *handled* when completed, with handle time = completion - first accept
  (wrap-up included);
* a window [start, now] holds a point fact when start <= ts <= now; an
  interval counts for the part of it that lies inside the window.

Unknown event names (from newer scripts) are ignored, except that any event
naming an item marks a ``transfer`` or a reopen on it, which spoils its
first-contact resolution.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

DEFAULT_THRESHOLD = 20.0
# A finished item routed again (case_intake / reroute in _lib.lua).
REOPEN_EVENTS = frozenset({"reopen", "case.reopen", "case_reopen"})
# Ownership handed on: transfer, transfer.agent, transfer.queue, escalate ...
TRANSFER_PREFIXES = ("transfer", "escalat")
CASE_STATUS_EVENTS = frozenset({"case.status", "case_status"})
# Facts, agents or span-windows summed between two yields of
# `Tracker.aggregate_steps` (a few milliseconds of work).
STEP = 1000


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded event, decoded: ``ev`` and ``ts`` (ms) plus its fields."""

    ev: str
    ts: int
    work: str = ""
    agent: str = ""
    queue: str = ""
    channel: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.extra.get(name, default)


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def parse_event(raw: Mapping[Any, Any]) -> Event | None:
    """An event from a stream entry's fields; None when it has no ev or ts."""
    d = {_text(k): _text(v) for k, v in raw.items()}
    ev = d.pop("ev", "")
    try:
        ts = int(float(d.pop("ts", "")))
    except ValueError:
        return None
    if not ev:
        return None
    return Event(ev, ts, d.pop("work", ""), d.pop("agent", ""), d.pop("queue", ""), d.pop("channel", ""), d)


def parse_status(raw: Mapping[Any, Any]) -> Event | None:
    """A ``stream:status`` entry as a ``status`` event (with prev, prev_since)."""
    d = {_text(k): _text(v) for k, v in raw.items()}
    d["ev"] = "status"
    return parse_event(d)


# -- additive aggregates -------------------------------------------------------


@dataclass(slots=True)
class Agg:
    """Additive sums for one group in one window; `kpis` derives the ratios.

    Every field adds up across hours, days and groups, so the roll-up keeps
    these and never a ratio.
    """

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_in_sl: int = 0
    abandoned_in_sl: int = 0
    wait_ms: int = 0  # summed queue time of answered items
    abandon_wait_ms: int = 0
    max_wait_ms: int = 0  # longest queue time of an answered item
    handled: int = 0
    handle_ms: int = 0
    resolved_first: int = 0  # handled with no transfer and no reopen
    transfers: int = 0
    # agent time (ms), clipped to the window
    handling_ms: int = 0  # at least one item in hand
    available_ms: int = 0  # in a routable status
    staffed_ms: int = 0  # available or handling
    logged_in_ms: int = 0  # in any status but the offline one
    load_ms: int = 0  # sum of weight x time held
    capacity_ms: int = 0  # capacity x staffed time
    status_ms: dict[str, int] = field(default_factory=dict)  # "Break" and "Break/Coffee"

    def add(self, other: Agg) -> None:
        for f in fields(self):
            if f.name == "status_ms":
                for k, v in other.status_ms.items():
                    self.status_ms[k] = self.status_ms.get(k, 0) + v
            elif f.name == "max_wait_ms":
                self.max_wait_ms = max(self.max_wait_ms, other.max_wait_ms)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (dict(self.status_ms) if f.name == "status_ms" else getattr(self, f.name))
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Agg:
        a = cls()
        for f in fields(a):
            if f.name in d:
                v = d[f.name]
                setattr(
                    a, f.name, {str(k): int(x) for k, x in v.items()} if f.name == "status_ms" else int(v)
                )
        return a

    def kpis(self) -> dict[str, Any]:
        """The figures a supervisor reads; None where there is nothing to divide."""
        outcome = self.answered + self.abandoned
        sl_base = self.answered + self.abandoned - self.abandoned_in_sl
        return {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "answered_in_sl": self.answered_in_sl,
            "abandoned_in_sl": self.abandoned_in_sl,
            "service_level": _ratio(self.answered_in_sl, sl_base),
            "asa": _ratio(self.wait_ms, self.answered * 1000),
            "max_answer_wait": self.max_wait_ms / 1000,
            "aht": _ratio(self.handle_ms, self.handled * 1000),
            "handled": self.handled,
            "abandonment_rate": _ratio(self.abandoned, outcome),
            "fcr": _ratio(self.resolved_first, self.handled),
            "transfers": self.transfers,
            "occupancy": _ratio(self.handling_ms, self.staffed_ms),
            "utilisation": _ratio(self.load_ms, self.capacity_ms),
            "handle_time": self.handling_ms / 1000,
            "available_time": self.available_ms / 1000,
            "logged_in_time": self.logged_in_ms / 1000,
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


# -- facts ---------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    created: int | None = None
    queue: str = ""
    channel: str = ""
    accepted: int | None = None  # first accept of this routing (the answer)
    cycle: int | None = None  # start of this routing's handling
    agent: str = ""
    holder: str = ""  # agent holding it now
    held_since: int = 0
    weight: int = 0
    flagged: bool = False  # transferred or reopened: not first-contact resolved
    done: bool = False
    work: str = ""


@dataclass(frozen=True, slots=True)
class Fact:
    kind: str  # offered, answered, abandoned, handled, transfer
    ts: int
    queue: str
    channel: str
    agent: str = ""
    wait_ms: int = 0
    within: bool = False
    handle_ms: int = 0
    first_contact: bool = False
    work: str = ""


@dataclass(frozen=True, slots=True)
class Span:
    """An agent's interval [start, end) in a status, or holding an item."""

    agent: str
    start: int
    end: int | None  # None: still open at `now`
    status: str = ""
    reason: str = ""
    weight: int = 0  # > 0: a handling span of an item of this weight


@dataclass(frozen=True, slots=True)
class Settings:
    """What the engine needs to know about the center."""

    thresholds: Mapping[str, float] = field(default_factory=dict)  # queue -> seconds
    weights: Mapping[str, int] = field(default_factory=dict)  # channel -> units
    routable: frozenset[str] = frozenset({"Available"})
    offline: str = "Offline"
    capacities: Mapping[str, int] = field(default_factory=dict)  # agent -> units
    members: Mapping[str, Sequence[str]] = field(default_factory=dict)  # queue -> agents
    closed: frozenset[str] = frozenset({"Closed"})  # case statuses that close a case

    def threshold_ms(self, queue: str) -> int:
        return int(self.thresholds.get(queue, DEFAULT_THRESHOLD) * 1000)


class Tracker:
    """Folds events in time order into facts and spans; aggregates windows.

    `arrivals` gives the arrival time of items created before the first
    event fed (the item hash's ``created``), so an answer just after the
    look-back still has its exact wait.
    """

    def __init__(
        self,
        settings: Settings,
        arrivals: Mapping[str, int] | None = None,
        accepts: Mapping[str, int] | None = None,
        *,
        incremental: bool = False,
    ) -> None:
        self.settings = settings
        self.arrivals = dict(arrivals or {})
        # accept time of items completed without their accept in the events fed
        self.accepts = dict(accepts or {})
        self.items: dict[str, _Item] = {}
        self.facts: list[Fact] = []
        self.spans: list[Span] = []
        # agent -> (status, reason, since) of the status it is in now
        self.status: dict[str, tuple[str, str, int]] = {}
        # incremental agent time (the live task): per agent, the running
        # integrals of its spans (`_Timeline`), kept up to date as events are
        # fed, so a window costs two look-ups per agent, not a pass over its day
        self.incremental = incremental
        self.timelines: dict[str, _Timeline] = {}
        self.held: dict[str, dict[str, _Item]] = {}  # agent -> items it holds now
        self.agent_spans: dict[str, list[Span]] = {}  # closed spans by agent
        self._stale: set[str] = set()  # agents whose timeline is rebuilt from spans
        self._rates_key: tuple[frozenset[str], str] = (settings.routable, settings.offline)
        # incremental facts: per window, running sums of the facts inside it
        self._running: dict[str, _RunningWindow] = {}
        self._disordered = False  # a fact recorded before an earlier one

    # -- folding

    def feed(self, events: Iterable[Event]) -> None:
        for e in events:
            self._fold(e)

    def _item(self, e: Event) -> _Item:
        it = self.items.get(e.work)
        if it is None:
            it = self.items[e.work] = _Item(
                created=self.arrivals.get(e.work), queue=e.queue, channel=e.channel, work=e.work
            )
        return it

    def _close(self, span: Span) -> None:
        self.spans.append(span)
        if self.incremental:
            self.agent_spans.setdefault(span.agent, []).append(span)

    def _record(self, f: Fact) -> None:
        if self.incremental and self.facts and f.ts < self.facts[-1].ts:
            self._disordered = True
        self.facts.append(f)

    def _flag(self, it: _Item) -> None:
        if not it.flagged:
            it.flagged = True
            for rw in self._running.values():
                rw.spoil(it.work)

    def flagged(self, work: str) -> bool:
        it = self.items.get(work)
        return it is not None and it.flagged

    def _release(self, it: _Item, ts: int) -> None:
        if it.holder:
            holder = it.holder
            self._close(Span(holder, it.held_since, ts, weight=max(1, it.weight)))
            it.holder = ""
            if self.incremental:
                self.held.get(holder, {}).pop(it.work, None)
                self._touch(holder, ts)

    def _hold(self, it: _Item, agent: str, ts: int) -> None:
        it.holder, it.held_since = agent, ts
        if self.incremental:
            self.held.setdefault(agent, {})[it.work] = it
            self._touch(agent, ts)

    def _touch(self, agent: str, ts: int) -> None:
        """The agent's state changed at `ts`: extend its timeline, or, for a
        change out of time order, have it rebuilt from its spans."""
        if agent in self._stale:
            return
        tl = self.timelines.get(agent)
        if tl is None:
            tl = self.timelines[agent] = _Timeline()
        if not tl.append(ts, self._rates_now(agent)):
            self._stale.add(agent)

    def _rates_now(self, agent: str) -> dict[str, int]:
        covering: list[Span] = []
        st = self.status.get(agent)
        if st is not None:
            covering.append(Span(agent, st[2], None, st[0], st[1]))
        for it in self.held.get(agent, {}).values():
            covering.append(Span(agent, it.held_since, None, weight=max(1, it.weight)))
        return _rates(covering, self.settings)

    def _fold(self, e: Event) -> None:
        if e.ev == "status":
            self._status(e)
            return
        if not e.work:
            return
        it = self._item(e)
        it.queue = e.queue or it.queue
        it.channel = e.channel or it.channel
        weight = self.settings.weights.get(it.channel, it.weight or 1)
        if self.incremental and it.holder and max(1, weight) != max(1, it.weight):
            # a held item's span counts with its last weight throughout
            self._stale.add(it.holder)
        it.weight = weight
        kind = e.ev
        if kind == "create":
            it.created = e.ts
            self._record(Fact("offered", e.ts, it.queue, it.channel, work=e.work))
        elif kind == "accept":
            if it.holder and it.holder != e.agent:
                self._release(it, e.ts)
            if not it.holder:
                self._hold(it, e.agent, e.ts)
            if it.cycle is None:
                it.cycle = e.ts
            if it.accepted is None:
                it.accepted, it.agent = e.ts, e.agent
                wait = e.ts - it.created if it.created is not None else 0
                self._record(
                    Fact(
                        "answered",
                        e.ts,
                        it.queue,
                        it.channel,
                        e.agent,
                        wait_ms=max(0, wait),
                        within=wait <= self.settings.threshold_ms(it.queue),
                        work=e.work,
                    )
                )
        elif kind == "abandon":
            if it.accepted is None and not it.done:
                it.done = True
                wait = e.ts - it.created if it.created is not None else 0
                self._record(
                    Fact(
                        "abandoned",
                        e.ts,
                        it.queue,
                        it.channel,
                        wait_ms=max(0, wait),
                        within=wait <= self.settings.threshold_ms(it.queue),
                        work=e.work,
                    )
                )
            self._release(it, e.ts)
        elif kind == "complete":
            agent = e.agent or it.holder or it.agent
            self._release(it, e.ts)
            if not it.done:
                it.done = True
                handle = e.ts - it.cycle if it.cycle is not None else 0
                self._record(
                    Fact(
                        "handled",
                        e.ts,
                        it.queue,
                        it.channel,
                        agent,
                        handle_ms=max(0, handle),
                        first_contact=not it.flagged,
                        work=e.work,
                    )
                )
        elif _is_transfer(e):
            self._flag(it)
            self._release(it, e.ts)
            self._record(Fact("transfer", e.ts, it.queue, it.channel, e.agent, work=e.work))
        elif kind in REOPEN_EVENTS:
            # a finished case routes again (store/lua/_lib.lua reroute): a new
            # contact with its own wait, answer and handling, never first-contact
            self._flag(it)
            self._release(it, e.ts)
            it.created, it.accepted, it.cycle, it.done = e.ts, None, None, False
            self._record(Fact("offered", e.ts, it.queue, it.channel, work=e.work))
        elif kind in CASE_STATUS_EVENTS and (
            e.get("prev") in self.settings.closed or "reopen" in e.get("status").lower()
        ):
            self._flag(it)

    def _status(self, e: Event) -> None:
        status, reason = e.get("status"), e.get("reason")
        prev = self.status.get(e.agent)
        if prev is not None:
            self._close(Span(e.agent, prev[2], e.ts, prev[0], prev[1]))
        elif e.get("prev") and e.get("prev_since"):
            # the status the agent was in before the first change we saw
            try:
                since = int(float(e.get("prev_since")))
            except ValueError:
                since = 0
            if 0 < since <= e.ts:
                self._close(Span(e.agent, since, e.ts, e.get("prev"), e.get("prev_reason")))
                if self.incremental:
                    self._stale.add(e.agent)  # a span before its first change
        self.status[e.agent] = (status, reason, e.ts)
        if self.incremental:
            self._touch(e.agent, e.ts)

    def seed_status(self, agent: str, status: str, reason: str, since: int) -> None:
        """The agent's current status when no change of it was fed (from its live view)."""
        if agent not in self.status:
            self.status[agent] = (status, reason, since)
            if self.incremental:
                self._stale.add(agent)

    # -- windows

    def open_spans(self) -> list[Span]:
        spans = [Span(a, s[2], None, s[0], s[1]) for a, s in self.status.items()]
        for it in self.items.values():
            if it.holder:
                spans.append(Span(it.holder, it.held_since, None, weight=max(1, it.weight)))
        return spans

    def waiting(self, now: int) -> dict[str, tuple[int, int]]:
        """Per queue: (items waiting, longest wait ms) among items seen arriving."""
        out: dict[str, tuple[int, int]] = {}
        for it in self.items.values():
            if it.accepted is None and not it.done and it.created is not None:
                n, w = out.get(it.queue, (0, 0))
                out[it.queue] = (n + 1, max(w, now - it.created))
        return out

    def _facts(self) -> Iterable[Fact]:
        for f in self.facts:
            if f.kind == "handled" and f.first_contact:
                # first-contact resolution is judged with all we know now: a
                # transfer or reopen after the completion still spoils it
                it = self.items.get(f.work)
                if it is not None and it.flagged:
                    f = replace(f, first_contact=False)
            yield f

    def group(self, start: int, end: int, key: Callable[[Fact], str | None]) -> dict[str, Agg]:
        """Sums of the item facts with start <= ts < end, by `key` (None: left out)."""
        out: dict[str, Agg] = {}
        for f in self._facts():
            if start <= f.ts < end:
                k = key(f)
                if k is not None:
                    apply_fact(_g(out, k), f)
        return out

    def aggregate(
        self,
        now: int,
        windows: Mapping[str, int],
        *,
        inclusive: bool = True,
        agents_for: Collection[str] | None = None,
    ) -> dict[str, Groups]:
        """For each window name -> start ms, the sums per group in [start, now]
        ([start, now) for facts when not `inclusive`, as for a closed hour)."""
        steps = self.aggregate_steps(now, windows, inclusive=inclusive, agents_for=agents_for)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def aggregate_steps(
        self,
        now: int,
        windows: Mapping[str, int],
        *,
        inclusive: bool = True,
        chunk: int = STEP,
        agents_for: Collection[str] | None = None,
    ) -> Generator[None, None, dict[str, Groups]]:
        """`aggregate` in steps of about `chunk` facts or spans: the caller may
        yield to its event loop at each step (the result is the same).

        Incremental, `agents_for` names the windows whose per-agent sums are
        wanted (None: all); the others leave ``agents`` empty (their center
        and queue sums are whole), which spares a tick most of its work.
        """
        wins = list(windows.items())
        end = now if inclusive else now - 1
        if self.incremental and inclusive:
            out = {}
            for name, start in wins:
                out[name] = yield from self._running_window(
                    name, start, now, chunk, agents_for is None or name in agents_for
                )
        else:
            out = {name: Groups() for name in windows}
        for i, f in enumerate(() if self.incremental and inclusive else self._facts(), 1):
            for name, start in wins:
                if start <= f.ts <= end:
                    _add_fact(out[name], f)
            if i % chunk == 0:
                yield
        member_of = _member_of(self.settings)
        if self.incremental:
            yield from self._timeline_time(out, wins, now, member_of, chunk, agents_for)
            return out
        per = _by_agent(self.spans + self.open_spans())
        n = 0
        for aid, ss in per.items():
            for name, start in wins:
                t = _one_agent_time(aid, ss, start, now, self.settings)
                if t is not None:
                    _time_to_groups(out[name], aid, t, member_of)
            n += len(ss) * len(wins)
            if n >= chunk:
                n = 0
                yield
        return out

    def _timeline_time(
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
                    _time_to_groups(out[name], aid, a, member_of, agents_for is None or name in agents_for)
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
            rw = self._running[name] = _RunningWindow(start, i, self.flagged)
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

    def _rebuild_timeline(self, agent: str) -> _Timeline:
        spans = list(self.agent_spans.get(agent, ()))
        st = self.status.get(agent)
        if st is not None:
            spans.append(Span(agent, st[2], None, st[0], st[1]))
        for it in self.held.get(agent, {}).values():
            spans.append(Span(agent, it.held_since, None, weight=max(1, it.weight)))
        tl = _Timeline()
        for t, rates in _sweep(spans, self.settings):
            tl.append(t, rates)
        return tl

    def prune(self, before: int) -> None:
        """Forget facts and closed spans that ended before `before` (live look-back)."""
        kept = [f for f in self.facts if f.ts >= before]
        gone, self.facts = len(self.facts) - len(kept), kept
        for name, rw in list(self._running.items()):
            # sorted facts: those forgotten were the first `gone`
            if self._disordered or rw.lo < gone:
                del self._running[name]
            else:
                rw.lo -= gone
                rw.hi -= gone
        self.spans = [s for s in self.spans if s.end is None or s.end >= before]
        if self.incremental:
            for aid, ss in self.agent_spans.items():
                if ss and ss[0].end is not None and ss[0].end < before:
                    self.agent_spans[aid] = [s for s in ss if s.end is None or s.end >= before]
            for tl in self.timelines.values():
                tl.forget(before)
        for wid in [w for w, it in self.items.items() if it.done and not it.holder]:
            it = self.items[wid]
            if (it.accepted or it.created or 0) < before:
                del self.items[wid]
                if it.flagged and self._running:
                    # its facts count as recorded again (as `_facts` reads them)
                    for rw in self._running.values():
                        rw.unspoil(wid)


def _is_transfer(e: Event) -> bool:
    if e.ev.startswith(TRANSFER_PREFIXES):
        return True
    return e.ev == "call.control" and e.get("action") == "transfer"


@dataclass(slots=True)
class Groups:
    center: Agg = field(default_factory=Agg)
    queues: dict[str, Agg] = field(default_factory=dict)
    channels: dict[str, Agg] = field(default_factory=dict)
    agents: dict[str, Agg] = field(default_factory=dict)


def _g(d: dict[str, Agg], k: str) -> Agg:
    a = d.get(k)
    if a is None:
        a = d[k] = Agg()
    return a


def apply_fact(a: Agg, f: Fact) -> None:
    if f.kind == "offered":
        a.offered += 1
    elif f.kind == "answered":
        a.answered += 1
        a.wait_ms += f.wait_ms
        a.max_wait_ms = max(a.max_wait_ms, f.wait_ms)
        a.answered_in_sl += f.within
    elif f.kind == "abandoned":
        a.abandoned += 1
        a.abandon_wait_ms += f.wait_ms
        a.abandoned_in_sl += f.within
    elif f.kind == "handled":
        a.handled += 1
        a.handle_ms += f.handle_ms
        a.resolved_first += f.first_contact
    elif f.kind == "transfer":
        a.transfers += 1


def _add_fact(g: Groups, f: Fact) -> None:
    apply_fact(g.center, f)
    if f.queue:
        apply_fact(_g(g.queues, f.queue), f)
    if f.channel:
        apply_fact(_g(g.channels, f.channel), f)
    if f.agent and f.kind in ("answered", "handled", "transfer"):
        apply_fact(_g(g.agents, f.agent), f)


def _clip(s: Span, start: int, now: int) -> tuple[int, int]:
    return max(s.start, start), min(now if s.end is None else s.end, now)


def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _length(intervals: list[tuple[int, int]]) -> int:
    return sum(b - a for a, b in intervals)


def _targets(g: Groups, f: Fact) -> list[tuple[dict[str, Agg] | None, str]]:
    """Where a fact counts, as `_add_fact` adds it: (group dict or None for
    the center, name)."""
    out: list[tuple[dict[str, Agg] | None, str]] = [(None, "")]
    if f.queue:
        out.append((g.queues, f.queue))
    if f.channel:
        out.append((g.channels, f.channel))
    if f.agent and f.kind in ("answered", "handled", "transfer"):
        out.append((g.agents, f.agent))
    return out


class _RunningWindow:
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
        return _g(d, name) if create else d[name]

    def add(self, f: Fact) -> None:
        fc = False
        if f.kind == "handled" and f.first_contact:
            fc = not self.flagged(f.work)
            (self.counted if fc else self.spoiled).setdefault(f.work, []).append(f)
        for d, name in _targets(self.groups, f):
            key = (id(d), name)
            self.count[key] = self.count.get(key, 0) + 1
            a = self._agg(d, name, True)
            _sign_fact(a, f, 1, fc)
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
        for d, name in _targets(self.groups, f):
            key = (id(d), name)
            a = self._agg(d, name, False)
            _sign_fact(a, f, -1, fc)
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
            for d, name in _targets(self.groups, f):
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


def _sign_fact(a: Agg, f: Fact, n: int, first_contact: bool) -> None:
    """`apply_fact` (n = 1) or its undoing (n = -1), the maximum aside."""
    if f.kind == "offered":
        a.offered += n
    elif f.kind == "answered":
        a.answered += n
        a.wait_ms += n * f.wait_ms
        a.answered_in_sl += n * f.within
    elif f.kind == "abandoned":
        a.abandoned += n
        a.abandon_wait_ms += n * f.wait_ms
        a.abandoned_in_sl += n * f.within
    elif f.kind == "handled":
        a.handled += n
        a.handle_ms += n * f.handle_ms
        a.resolved_first += n * first_contact
    elif f.kind == "transfer":
        a.transfers += n


_MEASURES = ("handling_ms", "available_ms", "staffed_ms", "logged_in_ms", "load_ms")


def _rates(covering: Iterable[Span], settings: Settings) -> dict[str, int]:
    """How fast each measure grows (per ms) while exactly `covering` are open.

    Handling, available and staffed are unions (0 or 1), the others sums,
    as in `agent_time`; a status is counted under ``s:<status>`` and
    ``s:<status>/<reason>``.
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


def _sweep(spans: Iterable[Span], settings: Settings) -> list[tuple[int, dict[str, int]]]:
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
        out.append((t, _rates([s for s, n in open_.values() for _ in range(n)], settings)))
    return out


class _Timeline:
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
        """The agent's time in [start, now], as `agent_time` sums it."""
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


def _by_agent(spans: Iterable[Span]) -> dict[str, list[Span]]:
    per: dict[str, list[Span]] = {}
    for s in spans:
        per.setdefault(s.agent, []).append(s)
    return per


def _one_agent_time(aid: str, ss: Iterable[Span], start: int, now: int, settings: Settings) -> Agg | None:
    a = Agg()
    handling: list[tuple[int, int]] = []
    available: list[tuple[int, int]] = []
    for s in ss:
        lo, hi = _clip(s, start, now)
        if hi <= lo:
            continue
        if s.weight:
            handling.append((lo, hi))
            a.load_ms += s.weight * (hi - lo)
            continue
        d = hi - lo
        a.status_ms[s.status] = a.status_ms.get(s.status, 0) + d
        if s.reason:
            k = f"{s.status}/{s.reason}"
            a.status_ms[k] = a.status_ms.get(k, 0) + d
        if s.status != settings.offline:
            a.logged_in_ms += d
        if s.status in settings.routable:
            available.append((lo, hi))
    hu, au = _union(handling), _union(available)
    a.handling_ms = _length(hu)
    a.available_ms = _length(au)
    a.staffed_ms = _length(_union(hu + au))
    a.capacity_ms = settings.capacities.get(aid, 0) * a.staffed_ms
    return a if a.status_ms or a.handling_ms else None


def agent_time(spans: Iterable[Span], start: int, now: int, settings: Settings) -> dict[str, Agg]:
    """Per agent: time in each status, handling, available, staffed, load, in [start, now]."""
    out: dict[str, Agg] = {}
    for aid, ss in _by_agent(spans).items():
        a = _one_agent_time(aid, ss, start, now, settings)
        if a is not None:
            out[aid] = a
    return out


def _member_of(settings: Settings) -> dict[str, list[str]]:
    member_of: dict[str, list[str]] = {}
    for q, agents in settings.members.items():
        for aid in agents:
            member_of.setdefault(aid, []).append(q)
    return member_of


def _time_to_groups(
    g: Groups, aid: str, t: Agg, member_of: Mapping[str, list[str]], agent: bool = True
) -> None:
    if agent:
        _time_into(_g(g.agents, aid), t)
    _time_into(g.center, t)
    for q in member_of.get(aid, ()):
        _time_into(_g(g.queues, q), t)


def _time_into(a: Agg, t: Agg) -> None:
    a.handling_ms += t.handling_ms
    a.available_ms += t.available_ms
    a.staffed_ms += t.staffed_ms
    a.logged_in_ms += t.logged_in_ms
    a.load_ms += t.load_ms
    a.capacity_ms += t.capacity_ms
    for k, v in t.status_ms.items():
        a.status_ms[k] = a.status_ms.get(k, 0) + v


def compute(
    events: Iterable[Event],
    now: int,
    windows: Mapping[str, int],
    settings: Settings | None = None,
    *,
    arrivals: Mapping[str, int] | None = None,
    current: Mapping[str, tuple[str, str, int]] | None = None,
) -> dict[str, Groups]:
    """KPIs of each window from events sorted by time (the pure entry point).

    `current` seeds agents whose status did not change in the events fed:
    agent -> (status, reason, since), from their live view.
    """
    t = Tracker(settings or Settings(), arrivals)
    t.feed(sorted(events, key=lambda e: e.ts))
    for aid, (st, rs, since) in (current or {}).items():
        t.seed_status(aid, st, rs, since)
    return t.aggregate(now, windows)
