"""The routing rule as a pure function: the reference model of ``route.lua``.

Given a snapshot of agents, queues and waiting items, `route` returns the
ordered list of offers the router should make. It does no I/O and keeps no
state, so it is tested with plain tables (``tests/unit/test_policy.py``) and
used to cross-check the Lua router on random scenarios
(``tests/integration/test_policy_vs_lua.py``). The Lua script is the one that
runs in production; it reaches the same decisions without scanning agents,
through the per-queue ready index (see ``docs/routing.md``).

The rule (issue 3):

* items are taken by queue priority (higher first), then item priority
  (higher first), then age (oldest first), then id;
* an agent may get an item when its status is routable, it has a live
  socket, it belongs to the item's queue, it has every required skill at or
  above its level, its free capacity covers the channel's weight, its count
  on that channel is under the channel's cap (0 = no cap), and it has not
  declined the item;
* among those, the queue's strategy picks: ``most_available`` the most free
  units, ``least_active`` the fewest items held, ``longest_idle`` the oldest
  ``idle_since`` among agents holding nothing, then among those holding
  work; ties go to the smallest agent id;
* the agent who last let the item's offer time out gets it again only when
  no other agent may take it;
* every decision holds the item's weight on the agent before the next one
  is made, exactly as the commit in Redis does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

STRATEGIES = ("most_available", "least_active", "longest_idle")
# longest_idle ranks agents holding work after idle ones (as reindex in _lib_agent.lua)
IDLE_BUSY = 10**15


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


@dataclass(frozen=True, slots=True)
class QueueState:
    name: str
    strategy: str = "most_available"
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ItemState:
    id: str
    queue: str
    channel: str
    weight: int
    # most items of this channel one agent may hold (0 = no cap)
    cap: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    created: int = 0
    declined_by: frozenset[str] = frozenset()
    # the agent whose offer of this item last timed out ("" for none)
    missed_by: str = ""


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
    queue: str


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


def eligible(agent: AgentState, item: ItemState, load: int | None = None, count: int | None = None) -> bool:
    """May `agent` be offered `item`? (`load`/`count` override the agent's own.)"""
    load = agent.load if load is None else load
    count = agent.by_channel.get(item.channel, 0) if count is None else count
    return (
        agent.routable
        and agent.connected
        and item.queue in agent.queues
        and agent.capacity - load >= item.weight
        and (item.cap == 0 or count < item.cap)
        and all(agent.skills.get(s, 0) >= lvl for s, lvl in item.skills.items())
        and agent.id not in item.declined_by
    )


def _rank(strategy: str, live: _Live) -> tuple[int, str]:
    if strategy == "least_active":
        return (live.items, live.agent.id)
    if strategy == "longest_idle":
        # an agent with work in hand is not idle: after everyone who is
        return (live.agent.idle_since + (IDLE_BUSY if live.items else 0), live.agent.id)
    if strategy == "most_available":
        return (-live.free, live.agent.id)
    raise ValueError(f"unknown routing strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})")


def item_order(queues: Mapping[str, QueueState], item: ItemState) -> tuple[int, int, int, str]:
    """Sort key of a waiting item: queue priority, item priority, age, id."""
    return (-queues[item.queue].priority, -item.priority, item.created, item.id)


def pick(strategy: str, item: ItemState, candidates: Iterable[_Live]) -> _Live | None:
    """The best eligible agent for `item` under `strategy`, or None."""
    fallback: _Live | None = None
    for live in sorted(candidates, key=lambda lv: _rank(strategy, lv)):
        if not eligible(live.agent, item, live.load, live.by_channel.get(item.channel, 0)):
            continue
        if live.agent.id == item.missed_by:
            # the agent who let this offer ring out is the last resort
            fallback = fallback or live
            continue
        return live
    return fallback


def route(snapshot: Snapshot, budget: int | None = None) -> list[Decision]:
    """The offers the router makes for `snapshot`, in the order it makes them.

    `budget` caps the number of decisions (as one ``route.lua`` call does).
    Items of unknown queues are ignored, as the Lua router never sees them.
    """
    queues = {q.name: q for q in snapshot.queues}
    for q in queues.values():
        if q.strategy not in STRATEGIES:
            raise ValueError(
                f"queue {q.name}: unknown routing strategy {q.strategy!r} "
                f"(expected one of {', '.join(STRATEGIES)})"
            )
    live = [_Live(a, a.load, a.items, dict(a.by_channel)) for a in snapshot.agents]
    members: dict[str, list[_Live]] = {q: [lv for lv in live if q in lv.agent.queues] for q in queues}
    items = sorted((i for i in snapshot.items if i.queue in queues), key=lambda i: item_order(queues, i))
    out: list[Decision] = []
    for item in items:
        if budget is not None and len(out) >= budget:
            break
        chosen = pick(queues[item.queue].strategy, item, members[item.queue])
        if chosen is None:
            continue
        chosen.load += item.weight
        chosen.items += 1
        chosen.by_channel[item.channel] = chosen.by_channel.get(item.channel, 0) + 1
        out.append(Decision(item.id, chosen.agent.id, item.queue))
    return out
