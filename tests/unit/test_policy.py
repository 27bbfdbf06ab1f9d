"""The routing rule as plain tables: presence.router.policy."""

from __future__ import annotations

import pytest

from presence.router.policy import (
    AgentState,
    Decision,
    ItemState,
    QueueState,
    Snapshot,
    eligible,
    route,
)

Q = frozenset({"support"})


def agent(aid: str, **kw: object) -> AgentState:
    kw.setdefault("capacity", 100)
    kw.setdefault("queues", Q)
    return AgentState(aid, **kw)  # type: ignore[arg-type]


def item(wid: str, **kw: object) -> ItemState:
    kw.setdefault("queue", "support")
    kw.setdefault("channel", "chat")
    kw.setdefault("weight", 25)
    return ItemState(wid, **kw)  # type: ignore[arg-type]


def decide(
    agents: list[AgentState],
    items: list[ItemState],
    strategy: str = "most_available",
    queues: list[QueueState] | None = None,
) -> list[tuple[str, str]]:
    snap = Snapshot.of(agents, queues or [QueueState("support", strategy)], items)
    return [(d.work_id, d.agent_id) for d in route(snap)]


# -- the users' example ----------------------------------------------------------


def test_room_for_three_cases_a_holds_three_b_two_next_goes_to_b() -> None:
    # capacity 6 units, a case weighs 2: room for 3 cases each
    a = agent("A", capacity=6, load=6, items=3, by_channel={"case": 3})
    b = agent("B", capacity=6, load=4, items=2, by_channel={"case": 2})
    new = item("w1", channel="case", weight=2)
    for strategy in ("most_available", "least_active"):
        assert decide([a, b], [new], strategy) == [("w1", "B")]


def test_agent_on_break_gets_nothing() -> None:
    brk = agent("A", routable=False)
    assert decide([brk], [item("w1")]) == []
    assert decide([brk, agent("B", load=75, items=3)], [item("w1")]) == [("w1", "B")]


# -- strategies ------------------------------------------------------------------


def test_most_available_prefers_most_free_units_then_id() -> None:
    agents = [agent("c", load=50), agent("b", load=25), agent("a", load=25)]
    assert decide(agents, [item("w1")]) == [("w1", "a")]
    # each decision holds capacity before the next is made
    got = decide(agents, [item(f"w{i}", created=i) for i in range(4)])
    assert got == [("w0", "a"), ("w1", "b"), ("w2", "a"), ("w3", "b")]


def test_least_active_prefers_fewest_items_not_most_free() -> None:
    # x holds one big item (free 50), y two small ones (free 80)
    x = agent("x", capacity=200, load=150, items=1)
    y = agent("y", capacity=100, load=20, items=2)
    assert decide([x, y], [item("w1", weight=10)], "least_active") == [("w1", "x")]
    assert decide([x, y], [item("w1", weight=10)], "most_available") == [("w1", "y")]
    z = agent("z", capacity=100, load=10, items=1)
    # x and z both hold one item: the smaller id wins
    assert decide([z, x, y], [item("w1", weight=10)], "least_active") == [("w1", "x")]


def test_longest_idle_prefers_oldest_idle_since() -> None:
    agents = [agent("a", idle_since=3000), agent("b", idle_since=1000), agent("c", idle_since=2000)]
    assert decide(agents, [item("w1")], "longest_idle") == [("w1", "b")]
    tie = [agent("b", idle_since=1000), agent("a", idle_since=1000)]
    assert decide(tie, [item("w1")], "longest_idle") == [("w1", "a")]


def test_longest_idle_ranks_agents_with_work_in_hand_last() -> None:
    busy = agent("a", idle_since=1000, load=25, items=1)
    idle = agent("b", idle_since=5000)
    assert decide([busy, idle], [item("w1")], "longest_idle") == [("w1", "b")]
    # the first decision makes b busy too: then the older idle_since wins again
    got = decide([busy, idle], [item("w1", created=1), item("w2", created=2)], "longest_idle")
    assert got == [("w1", "b"), ("w2", "a")]


