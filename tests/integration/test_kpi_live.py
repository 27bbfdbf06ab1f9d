"""Live KPIs on the supervisor socket: pushed at least every second, right
counts; and a day of them, driven by the clock, folded in memory yet exact."""

from __future__ import annotations

import asyncio
import functools
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgpack
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from presence.center import parse_center
from presence.kpi import history
from presence.kpi import live as live_kpis
from presence.kpi.live import LiveKpis, build, windows
from presence.kpi.rollup import Rollup
from presence.kpi.tracker import compute
from presence.store import Store, new_work_id
from presence.store.keys import Keys
from tests.harness import MSGPACK, ServerProcess, agent, available, post_work, supervisor, token
from tests.helpers import http, ids_from_ts, kpi_center
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.in_process


def cancel(server: ServerProcess, wid: str) -> None:
    r = http().post(
        f"{server.http}/api/v1/work/{wid}/cancel",
        headers={"Authorization": f"Bearer {token('service', 'crm')}"},
        json={"reason": "hangup"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


async def test_kpis_every_second_with_exact_counts(server: ServerProcess) -> None:
    sup = await supervisor(server)
    sup_mp = await supervisor(server, "sam", subprotocol=MSGPACK)
    alice = await agent(server, "alice")
    await available(alice)
    # w1: offered, accepted, completed; w2: abandoned while waiting; w3: still waiting
    w1 = post_work(server, channel="voice", subject="一件目").json()["id"]
    offer = await alice.expect("offer")
    assert offer["work_id"] == w1
    assert (await alice.request({"type": "offer.accept", "work_id": w1}))["type"] == "ok"
    await asyncio.sleep(0.05)
    assert (await alice.request({"type": "work.complete", "work_id": w1}))["type"] == "ok"
    await available(alice, "Break", "Coffee")
    w2 = post_work(server, channel="voice").json()["id"]
    cancel(server, w2)
    post_work(server, channel="chat", queue="billing")

    def settled(m: dict[str, object]) -> bool:
        c = m.get("center")
        return (
            m.get("type") == "kpis"
            and isinstance(c, dict)
            and c["today"]["offered"] == 3
            and c["waiting"] == 1
            and "agents" in m  # the per-agent rows ride on every 5th push
        )

    k = await sup.expect(settled, timeout=12)
    today = k["center"]["today"]
    assert (today["offered"], today["answered"], today["abandoned"], today["handled"]) == (3, 1, 1, 1)
    assert today["answered_in_sl"] == 1 and today["service_level"] == 1.0
    assert today["abandonment_rate"] == 0.5
    assert today["fcr"] == 1.0
    assert k["windows"] == ["today", "15m", "30m", "60m"]
    assert k["center"]["15m"]["offered"] == 3
    assert k["center"]["logged_in"] == 1 and k["center"]["routable"] == 0
    queues = {q["name"]: q for q in k["queues"]}
    sup_q, bil_q = queues["support"], queues["billing"]
    assert (sup_q["today"]["offered"], sup_q["today"]["answered"], sup_q["today"]["abandoned"]) == (2, 1, 1)
    assert (bil_q["waiting"], bil_q["today"]["offered"]) == (1, 1)
    assert bil_q["longest_wait"] >= 0
    # Erlang C beside the agents staffed: billing has had 1 arrival in the
    # last hour but no completed item yet, so no AHT and no recommendation
    assert bil_q["staffing_needed"] is None and bil_q["staffed"] == 1
    # ... so the center has none either (not the sum of the others)
    assert k["center"]["staffing_needed"] is None
    # support: 2 arrivals an hour and the AHT of w1 -> a tiny load: 1 agent
    assert sup_q["staffing_needed"] == 1
    assert sup_q["staffing"]["arrival_rate"] == 2
    channels = {c["name"]: c for c in k["channels"]}
    assert channels["voice"]["today"]["offered"] == 2 and channels["chat"]["today"]["offered"] == 1
    agents = {a["agent_id"]: a for a in k["agents"]}
    a = agents["alice"]
    assert (a["status"], a["reason"]) == ("Break", "Coffee")
    assert a["today"]["answered"] == 1 and a["today"]["handled"] == 1
    assert a["today"]["time_in_status"]["Break"] >= 0
    assert "Break/Coffee" in a["today"]["time_in_reason"]
    assert a["today"]["handle_time"] > 0

    # at least every second (PRESENCE_KPI_INTERVAL = 1): gaps between pushes, measured here
    loop = asyncio.get_running_loop()
    sup.inbox.clear()  # only pushes that arrive from now on
    stamps = []
    while len(stamps) < 4:
        await sup.expect("kpis", timeout=1.5)
        stamps.append(loop.time())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 1.3, gaps
    m = await sup_mp.expect(settled, timeout=3)
    assert m["center"]["today"]["offered"] == 3


async def test_one_process_computes_for_all_and_another_takes_over(
    server_factory: ServerFactory, redis_server: str
) -> None:
    # processes: the lock's holder is named by its pid
    first = server_factory(process=True)
    second = server_factory(config=first.config, process=True)
    k = Keys(first.center_id)
    sup1 = await supervisor(first)
    sup2 = await supervisor(second, "sam", subprotocol=MSGPACK)
    post_work(first, channel="chat")

    def offered(m: dict[str, object]) -> bool:
        c = m.get("center")
        return m.get("type") == "kpis" and isinstance(c, dict) and c["today"]["offered"] == 1

    # both processes' supervisors get the same figures ...
    a, b = await sup1.expect(offered, timeout=5), await sup2.expect(offered, timeout=5)
    assert a["center"]["today"] == b["center"]["today"]
    # ... computed by one of them: the lock's holder
    r = redis.Redis.from_url(redis_server)
    try:
        holder = r.get(k.kpi_lock("live"))
        assert holder is not None
        assert r.exists(k.kpi_audience)
    finally:
        r.close()
    # a second's pushes: one per interval, not one per process
    sup1.inbox.clear()
    loop = asyncio.get_running_loop()
    pushes, until = 0, loop.time() + 2.2
    while loop.time() < until:
        try:
            await sup1.expect("kpis", timeout=max(0.01, until - loop.time()))
            pushes += 1
        except TimeoutError:
            break
    assert 1 <= pushes <= 3, pushes
    # the holder stops: the other process carries on within the lock's TTL
    assert first.proc is not None
    survivor, sup = (second, sup2) if holder.decode().startswith(f"{first.proc.pid}@") else (first, sup1)
    (first if survivor is second else second).stop()
    sup.inbox.clear()
    post_work(survivor, channel="chat")

    def two(m: dict[str, object]) -> bool:
        c = m.get("center")
        return m.get("type") == "kpis" and isinstance(c, dict) and c["today"]["offered"] == 2

    await sup.expect(two, timeout=6)


# -- a day, folded ---------------------------------------------------------------

DAY = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1000)  # midnight (UTC) of the driven day
MIN = 60_000
AGENTS = [f"a{i}" for i in range(4)]


@pytest.fixture
async def day_store(redis_server: str) -> AsyncIterator[tuple[Store, list[float]]]:
    """A center whose clock the test drives (stream ids stay Redis's own)."""
    client = AsyncRedis.from_url(redis_server)
    clock = [DAY / 1000]
    store = Store(client, "day" + uuid.uuid4().hex[:8], clock=lambda: clock[0])
    await kpi_center(store, AGENTS)
    yield store, clock
    await client.delete(*[key async for key in client.scan_iter(match=store.keys.prefix + "*")])
    await client.aclose()


def _at(clock: list[float], minutes: float) -> None:
    """Drive the day's clock to `minutes` after its midnight (negative: the evening before)."""
    clock[0] = (DAY + minutes * MIN) / 1000


async def _sign_in_all(store: Store) -> None:
    """Every agent signed in (a month-long lease) and Available."""
    for a in AGENTS:
        await store.conn_open(a, f"c-{a}", 30 * 86400)
        await store.set_status(a, "Available", "", a)


async def _answer(store: Store, wid: str, queue: str = "support") -> str:
    """Route `queue` and accept `wid` as whoever it was offered to."""
    await store.route([queue])
    item = await store.get_work(wid, history=False)
    assert item is not None and item["state"] == "offered", item
    await store.accept(item["agent_id"], wid)
    return str(item["agent_id"])


async def _case(store: Store, ref: str) -> tuple[str, str]:
    """An email from thread `ref`: a new case, or the case of its thread again."""
    reply = await store.scripts.call(
        "case_intake", store.keys.prefix, store.now_ms(), new_work_id(), "support", "email", 0,
        msgpack.packb({}), msgpack.packb({}), msgpack.packb({}), "", "", "",
        msgpack.packb([ref]), msgpack.packb([ref]), "join", "1", 86400,
    )  # fmt: skip
    return str(reply[0]), str(reply[1])


async def _full_pass(store: Store, live: LiveKpis, now: int) -> dict[str, object]:
    """The message the old live task computed: every event since the tracker's
    origin in one full pass (`Tracker`), with the item hashes' times."""
    k = store.keys
    entries = await history.read_stream(store, k.event_stream, "-")
    status = await history.read_stream(store, k.status_stream, "-")
    events = history.decode(entries, status=False) + history.decode(status, status=True)
    events = sorted((e for e in events if e.ts >= live._origin), key=lambda e: e.ts)
    arrivals, accepts = await history.item_times(store, events)
    views = await live_kpis.views_chunked(store)
    current = {v["agent_id"]: (v["status"], v.get("reason", ""), int(v["since"])) for v in views}
    settings = await history.settings(store)
    groups = compute(
        events, now, windows(now, live.tz), settings, arrivals=arrivals, accepts=accepts, current=current
    )
    return build(groups, await store.list_queues(), await store.queue_stats(), views, now, settings.routable)


async def test_a_day_folded_in_memory_keeps_the_figures_exact(
    day_store: tuple[Store, list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, clock = day_store
    monkeypatch.setattr(live_kpis, "REBUILD_PAGE", 7)  # a rebuild reads many pages
    live = LiveKpis(store, lambda msg: None, shared=False, timezone="UTC")

    at = functools.partial(_at, clock)

    # the evening before: agents sign in; "early" waits from 22:50 in the back
    # office; "prior" is answered at 22:55: both before the events the
    # tracker reads (from 22:57 on)
    at(-80)
    await _sign_in_all(store)
    at(-70)
    early = (await store.intake_work(new_work_id(), "backoffice", "chat", 0, {}, {})).work_id
    at(-66)
    prior = (await store.intake_work(new_work_id(), "billing", "voice", 0, {}, {})).work_id
    at(-65)
    prior_agent = await _answer(store, prior, "billing")
    at(2)
    await live.tick()  # built from the streams
    # after midnight: "prior" completed, "early" offered in one tick and
    # answered in the next
    at(4)
    await store.complete(prior_agent, prior, "done")
    await store.route(["backoffice"])
    at(6)
    await live.tick()
    at(8)
    item = await store.get_work(early, history=False)
    assert item is not None
    await store.accept(item["agent_id"], early)
    # a case answered and resolved in the first half hour
    at(20)
    case, outcome = await _case(store, "thread-1")
    assert outcome == "created"
    case_agent = await _answer(store, case)
    at(30)
    await store.complete(case_agent, case, "solved")
    # four hours of traffic: an item every four minutes, a tick every five
    # (the clock never goes back by more than the tracker's fold lag: a
    # process's clock does not run minutes behind the others)
    minute, n, reopened = 32.0, 0, False
    while minute < 240:
        at(minute)
        if n % 2 == 0:
            wid = (await store.intake_work(new_work_id(), "support", "chat", 0, {}, {})).work_id
            at(minute + 0.2)
            holder = await _answer(store, wid)
            at(minute + 3)
            await store.complete(holder, wid, "ok")
        if n % 7 == 3:
            a = AGENTS[n % len(AGENTS)]
            await store.set_status(a, "Break", "Coffee", a)
            at(minute + 3.5)
            await store.set_status(a, "Available", "", a)
        at(minute + 4)
        if minute >= 210 and not reopened and case not in (live.tracker.items if live.tracker else {}):
            # the case finished long ago and was forgotten: its customer writes again
            assert live.tracker is not None and live.tracker.folded_to is not None
            again, outcome = await _case(store, "thread-1")
            assert (again, outcome) == (case, "reopened")
            at(minute + 4.1)
            await _answer(store, case)
            at(minute + 4.5)
            await store.complete(case_agent, case, "solved again")
            reopened = True
        await live.tick()
        minute += 5
        n += 1
    assert reopened, "the case was never forgotten, so never re-opened"
    now = store.now_ms()
    tracker = live.tracker
    assert tracker is not None and tracker.folded_to is not None and tracker.folded_to > DAY
    kept, total = tracker.retained()["facts"], await store.redis.xlen(store.keys.event_stream)
    assert kept < total / 2  # the last hour's, not the day's

    got, want = await live.tick(), await _full_pass(store, live, now)
    today = got["center"]["today"]
    for key in ("center", "queues", "channels", "agents"):
        assert got[key] == want[key], key
    # a push without the agents' rows skips them and their sums, not a figure
    lean = await live.tick(agents=False)
    assert lean["agents"] == [] and want["agents"]
    for key in ("center", "queues", "channels"):
        assert lean[key] == want[key], key
    # the reopen spoiled the case's first completion, summed long before
    assert today["fcr"] is not None and today["fcr"] < 1.0
    queues = {q["name"]: q["today"] for q in got["queues"]}
    # "prior" was handled from its accept at 22:55, "early" answered after 78 minutes
    assert (queues["billing"]["answered"], queues["billing"]["handled"]) == (0, 1)
    assert queues["billing"]["aht"] == 69 * 60
    assert (queues["backoffice"]["answered"], queues["backoffice"]["max_answer_wait"]) == (1, 78 * 60)

    # a rebuild (another process taking over) reads the same figures back
    live.tracker = None
    rebuilt = await live.tick()
    want = await _full_pass(store, live, now)
    for key in ("center", "queues", "channels", "agents"):
        assert rebuilt[key] == want[key], key
    assert live.tracker is not None and live.tracker.retained()["facts"] < total / 2


async def test_a_wallboard_opened_late_takes_today_from_the_roll_ups_and_the_streams_kept(
    day_store: tuple[Store, list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tracker built at 03:10, after the roll-up rolled up to 03:00 and
    trimmed the streams there (less the clock margin): its "today" is the
    roll-ups' sums until 03:00 and the streams' after, and equals what a
    tracker built from the whole day's streams showed, at 03:10, before the
    trim: items waiting, held and an agent on a break across 03:00 included."""
    store, clock = day_store
    monkeypatch.setattr(live_kpis, "REBUILD_PAGE", 7)

    at = functools.partial(_at, clock)

    at(-80)
    await _sign_in_all(store)
    # held across midnight (from within the streams' margin before it: a
    # tracker from midnight knows it from there, as the roll-ups do)
    at(-4)
    prior = (await store.intake_work(new_work_id(), "billing", "voice", 0, {}, {})).work_id
    at(-3)
    prior_agent = await _answer(store, prior, "billing")
    at(30)
    await store.complete(prior_agent, prior, "done")
    minute, n = 32.0, 0
    across, away, back = "", False, False
    while minute < 190:
        at(minute)
        if minute >= 172 and not away:
            # on a break from before 03:00 until after it
            await store.set_status(AGENTS[-1], "Break", "Coffee", AGENTS[-1])
            away = True
        if minute >= 183 and not back:
            await store.set_status(AGENTS[-1], "Available", "", AGENTS[-1])
            back = True
        if 176 <= minute < 180 and not across:
            # waiting across 03:00 still, in the back office nobody serves
            await store.intake_work(new_work_id(), "backoffice", "chat", 0, {}, {})
        wid = (await store.intake_work(new_work_id(), "support", "chat", 0, {}, {})).work_id
        if n % 5 == 4:
            await store.cancel(wid, "hangup")
        else:
            at(minute + 0.3)
            holder = await _answer(store, wid)
            if 176 <= minute < 180 and not across:
                across = wid  # held from before 03:00 until after it
            else:
                at(minute + 2.5)
                await store.complete(holder, wid, "ok")
        minute += 3.7
        n += 1
    assert across and away and back
    item = await store.get_work(across, history=False)
    assert item is not None
    await store.complete(item["agent_id"], across, "ok")
    at(191)
    await ids_from_ts(store)  # the roll-up reads its hours by id

    whole = await LiveKpis(store, lambda msg: None, shared=False, timezone="UTC").tick()
    task = Rollup(store, retention_days=0.0001)
    assert await task.run_once() == 5  # 22:00 the day before to 02:00
    k = store.keys
    assert int(await store.redis.hget(k.kpi_state, "rolled")) == DAY + 3 * 60 * MIN
    first = await store.redis.xrange(k.event_stream, count=1)
    assert int(first[0][0].split(b"-")[0]) >= DAY + (3 * 60 - 5) * MIN  # the day's first hours are gone

    late = LiveKpis(store, lambda msg: None, shared=False, timezone="UTC")
    got = await late.tick()
    assert got["center"]["today"]["offered"] == whole["center"]["today"]["offered"] > 40
    assert late._since == DAY + 3 * 60 * MIN and late._rolled is not None
    assert got["center"]["today"] == whole["center"]["today"]
    for key in ("queues", "channels"):
        assert [r["today"] for r in got[key]] == [r["today"] for r in whole[key]], key
    # the agents' rows too, but for the reason of a status held across 03:00:
    # a status change's entry names the status it left, not its reason, so
    # time from 03:00 in a break begun before counts as "Break" only (as in
    # every roll-up of an hour that starts in a break)
    assert [{**r["today"], "time_in_reason": {}} for r in got["agents"]] == [
        {**r["today"], "time_in_reason": {}} for r in whole["agents"]
    ]
    assert all(r["today"]["time_in_reason"] == {} for r in got["agents"] if r["agent_id"] != AGENTS[-1])
    # a push without the agents' rows leaves the center's today as it was
    lean = await late.tick(agents=False)
    assert lean["center"]["today"] == whole["center"]["today"]


async def test_the_settings_read_capacities_and_queues_in_chunks(redis_server: str) -> None:
    """The engine's settings (re-read every few seconds by the live task)
    take each agent's capacity and queues from a few script calls, never
    the agent's whole record: with hundreds of agents one HGETALL each held
    the loop for ms. They agree with the records `list_agents` reads."""
    client = AsyncRedis.from_url(redis_server)
    store = Store(client, "roster" + uuid.uuid4().hex[:8])
    agents = [
        {
            "id": f"a{i:03d}",
            "capacity": 10 + i,
            "queues": ["support", "billing"][: 1 + i % 2] if i % 7 else [],
        }
        for i in range(230)
    ]
    await store.sync_center(
        parse_center({"queues": [{"name": "support"}, {"name": "billing"}], "agents": agents})
    )
    profiles = await store.list_agents()
    await client.config_resetstat()
    settings = await history.settings(store)
    stats = await client.info("commandstats")
    # the queues', the statuses' and the channels' hashes, none of an agent
    assert stats["cmdstat_hgetall"]["calls"] < 10
    assert stats["cmdstat_fcall"]["calls"] == 3  # 100 agents per call
    assert settings.capacities == {a["id"]: a["capacity"] for a in profiles}
    assert {q: list(m) for q, m in settings.members.items()} == {
        q: [a["id"] for a in profiles if q in a["queues"]] for q in ("support", "billing")
    }
    assert len(settings.capacities) == 230 and settings.capacities["a007"] == 17
    await client.delete(*[key async for key in client.scan_iter(match=store.keys.prefix + "*")])
    await client.aclose()
