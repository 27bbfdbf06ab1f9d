"""The tracker: events folded into facts and spans, and windows summed from them (pure).

No I/O and no wall clock: every figure comes from the events fed and an
explicit ``now``. `Tracker` folds routing events (as the Lua scripts record
them in ``stream:events``) and status changes (as in ``stream:status``), in
time order, into *facts* (an item offered, answered, abandoned, handled,
transferred) and *spans* (an agent's status intervals and handling
intervals); `Tracker.aggregate` then sums the facts and spans that fall in
each window into `Groups` of additive `Agg` records. This is the full pass
over everything fed (the tests' oracle, and short replays such as an item's
recalled history); the wallboard, roll-ups and reports use
`incremental.IncrementalTracker`, which folds as it reads and must give the
same figures. `compute` is the one-call entry point.

Counting rules (one place, so reports, roll-ups and the wallboard agree;
documented in ``docs/kpis.md``):

* an item counts as *offered* when it arrives (its ``create``);
* *answered* when first accepted (later accepts after a transfer are not a
  second answer), with its wait = accept - arrival;
* *abandoned* when the customer gives up before any accept;
* *handled* when completed, with handle time = completion - first accept
  (wrap-up included);
* a transfer, a reopen or a case status change out of a closed status
  spoils the item's first-contact resolution, even after its completion.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Generator, Iterable, Mapping
from dataclasses import dataclass

from presence.kpi.aggregates import (
    Agg,
    Groups,
    add_fact,
    add_time,
    agg_of,
    apply_fact,
    by_agent,
    one_agent_time,
    queues_of,
)
from presence.kpi.events import CASE_STATUS_EVENTS, REOPEN_EVENTS, Event, is_transfer
from presence.kpi.facts import Fact, Settings, Span

# Facts, agents or span-windows summed between two yields of
# `Tracker.aggregate_steps` (a few milliseconds of work).
STEP = 1000


@dataclass(slots=True)
class ItemState:
    """What the tracker knows of one item while folding its events."""

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
    last_fact: int | None = None  # time of its latest fact (the live tracker forgets it once folded)


class _Arrived:
    """The items of `items` whose arrival time is known, as a container."""

    __slots__ = ("items",)

    def __init__(self, items: Mapping[str, ItemState]) -> None:
        self.items = items

    def __contains__(self, work: object) -> bool:
        it = self.items.get(work) if isinstance(work, str) else None
        return it is not None and it.created is not None


def _paused(e: Event) -> int:
    """The part of an item's wait its queue was closed (``paused`` on accept
    and abandon, _lib_queue.lua): service level and ASA leave it out."""
    try:
        return max(0, int(float(e.get("paused") or 0)))
    except ValueError:
        return 0


class Tracker:
    """Folds events in time order into facts and spans; aggregates windows.

    `arrivals` gives the arrival time of items created before the first
    event fed (the item hash's ``created``), and `accepts` the accept time
    of items accepted before it (``accepted_at``), so an answer or a
    completion just after the look-back still has its exact wait or handle
    time.
    """

    def __init__(
        self,
        settings: Settings,
        arrivals: Mapping[str, int] | None = None,
        accepts: Mapping[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.arrivals = dict(arrivals or {})
        # accept time of items completed without their accept in the events
        # fed: the start of their handling
        self.accepts = dict(accepts or {})
        self.items: dict[str, ItemState] = {}
        self.facts: list[Fact] = []
        self.spans: list[Span] = []
        # agent -> (status, reason, since) of the status it is in now
        self.status: dict[str, tuple[str, str, int]] = {}

    # -- folding

    def feed(self, events: Iterable[Event]) -> None:
        for e in events:
            self._fold(e)

    def _item(self, e: Event) -> ItemState:
        it = self.items.get(e.work)
        if it is None:
            # an item first seen after its arrival or its accept: its arrival
            # from the item hash (`history.item_times`), so its wait stays
            # exact (its accept time is taken when it completes: `_handle`)
            it = self.items[e.work] = ItemState(
                created=self.arrivals.get(e.work),
                queue=e.queue,
                channel=e.channel,
                work=e.work,
            )
        elif it.created is None and e.work in self.arrivals:
            # seen before its arrival time was read (an offer in an earlier batch)
            it.created = self.arrivals[e.work]
        return it

    def _close(self, span: Span) -> None:
        self.spans.append(span)

    def _record(self, f: Fact) -> None:
        self.facts.append(f)

    def _flag(self, it: ItemState) -> None:
        it.flagged = True

    @property
    def arrived(self) -> Container[str]:
        """The items whose arrival time this tracker knows (`history.item_times`)."""
        return _Arrived(self.items)

    def flagged(self, work: str) -> bool:
        it = self.items.get(work)
        return it is not None and it.flagged

    def _release(self, it: ItemState, ts: int) -> None:
        if it.holder:
            self._close(Span(it.holder, it.held_since, ts, weight=max(1, it.weight)))
            it.holder = ""

    def _hold(self, it: ItemState, agent: str, ts: int) -> None:
        it.holder, it.held_since = agent, ts

    def _weigh(self, it: ItemState, weight: int) -> None:
        it.weight = weight

    def _fold(self, e: Event) -> None:
        if e.ev == "status":
            self._status(e)
            return
        if not e.work:
            return
        if e.ev == "csat":
            # a survey answer counts when it comes (days later, maybe), for the
            # agent and queue of the case (case_csat.lua): no item state needed
            try:
                score = int(float(e.get("score")))
            except ValueError:
                return
            self._record(Fact("csat", e.ts, e.queue, e.channel, e.agent, work=e.work, score=score))
            return
        it = self._item(e)
        it.queue = e.queue or it.queue
        it.channel = e.channel or it.channel
        self._weigh(it, self.settings.weights.get(it.channel, it.weight or 1))
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
                self.accepts.pop(e.work, None)  # its handling starts here, not at `accepted_at`
            if it.accepted is None:
                it.accepted, it.agent = e.ts, e.agent
                wait = e.ts - it.created - _paused(e) if it.created is not None else 0
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
                wait = e.ts - it.created - _paused(e) if it.created is not None else 0
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
                handle = self._handle(it, e.ts)
                self._record(
                    Fact(
                        "handled",
                        e.ts,
                        it.queue,
                        it.channel,
                        agent,
                        handle_ms=handle,
                        first_contact=not it.flagged,
                        work=e.work,
                    )
                )
        elif is_transfer(e):
            self._flag(it)
            self._release(it, e.ts)
            self._record(Fact("transfer", e.ts, it.queue, it.channel, e.agent, work=e.work))
        elif kind in REOPEN_EVENTS:
            # a finished case routes again (store/lua/_lib_work.lua reroute): a new
            # contact with its own wait, answer and handling, never first-contact
            self._flag(it)
            self._release(it, e.ts)
            it.created, it.accepted, it.cycle, it.done = e.ts, None, None, False
            self.accepts.pop(e.work, None)  # a new routing: the old accept is not its start
            self._record(Fact("offered", e.ts, it.queue, it.channel, work=e.work))
        elif kind in CASE_STATUS_EVENTS and (
            e.get("prev") in self.settings.closed or "reopen" in e.get("status").lower()
        ):
            self._flag(it)

    def _handle(self, it: ItemState, ts: int) -> int:
        """The handle time of `it` completed at `ts`: from the start of this
        routing's handling, or, with no accept fed since the item was first
        seen, from its hash's ``accepted_at`` (`accepts`). Taken here, not
        when the item is first seen: a replay read page by page learns it
        in the page that first meets the item, and an accept fed later
        must still start the handling (as in the full pass, which has no
        ``accepted_at`` for an item whose accept it is fed)."""
        start = it.cycle if it.cycle is not None else self.accepts.pop(it.work, None)
        return max(0, ts - start) if start is not None else 0

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
                self._close_before_first(Span(e.agent, since, e.ts, e.get("prev"), e.get("prev_reason")))
        self.status[e.agent] = (status, reason, e.ts)

    def _close_before_first(self, span: Span) -> None:
        """`span` precedes the first status change seen of its agent."""
        self._close(span)

    def seed_status(self, agent: str, status: str, reason: str, since: int) -> None:
        """The agent's current status when no change of it was fed (from its live view)."""
        if agent not in self.status:
            self.status[agent] = (status, reason, since)

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
                    f = f._replace(first_contact=False)
            yield f

    def group(self, start: int, end: int, key: Callable[[Fact], str | None]) -> dict[str, Agg]:
        """Sums of the item facts with start <= ts < end, by `key` (None: left out)."""
        out: dict[str, Agg] = {}
        for f in self._facts():
            if start <= f.ts < end:
                k = key(f)
                if k is not None:
                    apply_fact(agg_of(out, k), f)
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

        `agents_for` names the windows whose per-agent sums are wanted (None:
        all); a tracker may leave ``agents`` empty in the others (their
        center and queue sums are whole). The full pass fills them all.
        """
        wins = list(windows.items())
        out = yield from self._fact_sums(now, wins, inclusive, chunk, agents_for)
        yield from self._agent_sums(out, wins, now, queues_of(self.settings), chunk, agents_for)
        return out

    def _fact_sums(
        self, now: int, wins: list[tuple[str, int]], inclusive: bool, chunk: int,
        agents_for: Collection[str] | None,
    ) -> Generator[None, None, dict[str, Groups]]:  # fmt: skip
        """Every window's fact sums, from a pass over every fact."""
        end = now if inclusive else now - 1
        out = {name: Groups() for name, _ in wins}
        for i, f in enumerate(self._facts(), 1):
            for name, start in wins:
                if start <= f.ts <= end:
                    add_fact(out[name], f)
            if i % chunk == 0:
                yield
        return out

    def _agent_sums(
        self, out: dict[str, Groups], wins: list[tuple[str, int]], now: int,
        member_of: Mapping[str, list[str]], chunk: int, agents_for: Collection[str] | None,
    ) -> Generator[None, None, None]:  # fmt: skip
        """Every window's agent time added into `out`, from a pass over every span."""
        per = by_agent(self.spans + self.open_spans())
        n = 0
        for aid, ss in per.items():
            for name, start in wins:
                t = one_agent_time(aid, ss, start, now, self.settings)
                if t is not None:
                    add_time(out[name], aid, t, member_of)
            n += len(ss) * len(wins)
            if n >= chunk:
                n = 0
                yield

    def prune(self, before: int) -> None:
        """Forget facts and closed spans that ended before `before` (live look-back)."""
        self.facts = [f for f in self.facts if f.ts >= before]
        self.spans = [s for s in self.spans if s.end is None or s.end >= before]
        self._prune_items(before)

    def _prune_items(self, before: int) -> None:
        """Forget items finished before `before`, and so their flags."""
        for wid in [w for w, it in self.items.items() if it.done and not it.holder]:
            it = self.items[wid]
            if (it.accepted or it.created or 0) < before:
                del self.items[wid]
                self._forgot(it)

    def _forgot(self, it: ItemState) -> None:
        """`it`, finished before the look-back, was forgotten by `prune`."""


def compute(
    events: Iterable[Event],
    now: int,
    windows: Mapping[str, int],
    settings: Settings | None = None,
    *,
    arrivals: Mapping[str, int] | None = None,
    accepts: Mapping[str, int] | None = None,
    current: Mapping[str, tuple[str, str, int]] | None = None,
) -> dict[str, Groups]:
    """KPIs of each window from events sorted by time (the pure entry point).

    `arrivals` and `accepts` are the arrival and accept times of items
    whose create or accept precede the events (`Tracker`); `current` seeds
    agents whose status did not change in the events fed: agent -> (status,
    reason, since), from their live view.
    """
    t = Tracker(settings or Settings(), arrivals, accepts)
    t.feed(sorted(events, key=lambda e: e.ts))
    for aid, (st, rs, since) in (current or {}).items():
        t.seed_status(aid, st, rs, since)
    return t.aggregate(now, windows)