def test_unknown_strategy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="round_robin"):
        decide([agent("a")], [item("w1")], "round_robin")


# -- eligibility -----------------------------------------------------------------


def test_skills_must_all_be_at_or_above_level() -> None:
    need = item("w1", skills={"english": 5, "billing": 3})
    assert not eligible(agent("a", skills={"english": 5}), need)
    assert not eligible(agent("a", skills={"english": 4, "billing": 9}), need)
    assert eligible(agent("a", skills={"english": 5, "billing": 3}), need)
    assert decide(
        [agent("a", skills={"english": 9}), agent("b", skills={"english": 5, "billing": 3})], [need]
    ) == [("w1", "b")]


def test_not_a_member_or_not_connected_or_declined_gets_nothing() -> None:
    assert decide([agent("a", queues=frozenset({"sales"}))], [item("w1")]) == []
    assert decide([agent("a", connected=False)], [item("w1")]) == []
    assert decide([agent("a")], [item("w1", declined_by=frozenset({"a"}))]) == []
    assert decide([agent("a"), agent("b", load=50)], [item("w1", declined_by=frozenset({"a"}))]) == [
        ("w1", "b")
    ]


def test_channel_cap_voice_one_at_a_time_but_email_still_fits() -> None:
    # capacity 200 so room is not what stops the second call: the cap is
    on_call = agent("a", capacity=200, load=100, items=1, by_channel={"voice": 1})
    voice = item("v2", channel="voice", weight=100, cap=1)
    email = item("e1", channel="email", weight=10, created=1)
    assert decide([on_call], [voice, email]) == [("e1", "a")]


def test_capacity_100_chat_weight_25_at_most_four_chats() -> None:
    chats = [item(f"c{i}", created=i) for i in range(6)]
    got = decide([agent("a")], chats)
    assert got == [("c0", "a"), ("c1", "a"), ("c2", "a"), ("c3", "a")]


def test_missed_by_is_the_last_resort() -> None:
    missed = item("w1", missed_by="a")
    assert decide([agent("a"), agent("b", load=50)], [missed]) == [("w1", "b")]
    # nobody else can take it: it still goes back to the agent who missed it
    assert decide([agent("a"), agent("b", routable=False)], [missed]) == [("w1", "a")]


# -- order -------------------------------------------------------------------------


def test_queue_priority_then_item_priority_then_age() -> None:
    queues = [QueueState("low", priority=1), QueueState("high", priority=9)]
    both = frozenset({"low", "high"})
    one = [agent("a", capacity=25, queues=both)]
    items = [
        item("old-low", queue="low", created=1, priority=50),
        item("new-high", queue="high", created=9),
    ]
    assert decide(one, items, queues=queues) == [("new-high", "a")]
    items = [item("p0", created=1), item("p5", created=9, priority=5)]
    assert decide([agent("a", capacity=25)], items) == [("p5", "a")]
    items = [item("young", created=9), item("old", created=1)]
    assert decide([agent("a", capacity=25)], items) == [("old", "a")]


def test_equal_queue_priorities_merge_by_item_priority_and_age() -> None:
    queues = [QueueState("a-queue", priority=5), QueueState("b-queue", priority=5)]
    both = frozenset({"a-queue", "b-queue"})
    items = [item("first", queue="a-queue", created=5), item("oldest", queue="b-queue", created=1)]
    assert decide([agent("x", capacity=25, queues=both)], items, queues=queues) == [("oldest", "x")]


def test_budget_caps_decisions_and_result_type() -> None:
    snap = Snapshot.of([agent("a")], [QueueState("support")], [item(f"w{i}", created=i) for i in range(3)])
    assert route(snap, budget=2) == [Decision("w0", "a", "support"), Decision("w1", "a", "support")]


def test_items_of_unknown_queues_are_ignored() -> None:
    assert decide([agent("a")], [item("w1", queue="gone")]) == []
