"""The routing rule as a pure function: the reference model of ``route.lua``.

Given a snapshot of agents, queues and waiting items, `route` returns the
ordered list of offers the router should make, and `route_call` the offers
one ``route.lua`` call makes, with the bounds of that call. Neither does I/O
or keeps state, so both are tested with plain tables
(``tests/unit/test_policy.py``) and `route_call` is compared with the Lua
router on generated centers (``tests/integration/test_policy_vs_lua.py``).
The Lua script is the one that runs in production; it reaches the same
decisions without scanning agents, through the per-queue ready index
(`ready_index`, see ``docs/routing.md``).

The rule:

* items are taken by queue priority (higher first), then item priority
  (higher first), then age (oldest first), then id; queues of equal
  priority are merged;
* an item that overflowed (`ItemState.overflow_to`) still waits in its own
  queue and is also *borrowed* by the other queue: it is a candidate there
  too, in that queue's place in the order, for that queue's agents, by that
  queue's strategy, and an offer made there names that queue. When both
  queues are served together, its own queue's agents are tried first;
* an agent may get an item when its status is routable, it has a live
  socket, it belongs to the queue serving the item, it has every required
  skill at or above its level, its free capacity covers the channel's
  weight, its count on that channel is under the channel's cap (0 = no
  cap), and it has not declined the item;
* among those, the queue's strategy picks: ``most_available`` the most free
  units, ``least_active`` the fewest items held, ``longest_idle`` the oldest
  ``idle_since`` among agents holding nothing, then among those holding
  work; ties go to the smallest agent id;
* the agent who last let the item's offer time out gets it again only when
  no other agent may take it;
* every decision holds the item's weight on the agent before the next one
  is made, exactly as the commit in Redis does.

One call is bounded (`route_call`): at most `budget` decisions; per item at
most `scan` candidates from the head of the ready index; per group of
queues of equal priority, the waiting items are read in windows (a queue's
window is ``min(budget left + 16, 8 x its ready agents + 16)`` items; a
queue's borrowed items are read once, up to ``budget left + 16``), the
windows of the group's queues are merged, and the next window of a queue
whose window was full is read while budget is left and fewer than
`EXAMINE_MAX` entries were examined in the group. Where a bound binds, a
call's decisions may differ from `route`'s; they are the same when no pick
was cut short by `scan`, the examine cap stopped no group, and no window
was full in a group that merges more than one source (one queue's waiting
items read window by window are still taken in order). `Outcome` counts
each of these, and a test asserts exactly this statement.

Transfers, pushes and re-opened cases place an item on a named agent
instead; `unfit` is the rule that refuses it, and `takes_back` the rule by
which a re-opened case goes back to its last owner.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

STRATEGIES = ("most_available", "least_active", "longest_idle")
# longest_idle ranks agents holding work after idle ones (as reindex in _lib_agent.lua)
IDLE_BUSY = 10**15

# The bounds of one route.lua call that are not its arguments, as the script
# has them. Waiting items read per queue beyond the budget left, and per ready agent:
WINDOW_SLACK = 16
WINDOW_PER_READY = 8
# Waiting and borrowed entries one call examines per group of equal-priority queues:
EXAMINE_MAX = 2048
# The call's arguments when the dispatcher makes it (Dispatcher batch and scan).
BUDGET = 256
SCAN = 512

_NO_LIMIT = sys.maxsize


@dataclass(frozen=True, slots=True)
class AgentState:
    id: str
    capacity: int
    load: int = 0
    items: int = 0
    by_channel: Mapping[str, int] = field(default_factory=dict)
    skills: Mapping[str, int] = field(default_factory=dict)
    queues: frozenset[str] = frozenset()
    routable: bool = True
    connected: bool = True
    idle_since: int = 0
    # the status's name, for `unfit`'s sentence only
    status: str = ""


@dataclass(frozen=True, slots=True)
class QueueState:
    name: str
    strategy: str = "most_available"
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ItemState:
    id: str
    # the queue it waits in
    queue: str
    channel: str
    weight: int
    # most items of this channel one agent may hold (0 = no cap)
    cap: int = 0
    # the required skills as route.lua reads them (relaxed, once relaxation applied)
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    created: int = 0
    declined_by: frozenset[str] = frozenset()
    # the agent whose offer of this item last timed out ("" for none)
    missed_by: str = ""
    # the queue that borrows it while it waits: it overflowed there and is in
    # that queue's borrowed set ("" for none)
    overflow_to: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    agents: tuple[AgentState, ...]
    queues: tuple[QueueState, ...]
    items: tuple[ItemState, ...]

    @classmethod
    def of(
        cls, agents: Iterable[AgentState], queues: Iterable[QueueState], items: Iterable[ItemState]
    ) -> Snapshot:
        return cls(tuple(agents), tuple(queues), tuple(items))


@dataclass(frozen=True, slots=True)
class Decision:
    work_id: str
    agent_id: str
    # the queue that served it: the item's own, or the one that borrowed it
    queue: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one ``route.lua`` call does (`route_call`), and which bounds bound."""

    decisions: tuple[Decision, ...]
    # the call's reply after the count: served queues that may have more now
    more: tuple[str, ...]
    # waiting windows and borrowed sets read, and entries examined, in all groups
    reads: int = 0
    examined: int = 0
    # most windows read from one queue in one group
    passes: int = 0
    # full windows (waiting or borrowed) read in a group that merges several sources
    merged_full: int = 0
    # groups stopped by EXAMINE_MAX while a window was full and budget was left
    examine_cut: int = 0
    # picks whose result the scan cap changed
    scan_cut: int = 0


