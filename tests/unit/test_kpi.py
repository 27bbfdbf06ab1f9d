"""The KPI engine on a scripted hour of events with known times.

Every expected figure below is worked out by hand in the comments, from the
definitions in docs/kpis.md; the engine must reproduce each one exactly.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from fractions import Fraction

import pytest

from presence.kpi.aggregates import Agg, apply_fact
from presence.kpi.events import Event, parse_event, parse_events, parse_status
from presence.kpi.facts import F_WORK, Fact, FactRow, Settings
from presence.kpi.incremental import IncrementalTracker, pack_sums, unpack_sums
from presence.kpi.live import fold_horizon, fold_point, window_start
from presence.kpi.tracker import Tracker, compute

T0 = 1_700_000_000_000  # window start (ms)
NOW = T0 + 3600_000


def ms(s: float) -> int:
    return T0 + int(s * 1000)


def ev(
    kind: str, s: float, work: str = "", agent: str = "", queue: str = "", channel: str = "", **x: str
) -> Event:
    return Event(kind, ms(s), work, agent, queue, channel, x)


def st(s: float, agent: str, status: str, reason: str = "", prev: str = "", prev_since: float = 0) -> Event:
    return Event(
        "status",
        ms(s),
        agent=agent,
        extra={"status": status, "reason": reason, "prev": prev, "prev_since": str(ms(prev_since))},
    )


SETTINGS = Settings(
    thresholds={"support": 20, "billing": 30},
    weights={"chat": 25, "voice": 100},
    routable=frozenset({"Available"}),
    offline="Offline",
    capacities={"alice": 100, "bob": 100},
    members={"support": ["alice", "bob"], "billing": ["alice"]},
)

EVENTS = [
    # alice: Offline -> Available at 0, Break/Coffee 1000-1300
    # bob: Away -> Available at 100, Lunch at 3200
    st(0, "alice", "Available", prev="Offline", prev_since=-1000),
    st(100, "bob", "Available", prev="Away", prev_since=-50),
    st(1000, "alice", "Break", "Coffee", prev="Available", prev_since=0),
    st(1300, "alice", "Available", prev="Break", prev_since=1000),
    st(3200, "bob", "Lunch", prev="Available", prev_since=100),
    # w1 support chat: waits 5 s (in SL), handled 235 s by alice incl. wrap-up
    ev("create", 10, "w1", queue="support", channel="chat"),
    ev("offer", 12, "w1", "alice", "support", "chat"),
    ev("accept", 15, "w1", "alice", "support", "chat"),
    ev("wrapup", 200, "w1", "alice", "support", "chat"),
    ev("case_status", 210, "w1", status="in_progress"),  # unknown to the engine: ignored
    ev("complete", 250, "w1", "alice", "support", "chat", disposition="ok"),
    # w2 support voice: offered to bob, who declines; answered by bob at 130 (waited 110 s), handled 300 s
    ev("create", 20, "w2", queue="support", channel="voice"),
    ev("offer", 101, "w2", "bob", "support", "voice"),
    ev("decline", 105, "w2", "bob", "support", "voice", reason="declined"),
    ev("offer", 125, "w2", "bob", "support", "voice"),
    ev("accept", 130, "w2", "bob", "support", "voice"),
    ev("complete", 430, "w2", "bob", "support", "voice"),
    # w3 support chat abandoned after 10 s (within 20 s); w4 billing chat abandoned after 60 s (> 30 s)
    ev("create", 2000, "w3", queue="support", channel="chat"),
    ev("abandon", 2010, "w3", queue="support", channel="chat", reason="hangup"),
    ev("create", 2500, "w4", queue="billing", channel="chat"),
    ev("abandon", 2560, "w4", queue="billing", channel="chat"),
    # w5 billing chat: answered by alice after exactly 30 s (the threshold counts as within),
    # transferred to bob at 3000, completed by bob at 3100: handle 270 s, not first-contact
    ev("create", 2800, "w5", queue="billing", channel="chat"),
    ev("accept", 2830, "w5", "alice", "billing", "chat"),
    ev("transfer", 3000, "w5", "alice", "billing", "chat", to="bob"),
    ev("accept", 3010, "w5", "bob", "billing", "chat"),
    ev("complete", 3100, "w5", "bob", "billing", "chat"),
    # w7 support voice answered by alice after exactly 20 s, still in hand at NOW
    ev("create", 3300, "w7", queue="support", channel="voice"),
    ev("accept", 3320, "w7", "alice", "support", "voice", via="auto"),
    # w6 support chat still waiting at NOW (100 s)
    ev("create", 3500, "w6", queue="support", channel="chat"),
    ev("frobnicate", 3550),  # unknown event without an item
]

WINDOWS = {"today": T0 - 7200_000, "60m": T0, "30m": T0 + 1800_000, "15m": T0 + 2700_000}


@pytest.fixture(scope="module")
def result() -> dict[str, dict[str, object]]:
    out = compute(EVENTS, NOW, WINDOWS, SETTINGS)
    return {"groups": out}  # type: ignore[dict-item]


def k(result: dict[str, object], window: str, scope: str = "center", name: str = "") -> dict[str, object]:
    g = result["groups"][window]  # type: ignore[index]
    agg = g.center if scope == "center" else getattr(g, scope)[name]
    return agg.kpis()  # type: ignore[no-any-return]


def test_center_last_hour(result: dict[str, object]) -> None:
    c = k(result, "60m")
    assert (c["offered"], c["answered"], c["abandoned"]) == (7, 4, 2)
    # answered within SL: w1 (5 s), w5 (30 s = threshold), w7 (20 s = threshold); w2 waited 110 s
    assert (c["answered_in_sl"], c["abandoned_in_sl"]) == (3, 1)
    # SL = answered in SL / (answered + abandoned - abandoned within threshold) = 3 / (4 + 2 - 1)
    assert c["service_level"] == 3 / 5
    assert c["asa"] == (5 + 110 + 30 + 20) / 4 == 41.25
    assert c["max_answer_wait"] == 110
    assert c["handled"] == 3
    assert c["aht"] == (235 + 300 + 270) / 3
    assert c["abandonment_rate"] == 2 / 6
    assert c["fcr"] == 2 / 3
    assert c["transfers"] == 1
    # handling: alice 235 + 170 + 280 = 685 s, bob 300 + 90 = 390 s;
    # staffed (available or handling): alice 1000 + 2300 = 3300 s, bob 3100 s
    assert c["handle_time"] == 685 + 390
    assert Fraction(c["occupancy"]).limit_denominator(10**6) == Fraction(1075, 6400)  # type: ignore[arg-type]
    # load: alice 25*235 + 25*170 + 100*280 = 38125; bob 100*300 + 25*90 = 32250 (unit-seconds)
    assert c["utilisation"] == pytest.approx((38125 + 32250) / ((3300 + 3100) * 100), abs=1e-15)
    assert c["logged_in_time"] == 3600 + 3600


def test_today_equals_hour_when_nothing_earlier(result: dict[str, object]) -> None:
    today, hour = k(result, "today"), k(result, "60m")
    for key in ("offered", "answered", "abandoned", "service_level", "asa", "aht", "fcr"):
        assert today[key] == hour[key], key
    # today started 2 h earlier: alice was Offline (not logged in) and bob Away for part of it
    g = result["groups"]["today"]  # type: ignore[index]
    assert g.agents["alice"].status_ms["Offline"] == 1000_000
    assert g.agents["bob"].status_ms["Away"] == 150_000
    assert g.agents["alice"].logged_in_ms == 3600_000
    assert g.agents["bob"].logged_in_ms == (150 + 3100 + 400) * 1000


def test_sliding_windows(result: dict[str, object]) -> None:
    c15 = k(result, "15m")
    # [2700, 3600]: w5, w7, w6 arrive; w5 and w7 answered (both in SL); no abandon; w5 handled (270 s)
    assert (c15["offered"], c15["answered"], c15["abandoned"]) == (3, 2, 0)
    assert c15["service_level"] == 1.0
    assert c15["asa"] == 25.0
    assert c15["aht"] == 270.0
    assert c15["fcr"] == 0.0
    assert c15["abandonment_rate"] == 0.0
    c30 = k(result, "30m")
    # [1800, 3600]: arrivals w3..w7; answered w5, w7; abandoned w3 (in 10 s) and w4 (60 s)
    assert (c30["offered"], c30["answered"], c30["abandoned"]) == (5, 2, 2)
    assert c30["service_level"] == 2 / 3
    assert c30["abandonment_rate"] == 0.5
    a15 = k(result, "15m", "agents", "alice")
    # alice in [2700, 3600]: Available 900 s, handling 170 + 280 = 450 s
    assert a15["available_time"] == 900
    assert a15["handle_time"] == 450
    assert a15["occupancy"] == 0.5


def test_per_queue_and_channel(result: dict[str, object]) -> None:
    s = k(result, "60m", "queues", "support")
    # support: answered w1 (in), w2 (out), w7 (in); abandoned w3 within threshold
    assert (s["offered"], s["answered"], s["abandoned"]) == (5, 3, 1)
    assert s["service_level"] == 2 / 3
    assert s["asa"] == (5 + 110 + 20) / 3
    assert s["aht"] == (235 + 300) / 2
    b = k(result, "60m", "queues", "billing")
    # billing: w5 answered at exactly 30 s (in), w4 abandoned after 60 s (out)
    assert (b["offered"], b["answered"], b["abandoned"]) == (2, 1, 1)
    assert b["service_level"] == 0.5
    assert b["fcr"] == 0.0
    # billing's only member is alice: its occupancy is hers
    assert b["occupancy"] == 685 / 3300
    chat = k(result, "60m", "channels", "chat")
    assert (chat["offered"], chat["answered"], chat["abandoned"], chat["handled"]) == (5, 2, 2, 2)
    voice = k(result, "60m", "channels", "voice")
    assert (voice["offered"], voice["answered"], voice["handled"]) == (2, 2, 1)


def test_agents(result: dict[str, object]) -> None:
    g = result["groups"]["60m"]  # type: ignore[index]
    alice, bob = g.agents["alice"], g.agents["bob"]
    assert alice.status_ms == {"Available": 3300_000, "Break": 300_000, "Break/Coffee": 300_000}
    assert bob.status_ms == {"Away": 100_000, "Available": 3100_000, "Lunch": 400_000}
    assert (alice.answered, alice.handled, bob.answered, bob.handled) == (3, 1, 1, 2)
    assert alice.kpis()["occupancy"] == 685 / 3300
    assert bob.kpis()["occupancy"] == 390 / 3100
    assert alice.load_ms == (25 * 235 + 25 * 170 + 100 * 280) * 1000
    assert alice.capacity_ms == 100 * 3300_000
    assert bob.kpis()["aht"] == (300 + 270) / 2


def test_waiting_and_incremental_feed() -> None:
    t = Tracker(SETTINGS)
    # fed one by one, in two halves: same figures as the batch
    half = len(EVENTS) // 2
    t.feed(EVENTS[:half])
    t.feed(EVENTS[half:])
    assert t.waiting(NOW) == {"support": (1, 100_000)}
    out = t.aggregate(NOW, {"60m": T0})
    assert out["60m"].center.kpis() == compute(EVENTS, NOW, {"60m": T0}, SETTINGS)["60m"].center.kpis()


def test_reopen_spoils_first_contact_afterwards() -> None:
    events = [
        ev("create", 0, "c1", queue="support", channel="email"),
        ev("accept", 10, "c1", "alice", "support", "email"),
        ev("complete", 100, "c1", "alice", "support", "email"),
    ]
    assert compute(events, NOW, {"h": T0}, SETTINGS)["h"].center.kpis()["fcr"] == 1.0
    # the case is closed, then re-opened by its customer: it routes again
    closed = [*events, ev("case.status", 400, "c1", status="In progress", prev="Closed")]
    assert compute(closed, NOW, {"h": T0}, SETTINGS)["h"].center.kpis()["fcr"] == 0.0
    events += [
        ev("reopen", 500, "c1", queue="support", channel="email", reason="reply"),
        ev("accept", 600, "c1", "bob", "support", "email"),
        ev("complete", 660, "c1", "bob", "support", "email"),
    ]
    out = compute(events, NOW, {"h": T0}, SETTINGS)["h"].center
    # each routing is a contact: offered, answered and handled twice, timed per routing
    assert (out.offered, out.answered, out.handled) == (2, 2, 2)
    assert (out.wait_ms, out.handle_ms, out.resolved_first) == (110_000, 150_000, 0)


def test_transfer_names() -> None:
    for kind, extra in (("transfer.agent", {}), ("escalate", {}), ("call.control", {"action": "transfer"})):
        events = [
            ev("create", 0, "x", queue="support", channel="voice"),
            ev("accept", 5, "x", "alice", "support", "voice"),
            ev(kind, 50, "x", "alice", "support", "voice", **extra),
            ev("accept", 60, "x", "bob", "support", "voice"),
            ev("complete", 90, "x", "bob", "support", "voice"),
        ]
        g = compute(events, NOW, {"h": T0}, SETTINGS)["h"]
        assert (g.center.transfers, g.center.resolved_first, g.center.handle_ms) == (1, 0, 85_000), kind
        assert (g.agents["alice"].handling_ms, g.agents["bob"].handling_ms) == (45_000, 30_000)


def test_arrivals_before_lookback_and_current_status() -> None:
    events = [ev("accept", 40, "old", "alice", "support", "chat")]
    out = compute(
        events,
        NOW,
        {"h": T0},
        SETTINGS,
        arrivals={"old": ms(-100)},
        current={"alice": ("Available", "", ms(-500)), "bob": ("Offline", "", ms(-900))},
    )["h"]
    assert out.center.answered == 1
    assert out.center.wait_ms == 140_000
    assert out.center.answered_in_sl == 0
    assert out.agents["alice"].available_ms == 3600_000
    assert out.agents["bob"].logged_in_ms == 0
    assert out.agents["bob"].status_ms == {"Offline": 3600_000}


def test_empty_window_has_no_ratios() -> None:
    c = compute([], NOW, {"h": T0}, SETTINGS)["h"].center.kpis()
    assert c["offered"] == 0
    assert c["service_level"] is None and c["asa"] is None and c["aht"] is None and c["occupancy"] is None


def test_stream_entries_with_short_names_read_as_those_written_before() -> None:
    # the scripts write one-letter names and no priority of 0 since aof18
    # (`xadd` in _lib_core.lua); an entry of the release before has the long
    # ones and `priority 0`: both decode the same
    short = {
        b"ts": b"10",
        b"ev": b"create+accept",
        b"q": b"q1",
        b"c": b"chat",
        b"w": b"w1",
        b"v": b"auto",
        b"a": b"a0",
    }
    long = {
        b"ts": b"10",
        b"ev": b"create+accept",
        b"queue": b"q1",
        b"channel": b"chat",
        b"work": b"w1",
        b"priority": b"0",
        b"via": b"auto",
        b"agent": b"a0",
    }
    assert (
        parse_events(short)
        == parse_events(long)
        == [
            Event("create", 10, "w1", "", "q1", "chat", {"priority": "0"}),
            Event("accept", 10, "w1", "a0", "q1", "chat", {"via": "auto"}),
        ]
    )
    done = {
        b"ts": b"12",
        b"ev": b"complete",
        b"b": b"agent",
        b"d": b"done",
        b"c": b"chat",
        b"w": b"w1",
        b"a": b"a0",
        b"q": b"q1",
    }
    assert parse_event(done) == Event(
        "complete", 12, "w1", "a0", "q1", "chat", {"by": "agent", "disposition": "done"}
    )


def test_parse_and_agg_roundtrip() -> None:
    e = parse_event(
        {b"ev": b"accept", b"ts": b"1700000000123", b"work": b"w", b"agent": b"a", b"via": b"auto"}
    )
    assert e == Event("accept", 1700000000123, "w", "a", "", "", {"via": "auto"})
    assert parse_event({b"ts": b"1"}) is None
    assert parse_event({b"ev": b"x", b"ts": b"soon"}) is None
    s = parse_status({b"agent": b"a", b"status": b"Break", b"reason": "会議".encode(), b"ts": b"5"})
    assert s is not None and s.ev == "status" and s.get("reason") == "会議"
    g = compute(EVENTS, NOW, {"h": T0}, SETTINGS)["h"]
    total = Agg()
    total.add(Agg.from_dict(g.center.to_dict()))
    total.add(Agg.from_dict(g.center.to_dict()))
    assert total.offered == 14 and total.max_wait_ms == 110_000
    assert total.status_ms["Available"] == 2 * g.center.status_ms["Available"]


def test_kpis_message_shape_and_staffing() -> None:
    from presence.kpi.live import build

    groups = compute(
        EVENTS, NOW, {"today": T0, "15m": NOW - 900_000, "30m": NOW - 1800_000, "60m": T0}, SETTINGS
    )
    queues = [
        {"name": "support", "title": "Support", "service_level_seconds": 20, "service_level_target": 0.8},
        {"name": "billing", "title": "Billing", "service_level_seconds": 30, "service_level_target": 0.8},
    ]
    stats = [
        {"name": "support", "waiting": 1, "oldest_created": ms(3500), "logged_in": 2, "routable": 1},
        {"name": "billing", "waiting": 0, "oldest_created": 0, "logged_in": 1, "routable": 1},
    ]
    views = [
        {"agent_id": "alice", "name": "Alice", "status": "Available", "reason": "", "connected": True},
        {"agent_id": "bob", "name": "Bob", "status": "Lunch", "reason": "", "connected": True},
    ]
    msg = build(groups, queues, stats, views, NOW, frozenset({"Available"}))
    assert msg["type"] == "kpis" and msg["windows"] == ["today", "15m", "30m", "60m"]
    c = msg["center"]
    assert (c["waiting"], c["longest_wait"], c["logged_in"], c["routable"]) == (1, 100.0, 2, 1)
    assert c["60m"]["service_level"] == 0.6 and c["today"]["offered"] == 7
    sup = msg["queues"][0]
    assert sup["name"] == "support" and sup["staffed"] == 2
    # support, last hour: 5 arrivals, AHT (235 + 300) / 2 = 267.5 s -> A = 5/3600 * 267.5
    st = sup["staffing"]
    assert st["arrival_rate"] == 5 and st["aht"] == 267.5
    assert st["traffic"] == pytest.approx(5 / 3600 * 267.5)
    assert sup["staffing_needed"] == st["needed"] == 2  # one agent at A = 0.37 reaches only 75 %
    assert c["staffing_needed"] == sup["staffing_needed"] + msg["queues"][1]["staffing_needed"]
    # a queue with arrivals and no AHT yet has no estimate: nor has the center
    # (the others' sum would read as the whole need; the wallboard showed 0
    # for the center beside a dash on every queue)
    for w in groups.values():
        w.queues["sales"] = Agg(offered=1)
    queues.append({"name": "sales", "title": "Sales", "service_level_seconds": 20})
    msg = build(groups, queues, stats, views, NOW, frozenset({"Available"}))
    assert msg["queues"][2]["staffing_needed"] is None
    assert msg["center"]["staffing_needed"] is None
    assert {ch["name"] for ch in msg["channels"]} == {"chat", "voice"}
    alice = msg["agents"][0]
    assert alice["today"]["time_in_status"] == {"Available": 3300.0, "Break": 300.0}
    assert alice["today"]["time_in_reason"] == {"Break/Coffee": 300.0}


def test_aggregate_in_steps_gives_the_same_figures() -> None:
    t = Tracker(SETTINGS)
    t.feed(sorted(EVENTS, key=lambda e: e.ts))
    wins = {"today": T0 - 600_000, "60m": T0, "15m": NOW - 900_000}
    steps = t.aggregate_steps(NOW, wins, chunk=3)
    pauses = 0
    while True:
        try:
            next(steps)
            pauses += 1
        except StopIteration as done:
            stepped = done.value
            break
    assert pauses > 3  # it does hand the loop back, several times
    whole = t.aggregate(NOW, wins)
    for w in wins:
        assert stepped[w] == whole[w]


def _random_day(seed: int, long: bool = False) -> list[list[Event]]:
    """Batches of random routing and status events, some out of time order.

    `long`: hours of them, with quiet spells, items reused for hours (held,
    transferred, re-opened and re-judged long after they were folded),
    items from before the day and case status changes.
    """
    import random

    rnd = random.Random(seed)
    agents, statuses = ["a1", "a2", "a3", "a4"] + ["a5"] * long, ["Available", "Break", "Offline", "Lunch"]
    kinds = ["create", "accept", "accept", "complete", "abandon", "transfer", "reopen"]
    kinds += ["offer", "case.status"] * long
    t, n, batches = T0, 0, []
    for _ in range(rnd.randint(30, 60) if long else rnd.randint(1, 8)):
        batch = []
        for _ in range(rnd.randint(0, 30 if long else 25)):
            t += rnd.randint(0, 40_000 if long else 90_000)
            # now and then a late one (long: within the live task's fold lag)
            late = [0, 0, 0, 0, 0, 30_000, 80_000] if long else [0, 0, 0, 0, 120_000]
            ts = t - rnd.choice(late)
            a = rnd.choice(agents)
            r = rnd.random()
            if r < (0.25 if long else 0.35):
                # long: the status left began within the fold lag (earlier, a
                # first change seen would ask for a rebuild)
                since = str(ts - rnd.randint(0, 80_000 if long else 900_000))
                extra = {"status": rnd.choice(statuses), "reason": rnd.choice(["", "", "Coffee"]),
                         "prev": rnd.choice(["", "Break"]), "prev_since": since}  # fmt: skip
                batch.append(Event("status", ts, agent=a, extra=extra))
                continue
            n += 1 if r < (0.45 if long else 0.5) else 0
            pick = rnd.random() if long else 1.0
            if pick < 0.05:
                w = f"old{rnd.randint(1, 4)}"  # arrived (and some accepted) before the day
            elif pick < 0.12:
                w = f"w{rnd.randint(1, max(1, n))}"  # one from hours ago
            else:
                w = f"w{rnd.randint(max(1, n - 3), max(1, n))}"
            kind = rnd.choice(kinds)
            if long and kind == "create" and rnd.random() < 0.2:
                # recorded minutes after its time, before the fold point: an
                # arrival touches no agent, so it is counted in its bucket
                ts -= rnd.choice([180_000, 420_000, 3000_000])
            x = {"prev": "Closed"} if kind == "case.status" and rnd.random() < 0.5 else {}
            ch = rnd.choice(["chat", "voice", "email"])
            batch.append(Event(kind, ts, w, a, rnd.choice(["support", "billing"]), ch, x))
        if long:
            t += rnd.randint(0, 600_000)  # quiet spells: hours pass in a day
        batches.append(batch)
    return batches


@pytest.mark.parametrize("seed", range(150))
def test_incremental_agent_time_equals_span_sums(seed: int) -> None:
    settings = replace(SETTINGS, capacities={"a1": 100, "a3": 40}, members={"support": ["a1", "a2"]})
    batches = _random_day(seed)
    inc, full = IncrementalTracker(settings), Tracker(settings)
    floor = 0  # as live: no window starts before what was pruned
    for i, batch in enumerate(batches):
        batch.sort(key=lambda e: e.ts)
        for t in (inc, full):
            t.feed(batch)
            if i == 0:
                t.seed_status("a4", "Available", "", T0 - 50_000)
        now = max([e.ts for b in batches[: i + 1] for e in b] + [T0]) + 30_000
        wins = {"today": T0 - 100_000, "60m": now - 3600_000, "15m": now - 900_000, "1m": now - 60_000}
        if i == 3:
            floor = now - 3600_000
            for t in (inc, full):
                t.prune(floor - 60_000)
        wins = {k: max(v, floor) for k, v in wins.items()}
        if i == 2:  # the routable statuses changed (a settings refresh)
            inc.settings = full.settings = replace(settings, routable=frozenset({"Available", "Lunch"}))
        got, want = inc.aggregate(now, wins), full.aggregate(now, wins)
        assert got == want
        # the live task asks for agents' sums in some windows only: the rest is whole
        part = inc.aggregate(now, wins, agents_for={"today"})
        for w in wins:
            assert (part[w].center, part[w].queues, part[w].channels) == (
                want[w].center, want[w].queues, want[w].channels)  # fmt: skip
            assert part[w].agents == (want[w].agents if w == "today" else {})


@pytest.mark.parametrize("cls", [Tracker, IncrementalTracker])
def test_accept_before_the_events_keeps_the_handle_time(cls: type[Tracker]) -> None:
    # "old" was accepted before the first event fed (its accept is not among
    # them): its handle time runs from the item hash's accepted_at, as
    # history.item_times reads it, not from nothing
    t = cls(SETTINGS, arrivals={"old": ms(-300)}, accepts={"old": ms(-100)})
    t.feed([ev("complete", 40, "old", "alice", "support", "chat")])
    c = t.aggregate(NOW, {"h": T0})["h"].center
    assert (c.handled, c.handle_ms) == (1, 140_000)
    assert c.kpis()["aht"] == 140.0


@pytest.mark.parametrize("cls", [Tracker, IncrementalTracker])
def test_arrival_learnt_after_the_item_was_seen_keeps_the_wait(cls: type[Tracker]) -> None:
    # the live task feeds each second's events: "old" (arrived before the
    # events began) is offered in one batch and answered in a later one,
    # its arrival read from its hash in between
    t = cls(SETTINGS)
    t.feed([ev("offer", 30, "old", "alice", "support", "chat")])
    t.arrivals["old"] = ms(-100)
    t.feed([ev("accept", 40, "old", "alice", "support", "chat")])
    c = t.aggregate(NOW, {"h": T0})["h"].center
    assert (c.answered, c.wait_ms, c.answered_in_sl) == (1, 140_000, 0)


# -- bounded memory: a long day folded into sums ----------------------------------

MIN = 60_000


def sliding(now: int, since: int) -> dict[str, int]:
    """The live task's windows at `now` ("today" from `since`): the sliding
    ones from the start of a minute."""
    return {"today": since, **{f"{m}m": window_start(now, m) for m in (60, 30, 15)}}


def _feed_bounded(t: IncrementalTracker, batch: list[Event], fed: dict[str, list[Event]]) -> None:
    """Feed one batch as the live task does: forgotten items first recalled
    from their own earlier events (their history in Redis)."""
    for e in batch:
        if e.work and e.work not in t.items:
            t.recall(e.work, fed.get(e.work, ()))
    t.feed(batch)
    for e in batch:
        if e.work:
            fed.setdefault(e.work, []).append(e)


LONG_SETTINGS = replace(
    SETTINGS, capacities={"a1": 100, "a3": 40, "a5": 10}, members={"support": ["a1", "a2"], "billing": ["a5"]}
)
BEFORE_THE_DAY = {"old1": T0 - 7200_000, "old2": T0 - 600_000, "old3": T0 - 50_000}


@pytest.mark.parametrize("seed", range(40))
def test_folded_long_day_equals_the_full_pass(seed: int) -> None:
    since = T0 - 100_000  # "today" starts before the first event
    settings = LONG_SETTINGS
    accepts = {"old2": T0 - 300_000, "old4": T0 - 20_000}
    batches = _random_day(seed, long=True)
    full = Tracker(settings, BEFORE_THE_DAY, accepts)
    inc = IncrementalTracker(settings, BEFORE_THE_DAY, accepts, since=since)
    fed: dict[str, list[Event]] = {}
    folds = rebuilds = 0
    changed_at = len(batches) // 2
    for i, batch in enumerate(batches):
        batch.sort(key=lambda e: e.ts)
        full.feed(batch)
        _feed_bounded(inc, batch, fed)
        if i == 0:
            for t in (inc, full):
                t.seed_status("a4", "Available", "", T0 - 50_000)
        now = max([e.ts for b in batches[: i + 1] for e in b] + [T0]) + 30_000
        if i == changed_at:  # the routable statuses changed (a settings refresh)
            settings = replace(settings, routable=frozenset({"Available", "Lunch"}))
            full.settings = settings
            inc.use(settings)  # as live: re-read settings are handed over before the tick
        before = fold_point(now)
        if before > since and (inc.folded_to is None or before > inc.folded_to):
            inc.fold(before, fold_horizon(now))
            folds += 1
        if inc.inexact:
            # as the live task: rebuilt from the streams, folding as it goes
            assert i == changed_at, inc.inexact
            rebuilds += 1
            inc = IncrementalTracker(settings, BEFORE_THE_DAY, accepts, since=since)
            fed = {}
            for j, b in enumerate(batches[: i + 1]):
                _feed_bounded(inc, b, fed)
                if j == 0:
                    inc.seed_status("a4", "Available", "", T0 - 50_000)
                at = min(before, fold_point(max(e.ts for e in b) if b else T0))
                if at > since and (inc.folded_to is None or at > inc.folded_to):
                    inc.fold(at, fold_horizon(now))
            if before > since and (inc.folded_to is None or before > inc.folded_to):
                inc.fold(before, fold_horizon(now))
            assert not inc.inexact
        wins = sliding(now, since)
        got = inc.aggregate(now, wins)  # every tick, as live: the running sums move on
        if i % 4 and i not in (changed_at, len(batches) - 1):
            continue  # the full pass, every few ticks only (it is the slow part)
        want = full.aggregate(now, wins)
        assert got == want, (i, inc.folded_to)
        part = inc.aggregate(now, wins, agents_for={"today"})
        for w in wins:
            assert (part[w].center, part[w].queues, part[w].channels) == (
                want[w].center, want[w].queues, want[w].channels)  # fmt: skip
    assert folds > 3 and rebuilds <= 1
    # what the bounded tracker holds is the last hour's, not the day's
    assert len(inc.rows) < len(full.facts)


@pytest.mark.parametrize("seed", range(10))
def test_the_windows_of_one_tick_summed_together_equal_each_alone(seed: int) -> None:
    """`Timeline.windows_sums` integrates the time after the fold once for
    every window that starts before it: each window's sums are what
    `window_sums` gives it alone, before any fold and after several."""
    since = T0 - 100_000
    inc = IncrementalTracker(LONG_SETTINGS, BEFORE_THE_DAY, since=since)
    fed: dict[str, list[Event]] = {}
    checked = folds = 0
    latest = T0
    for batch in _random_day(seed, long=True):
        batch.sort(key=lambda e: e.ts)
        _feed_bounded(inc, batch, fed)
        latest = max([e.ts for e in batch] + [latest])
        now = latest + 30_000
        before = fold_point(now)
        if before > since and (inc.folded_to is None or before > inc.folded_to):
            inc.fold(before, fold_horizon(now))
            folds += 1
        # the live task's windows, and (before a fold) some that start late
        starts = list(sliding(now, since).values())
        if inc.folded_to is None:
            starts += [now - 1, now, now + 1]
        for tl in inc.timelines.values():
            # each alone: its own pass after the fold
            assert tl.windows_sums(starts, now) == [tl.windows_sums([s], now)[0] for s in starts]
            checked += 1
    assert folds > 3 and checked


def test_a_young_trackers_windows_summed_together_equal_each_alone() -> None:
    """Folded before anything is fed (the live task's first tick), the
    timelines made since start after every window: each window's sums are
    the integral up to now, computed once for all and copied to each."""
    since = T0 - 3_600_000
    inc = IncrementalTracker(LONG_SETTINGS, BEFORE_THE_DAY, since=since)
    inc.fold(fold_point(T0), fold_horizon(T0))
    fed: dict[str, list[Event]] = {}
    checked = 0
    for batch in _random_day(3)[:6]:
        batch.sort(key=lambda e: e.ts)
        _feed_bounded(inc, batch, fed)
        now = max(e.ts for b in fed.values() for e in b) + 1_000
        starts = [*sliding(now, since).values(), now - 1]
        for tl in inc.timelines.values():
            assert tl.folded is None
            together = tl.windows_sums(starts, now)
            assert together == [tl.windows_sums([s], now)[0] for s in starts]
            shared = [d for d in together[:-1] if d is not None]
            assert len({id(d) for d in shared}) == len(shared)  # copies, not one dict
            checked += 1
    assert checked


class _ByLast:
    """A `FoldSink` grouping the folded facts by their item id's last
    character (as the roll-up groups them by an item's customer)."""

    def __init__(self) -> None:
        self.sums: dict[str, Agg] = {}

    def add(self, row: FactRow, first_contact: bool) -> None:
        f = Fact._make(row)._replace(first_contact=first_contact)
        apply_fact(self.sums.setdefault(f.work[-1:], Agg()), f)

    def resolve(self, row: FactRow, n: int) -> None:
        self.sums[row[F_WORK][-1:]].resolved_first += n


@pytest.mark.parametrize("seed", range(40))
def test_a_closed_range_folded_as_read_equals_the_full_pass(seed: int) -> None:
    """The roll-up's use: a range [start, end) fed from before its start,
    folded behind the read position, then up to its end; its sums (and the
    facts handed to a sink, grouped its own way) are the full pass's with
    facts up to but not at the end."""
    batches = _random_day(seed, long=True)
    times = sorted(e.ts for b in batches for e in b)
    start = times[len(times) // 3]
    start -= start % 60_000
    end = start + 3600_000
    accepts = {"old2": T0 - 300_000, "old4": T0 - 20_000}
    full = Tracker(LONG_SETTINGS, BEFORE_THE_DAY, accepts)
    inc = IncrementalTracker(LONG_SETTINGS, BEFORE_THE_DAY, accepts, since=start)
    inc.on_fold = sink = _ByLast()
    fed: dict[str, list[Event]] = {}
    for t in (inc, full):
        t.seed_status("a4", "Available", "", T0 - 50_000)
    folds = 0
    for batch in batches:
        batch = sorted((e for e in batch if e.ts <= end), key=lambda e: e.ts)
        full.feed(batch)
        _feed_bounded(inc, batch, fed)
        if batch:
            before = min(end, batch[-1].ts - 300_000)
            if inc.folded_to is None or before > inc.folded_to:
                inc.fold(before)
                folds += 1
        assert not inc.inexact
    inc.fold(end)
    steps = inc.folded_sums()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            got = done.value
            break
    want = full.aggregate(end, {"w": start}, inclusive=False)["w"]
    assert got == want
    assert sink.sums == full.group(start, end, lambda f: f.work[-1:])
    assert folds > 3 and len(inc.rows) < len(full.facts) / 2


HOUR = 3600_000


def _both(events: list[Event], since: int, **maps: dict[str, int]) -> tuple[Tracker, IncrementalTracker]:
    full = Tracker(SETTINGS, maps.get("arrivals"), maps.get("accepts"))
    inc = IncrementalTracker(SETTINGS, maps.get("arrivals"), maps.get("accepts"), since=since)
    full.feed(events)
    inc.feed(events)
    return full, inc


def test_a_reopen_hours_later_spoils_a_completion_already_folded() -> None:
    day = [
        ev("create", 0, "c1", queue="support", channel="email"),
        ev("accept", 10, "c1", "alice", "support", "email"),
        ev("complete", 100, "c1", "alice", "support", "email"),
    ]
    full, inc = _both(day, T0)
    fed = {"c1": list(day)}
    inc.fold(T0 + 2 * HOUR)
    assert "c1" not in inc.items and not inc.rows  # folded into "today" and forgotten
    assert inc.aggregate(T0 + 3 * HOUR, {"today": T0})["today"].center.kpis()["fcr"] == 1.0
    # three hours on, the customer writes again: the case routes again
    later = [ev("reopen", 3 * 3600, "c1", queue="support", channel="email")]
    blind = IncrementalTracker(SETTINGS, since=T0)  # what it would say without its history
    blind.feed(day)
    blind.fold(T0 + 2 * HOUR)
    blind.feed(later)
    full.feed(later)
    _feed_bounded(inc, later, fed)
    now, wins = T0 + 3 * HOUR + 60_000, {"today": T0, "60m": T0 + 2 * HOUR + 60_000}
    want = full.aggregate(now, wins)
    assert (want["today"].center.handled, want["today"].center.resolved_first) == (1, 0)
    assert inc.aggregate(now, wins) == want
    assert blind.aggregate(now, wins)["today"].center.resolved_first == 1  # the recall is what fixes it


def test_offered_before_midnight_answered_after_and_folded() -> None:
    midnight = T0
    day = [
        ev("create", -900, "x", queue="support", channel="chat"),  # 23:45
        ev("create", -100, "y", queue="support", channel="chat"),
        ev("abandon", 30, "y", queue="support", channel="chat"),
        ev("accept", 300, "x", "alice", "support", "chat"),  # 00:05: waited 20 minutes
        ev("complete", 400, "x", "alice", "support", "chat"),
        # arrived before the events fed: its arrival and accept from its hash
        ev("complete", 500, "z", "bob", "billing", "chat"),
    ]
    full, inc = _both(day, midnight, arrivals={"z": ms(-5000)}, accepts={"z": ms(-4000)})
    inc.fold(midnight + 2 * HOUR)
    now = midnight + 3 * HOUR
    wins = {"today": midnight, "60m": now - HOUR}
    got, want = inc.aggregate(now, wins), full.aggregate(now, wins)
    assert got == want
    c = got["today"].center
    assert (c.offered, c.answered, c.abandoned, c.handled) == (0, 1, 1, 2)
    assert (c.wait_ms, c.max_wait_ms, c.abandon_wait_ms) == (1200_000, 1200_000, 130_000)
    assert c.handle_ms == 100_000 + 4500_000
    assert got["60m"].center == Agg()


def test_fold_at_an_hour_boundary() -> None:
    h = T0 + HOUR  # the fold point, and the start of a window: on the boundary
    day = [
        ev("create", 3599.999, "a", queue="support", channel="chat"),  # one ms before
        ev("create", 3600, "b", queue="support", channel="chat"),  # on it
        ev("create", 3600.001, "c", queue="support", channel="chat"),
    ]
    full, inc = _both(day, T0)
    inc.aggregate(h + 1000, {"today": T0, "h": h})
    inc.fold(h)
    assert len(inc.rows) == 2  # "a" folded, "b" (ts == h) kept for the window from h
    for now in (h, h + 1, h + 60_000):
        wins = {"today": T0, "h": h}
        got = inc.aggregate(now, wins)
        assert got == full.aggregate(now, wins)
    assert (got["today"].center.offered, got["h"].center.offered) == (3, 2)
    with pytest.raises(ValueError, match="before the facts folded"):
        inc.aggregate(h + 60_000, {"early": h - 1})


def test_late_facts_before_the_fold_point_still_count_today() -> None:
    day = [ev("create", 10, "a", queue="support", channel="chat")]
    full, inc = _both(day, T0)
    inc.aggregate(T0 + 2 * HOUR, {"today": T0})
    inc.fold(T0 + HOUR)
    # recorded late: it happened before the fold point
    late = [
        ev("create", 3000, "b", queue="billing", channel="voice"),
        ev("abandon", 3300, "b", queue="billing", channel="voice"),
    ]
    full.feed(late)
    inc.feed(late)
    for now, before in ((T0 + 2 * HOUR, None), (T0 + 3 * HOUR, T0 + 2 * HOUR)):
        if before:
            inc.fold(before)
        wins = {"today": T0, "60m": now - HOUR}
        assert inc.aggregate(now, wins) == full.aggregate(now, wins)
    assert inc.aggregate(now, {"today": T0})["today"].center.abandoned == 1


def test_what_memory_cannot_replay_asks_for_a_rebuild() -> None:
    day = [
        st(0, "alice", "Available", prev="Offline", prev_since=-100),
        ev("create", 10, "w", queue="support", channel="chat"),
        ev("accept", 20, "w", "alice", "support", "chat"),
    ]
    _, inc = _both(day, T0)
    inc.fold(T0 + HOUR)
    assert not inc.inexact
    inc.feed([st(3700, "alice", "Break", prev="Available", prev_since=0)])
    assert not inc.inexact  # after the fold point: replayed from the spans kept
    inc.feed([st(3000, "alice", "Lunch", prev="Available", prev_since=0)])  # late, before it
    assert "before the agent's time folded" in inc.inexact
    _, inc = _both(day, T0)
    inc.fold(T0 + HOUR)
    inc.settings = replace(SETTINGS, routable=frozenset({"Available", "Break"}))
    inc.aggregate(T0 + 2 * HOUR, {"today": T0})
    assert "routable" in inc.inexact


DAY_ITEMS = 20_000  # 14 a minute (python -m loadtests.bench_kpi --day runs 200,000)
DAY_AGENTS = 40


def test_a_day_folded_into_sums_holds_the_last_hour_only() -> None:
    # the benchmark's day (loadtests/bench_kpi.py --day), smaller and checked:
    # each item answered 15 s after it arrives and completed 3 minutes on,
    # every 200th a case re-opened three hours later, agents' breaks
    from loadtests.bench_kpi import T0 as DAY0
    from loadtests.bench_kpi import breaks, minutes, schedule, tracked_from

    settings = Settings(
        weights={"chat": 25},
        capacities={f"a{i}": 100 for i in range(DAY_AGENTS)},
        members={"support": [f"a{i}" for i in range(0, DAY_AGENTS, 2)]},
    )
    full, inc = Tracker(settings), IncrementalTracker(settings, since=DAY0)
    for t in (full, inc):
        for i in range(DAY_AGENTS):
            t.seed_status(f"a{i}", "Available", "", DAY0 - 1000)
    item = schedule(DAY_ITEMS, 24, DAY_AGENTS, reopen_every=200)
    due, pauses = minutes(DAY_ITEMS, item), breaks(DAY_AGENTS, 24)
    held: list[dict[str, int]] = []
    for m in range(0, 24 * 60, 5):  # one tick every five minutes, the clock driven
        batch = [item(k)[i] for j in range(m, m + 5) for k, i in due.pop(j, [])]
        batch = sorted(batch + [e for j in range(m, m + 5) for e in pauses.pop(j, [])], key=lambda e: e.ts)
        for e in batch:  # a re-opened case: its state back from its history
            if e.work and e.work not in inc.items and e.ev != "create":
                inc.recall(e.work, [x for x in item(int(e.work[1:])) if x.ts < e.ts])
        full.feed(batch)
        inc.feed(batch)
        now = DAY0 + (m + 5) * MIN
        wins = {"today": DAY0, "60m": window_start(now, 60)}  # more sliding windows: the same, slower
        got = inc.aggregate(now, wins)
        if fold_point(now) > DAY0:
            inc.fold(fold_point(now), fold_horizon(now))
        if (m + 5) % 120 == 0:
            gc.collect()  # the collector stops tracking a tuple of numbers when it first sees it
            held.append({**inc.retained(), "gc": tracked_from(inc, (settings,))})
        if m + 5 in (3 * 60, 12 * 60, 24 * 60):
            want = full.aggregate(now, wins)
            for w in wins:
                assert (got[w].center, got[w].queues, got[w].channels) == (
                    want[w].center, want[w].queues, want[w].channels), (m, w)  # fmt: skip
                assert got[w].agents == want[w].agents, (m, w)
    # the figures, from the schedule itself
    done = [e for k in range(DAY_ITEMS) for e in item(k) if e.ts < now]  # all that was fed
    reopened = {e.work for e in done if e.ev == "reopen"}
    c = got["today"].center
    assert c.offered == sum(e.ev in ("create", "reopen") for e in done) == DAY_ITEMS + len(reopened)
    assert c.handled == sum(e.ev == "complete" for e in done)
    firsts = {e.work for e in done if e.ev == "complete"} - reopened
    assert c.resolved_first == len(firsts) and len(reopened) > 80
    # after the first two hours, what it holds is flat: the last hour's traffic
    first = held[0]
    for h in held[1:]:
        for k, v in h.items():
            assert abs(v - first[k]) <= max(0.02 * first[k], 20), (k, first, h)
    assert first["facts"] < len(full.facts) / 10
    # and kept as plain tuples, which the collector does not walk
    gc.collect()
    assert not any(gc.is_tracked(r) for r in inc.rows)
    assert not any(gc.is_tracked(s) for ss in inc.agent_spans.values() for s in ss)
    # nor the per-minute sums (bytes per group and minute)
    assert first["gc"] < first["facts"] + first["spans"] + first["items"] + first["bucket_groups"] // 2
    assert not any(gc.is_tracked(a) for b in inc.buckets.values() for a in b.agents.values())


def _steady_traffic(minutes: int, per_minute: int, agents: int) -> IncrementalTracker:
    """`minutes` of traffic at `per_minute` items a minute, fed and folded as
    the live task does (a tick a minute): each item answered 15 s after it
    arrives and completed 3 minutes on, by one of `agents`."""
    settings = Settings(members={"support": [f"a{i}" for i in range(agents)]})
    t = IncrementalTracker(settings, since=DAY0_STEADY)
    for i in range(agents):
        t.seed_status(f"a{i}", "Available", "", DAY0_STEADY - 1000)
    pending: dict[int, list[Event]] = {}
    n = 0
    for m in range(minutes):
        for k in range(per_minute):
            at = DAY0_STEADY + m * MIN + k * MIN // per_minute
            w, a = f"w{n}", f"a{n % agents}"
            n += 1
            for ts, e in ((at, "create"), (at + 15_000, "accept"), (at + 195_000, "complete")):
                pending.setdefault((ts - DAY0_STEADY) // MIN, []).append(
                    Event(e, ts, w, "" if e == "create" else a, "support", "chat")
                )
        t.feed(sorted(pending.pop(m, []), key=lambda e: e.ts))
        now = DAY0_STEADY + (m + 1) * MIN
        t.aggregate(now, sliding(now, DAY0_STEADY), agents_for=("today", "60m"))
        if fold_point(now) > DAY0_STEADY:
            t.fold(fold_point(now), fold_horizon(now))
    return t


DAY0_STEADY = 1_700_006_400_000  # a midnight (UTC)


def test_a_minutes_sums_pack_into_bytes_of_their_nonzero_fields() -> None:
    for sums in [
        (0,) * 14,
        tuple(range(1, 15)),
        (0, 1, 0, 1, 0, 15_000, 0, 0, 0, -1, 0, 0, 0, 15_000),  # a resolution taken back
        (2**62, 0, 0, 0, 0, -(2**62), 0, 0, 0, 0, 0, 0, 0, 2**63 - 1),
    ]:
        raw = pack_sums(sums)
        assert isinstance(raw, bytes) and unpack_sums(raw) == sums
        assert len(raw) == 2 + 8 * sum(1 for x in sums if x)


def test_what_the_live_tracker_holds_does_not_grow_with_the_hour() -> None:
    # the same traffic for 10 and for 60 minutes: facts, items, spans and
    # breakpoints are those of the last few minutes either way; only the
    # per-minute sums fill up, to at most one per minute of the longest window
    short, long = (_steady_traffic(m, 120, 20).retained() for m in (10, 60))
    for k in ("facts", "items", "spans", "breakpoints", "first_contact"):
        assert abs(long[k] - short[k]) <= max(0.05 * short[k], 5), (k, short, long)
    assert short["facts"] <= 4 * 3 * 120  # three facts an item, the last four minutes at most
    assert long["buckets"] <= 61 and long["bucket_groups"] <= 61 * (3 + 20)
    assert long["marks"] <= 61 * 20


def test_csat_counts_for_agent_queue_and_center_in_both_trackers() -> None:
    """A survey answer (``csat``, days after the item maybe) counts when it
    comes, for the case's agent and queue; the live tracker agrees with the
    full pass, and a window that no longer holds it forgets it."""
    evs = [
        Event("create", 1000, "w1", "", "support", "chat"),
        Event("accept", 2000, "w1", "a1", "support", "chat"),
        Event("complete", 3000, "w1", "a1", "support", "chat"),
        Event("csat", 50_000, "w1", "a1", "support", "chat", {"score": "4"}),
        Event("csat", 60_000, "w9", "a2", "billing", "email", {"score": "1"}),
        Event("csat", 61_000, "w8", "a2", "billing", "email", {"score": "not a number"}),
    ]
    for tracker in (IncrementalTracker(SETTINGS), Tracker(SETTINGS)):
        tracker.feed(evs)
        g = tracker.aggregate(70_000, {"all": 0, "late": 55_000})
        k = g["all"].center.kpis()
        assert (k["csat"], k["csat_count"]) == (2.5, 2)
        assert g["all"].agents["a1"].kpis()["csat"] == 4.0
        assert g["all"].queues["billing"].kpis()["csat"] == 1.0
        assert g["late"].center.kpis()["csat_count"] == 1
        assert "a1" not in g["late"].agents or g["late"].agents["a1"].csat_n == 0


def test_a_reopen_after_midnight_takes_back_a_completion_in_a_bucket_of_yesterday() -> None:
    # completed at 23:30 (not in "today", in the 60m window's buckets) and
    # forgotten; re-opened at 00:10: the 60m window loses its resolution
    midnight = DAY0_STEADY
    day = [
        Event("create", midnight - 40 * MIN, "c1", "", "support", "email"),
        Event("accept", midnight - 39 * MIN, "c1", "alice", "support", "email"),
        Event("complete", midnight - 30 * MIN, "c1", "alice", "support", "email"),
    ]
    full, inc = _both(day, midnight)
    fed = {"c1": list(day)}
    now = midnight + 5 * MIN
    inc.aggregate(now, sliding(now, midnight))
    inc.fold(fold_point(now), fold_horizon(now))
    assert "c1" not in inc.items and not inc.rows and inc.buckets
    later = [Event("reopen", midnight + 10 * MIN, "c1", "", "support", "email")]
    full.feed(later)
    _feed_bounded(inc, later, fed)
    now = midnight + 12 * MIN
    wins = sliding(now, midnight)
    got, want = inc.aggregate(now, wins), full.aggregate(now, wins)
    assert got == want
    assert (got["60m"].center.handled, got["60m"].center.resolved_first) == (1, 0)


def test_the_events_streams_copy_of_a_status_change_is_skipped_undecoded() -> None:
    """A status change is read from stream:status (it knows the previous
    status); its copy in stream:events is skipped, bytes or str, and every
    other entry decodes as before."""
    from presence.kpi import history

    entries = [
        ("1-0", {b"ev": b"status", b"ts": b"10", b"agent": b"a1", b"status": b"Away"}),
        ("2-0", {b"ev": b"create", b"ts": b"11", b"work": b"w1", b"queue": b"q"}),
        ("3-0", {"ev": "status", "ts": "12", "agent": "a1"}),
        ("4-0", {b"ev": b"accept", b"ts": b"x"}),  # no usable ts: dropped, as before
    ]
    assert history.decode(entries, status=False) == [
        Event("create", 11, "w1", queue="q", extra={"priority": "0"})
    ]
    st = history.decode(
        [("1-0", {b"ts": b"10", b"agent": b"a1", b"status": b"Away", b"prev": b"Offline"})], status=True
    )
    assert st == [Event("status", 10, agent="a1", extra={"status": "Away", "prev": "Offline"})]