@dataclass(slots=True)
class _Live:
    """An agent's mutable tallies while a batch of decisions is simulated."""

    agent: AgentState
    load: int
    items: int
    by_channel: dict[str, int]

    @property
    def free(self) -> int:
        return self.agent.capacity - self.load


def wait_score(item: ItemState) -> int:
    """The item's score in a waiting set (_lib.lua's wait_score): priority, then age.

    Exact for priorities -99..99 and times below 10^13 ms, as in Lua.
    """
    return (100 - item.priority) * 10**13 + item.created


def item_order(queues: Mapping[str, QueueState], item: ItemState) -> tuple[int, int, str]:
    """Sort key of a waiting item in its own queue: queue priority, wait score, id."""
    return (-queues[item.queue].priority, wait_score(item), item.id)


def index_score(strategy: str, agent: AgentState, load: int | None = None, items: int | None = None) -> int:
    """The agent's score in a ready index under `strategy` (lowest first, then id)."""
    load = agent.load if load is None else load
    items = agent.items if items is None else items
    if strategy == "least_active":
        return items
    if strategy == "longest_idle":
        # an agent with work in hand is not idle: after everyone who is
        return agent.idle_since + (IDLE_BUSY if items else 0)
    if strategy == "most_available":
        return -(agent.capacity - load)
    raise ValueError(f"unknown routing strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})")


def indexed(agent: AgentState, queue: str, load: int | None = None) -> bool:
    """Is `agent` in `queue`'s ready index: routable, signed in, a member, room left?"""
    load = agent.load if load is None else load
    return agent.routable and agent.connected and queue in agent.queues and agent.capacity > load


def ready_index(snapshot: Snapshot, queue: QueueState) -> list[tuple[str, int]]:
    """`queue`'s ready index as Redis holds it: (agent id, score), in order."""
    entries = [(a.id, index_score(queue.strategy, a)) for a in snapshot.agents if indexed(a, queue.name)]
    return sorted(entries, key=lambda e: (e[1], e[0]))


def eligible(
    agent: AgentState,
    item: ItemState,
    load: int | None = None,
    count: int | None = None,
    *,
    queue: str | None = None,
) -> bool:
    """May `agent` be offered `item` by `queue` (default: the item's own)?

    `load`/`count` override the agent's own tallies.
    """
    load = agent.load if load is None else load
    count = agent.by_channel.get(item.channel, 0) if count is None else count
    return (
        agent.routable
        and agent.connected
        and (queue or item.queue) in agent.queues
        and agent.capacity - load >= item.weight
        and (item.cap == 0 or count < item.cap)
        and all(agent.skills.get(s, 0) >= lvl for s, lvl in item.skills.items())
        and agent.id not in item.declined_by
    )


def unfit(agent: AgentState, channel: str, weight: int, cap: int, *, routable: bool) -> str | None:
    """Why `agent` cannot be handed an item of `channel` now, or None.

    The rule of a transfer to a colleague (``routable``: the colleague must
    also be in a routable status), a supervisor's push or reassign, and a
    re-opened case going back to its last owner (_lib.lua's ``unfit``, the
    same sentences): signed in, room for `weight`, under the channel's `cap`.
    Skills, membership and declines are not part of it.
    """
    if not agent.connected:
        return f"agent {agent.id} is not signed in"
    if routable and not agent.routable:
        return f"agent {agent.id} is not available ({agent.status})"
    free = agent.capacity - agent.load
    if free < weight:
        return f"agent {agent.id} has {free} units free, the item needs {weight}"
    held = agent.by_channel.get(channel, 0)
    if cap > 0 and held >= cap:
        return f"agent {agent.id} already holds {held} {channel} items (cap {cap})"
    return None


def takes_back(agent: AgentState, queue: str, channel: str, weight: int, cap: int) -> bool:
    """Does a re-opened case go straight back to its last owner `agent`?

    Only when the owner can take it now: in the queue's ready index and not
    `unfit` (any routable status will do; skills are not asked again).
    Otherwise it waits in `queue` like new work.
    """
    return indexed(agent, queue) and unfit(agent, channel, weight, cap, routable=False) is None


class _Call:
    """The state of one simulated call: agents' tallies and the waiting sets."""

    def __init__(self, snapshot: Snapshot, scan: int) -> None:
        self.queues = {q.name: q for q in snapshot.queues}
        for q in self.queues.values():
            if q.strategy not in STRATEGIES:
                raise ValueError(
                    f"queue {q.name}: unknown routing strategy {q.strategy!r} "
                    f"(expected one of {', '.join(STRATEGIES)})"
                )
        self.scan = scan
        self.scan_cut = 0
        live = [_Live(a, a.load, a.items, dict(a.by_channel)) for a in snapshot.agents]
        self.members = {q: [lv for lv in live if q in lv.agent.queues] for q in self.queues}
        order = sorted(snapshot.items, key=lambda i: (wait_score(i), i.id))
        self.waiting: dict[str, list[ItemState]] = {q: [] for q in self.queues}
        self.borrowed: dict[str, list[ItemState]] = {q: [] for q in self.queues}
        for item in order:
            if item.queue in self.waiting:
                self.waiting[item.queue].append(item)
            if item.overflow_to in self.borrowed and item.overflow_to != item.queue:
                self.borrowed[item.overflow_to].append(item)

    def index(self, q: str) -> list[_Live]:
        strategy = self.queues[q].strategy
        ready = [lv for lv in self.members[q] if indexed(lv.agent, q, lv.load)]
        return sorted(ready, key=lambda lv: (index_score(strategy, lv.agent, lv.load, lv.items), lv.agent.id))

    @staticmethod
    def _first(q: str, item: ItemState, candidates: Iterable[_Live]) -> _Live | None:
        fallback: _Live | None = None
        for lv in candidates:
            if not eligible(lv.agent, item, lv.load, lv.by_channel.get(item.channel, 0), queue=q):
                continue
            if lv.agent.id == item.missed_by:
                # the agent who let this offer ring out is the last resort
                fallback = fallback or lv
                continue
            return lv
        return fallback

    def pick(self, q: str, item: ItemState) -> _Live | None:
        index = self.index(q)
        chosen = self._first(q, item, index[: self.scan])
        if len(index) > self.scan and self._first(q, item, index) is not chosen:
            self.scan_cut += 1
        return chosen

    def commit(self, item: ItemState, lv: _Live) -> None:
        lv.load += item.weight
        lv.items += 1
        lv.by_channel[item.channel] = lv.by_channel.get(item.channel, 0) + 1
        # it leaves its own waiting set and the borrowing queue's set at once
        for sets in (self.waiting.get(item.queue), self.borrowed.get(item.overflow_to)):
            if sets is not None and item in sets:
                sets.remove(item)


def _simulate(
    snapshot: Snapshot, names: Sequence[str] | None, budget: int | None, scan: int | None, bounded: bool
) -> Outcome:
    call = _Call(snapshot, _NO_LIMIT if scan is None else scan)
    known = [n for n in dict.fromkeys(names if names is not None else call.queues) if n in call.queues]
    order = sorted(known, key=lambda n: (-call.queues[n].priority, n))
    left = _NO_LIMIT if budget is None else budget
    decisions: list[Decision] = []
    more: list[str] = []
    reads = examined_all = passes_max = merged_full = examine_cut = 0
    g = 0
    while g < len(order):
        prio = call.queues[order[g]].priority
        group = [n for n in order[g:] if call.queues[n].priority == prio]
        g += len(group)
        if left <= 0:
            more.extend(group)
            continue
        window = left + WINDOW_SLACK if bounded else _NO_LIMIT
        skip = dict.fromkeys(group, 0)
        full = dict.fromkeys(group, False)
        wins: dict[str, int] = {}
        here: dict[str, int] = {}
        served: list[str] = []
        examined, passes, first, again = 0, 0, True, True
        while again:
            again = False
            passes += 1
            # (wait score, item id, borrowed, serving queue, item)
            batch: list[tuple[int, str, bool, str, ItemState]] = []
            got: dict[str, int] = {}
            sources, fulls = 0, 0
            for q in group:
                ready_n = len(call.index(q))
                if not (ready_n > 0 and (first or full[q])):
                    full[q] = False
                    continue
                if q not in wins:
                    wins[q] = min(window, WINDOW_PER_READY * ready_n + WINDOW_SLACK) if bounded else _NO_LIMIT
                page = call.waiting[q][skip[q] : skip[q] + wins[q]]
                batch.extend((wait_score(i), i.id, False, q, i) for i in page)
                got[q] = len(page)
                full[q] = len(page) == wins[q]
                fulls += full[q]
                sources += 1
                reads += 1
                if first:
                    here[q] = 0
                    served.append(q)
                    if call.borrowed[q]:
                        lent = call.borrowed[q][:window]
                        batch.extend((wait_score(i), i.id, True, q, i) for i in lent)
                        fulls += len(lent) == window
                        sources += 1
                        reads += 1
            if sources > 1:
                # merged by score, then id; an item in the batch twice (its own
                # queue and a borrowing one) is tried by its own queue first
                batch.sort(key=lambda e: (e[0], e[1], e[2]))
                merged_full += fulls
            taken: set[str] = set()
            for _, wid, _, q, item in batch:
                if left <= 0:
                    break
                if wid in taken:
                    continue
                chosen = call.pick(q, item)
                if chosen is None:
                    continue
                taken.add(wid)
                call.commit(item, chosen)
                decisions.append(Decision(wid, chosen.agent.id, q))
                left -= 1
                here[q] += 1
            # an offered item left its own waiting set, whichever queue took it
            page_here = dict.fromkeys(group, 0)
            for _, wid, lent_item, q, _ in batch:
                if wid in taken and not lent_item:
                    page_here[q] += 1
            examined += len(batch)
            first = False
            for q, n in got.items():
                skip[q] += n - page_here[q]
                if full[q] and left > 0 and (examined < EXAMINE_MAX or not bounded):
                    again = True
            if not again and bounded and left > 0 and any(full[q] for q in got):
                examine_cut += 1
        for q in served:
            if left <= 0 or (here[q] > 0 and full[q]):
                more.append(q)
        examined_all += examined
        passes_max = max(passes_max, passes)
    return Outcome(
        decisions=tuple(decisions),
        more=tuple(more),
        reads=reads,
        examined=examined_all,
        passes=passes_max,
        merged_full=merged_full,
        examine_cut=examine_cut,
        scan_cut=call.scan_cut,
    )


def route(
    snapshot: Snapshot, budget: int | None = None, queues: Sequence[str] | None = None
) -> list[Decision]:
    """The offers the router makes for `snapshot`, in the order it makes them.

    The rule without a call's windows and scan cap; `budget` caps the number
    of decisions. `queues` names the queues served (default: all of the
    snapshot's); items waiting in other queues are candidates only where a
    served queue borrows them, as the Lua router never sees the rest.
    """
    return list(_simulate(snapshot, queues, budget, None, bounded=False).decisions)


def route_call(
    snapshot: Snapshot, queues: Sequence[str] | None = None, budget: int = BUDGET, scan: int = SCAN
) -> Outcome:
    """Exactly what one ``route.lua`` call serving `queues` does (its arguments:
    `budget` decisions at most, `scan` candidates per item).

    `queues` in any order, repeats and unknown names ignored, as the script does.
    """
    return _simulate(snapshot, queues, budget, scan, bounded=True)
