"""The hourly roll-up, read page by page and folded as read, against the full pass.

A random history driven through the real scripts with the clock (stream ids
stay Redis's own, so the hour rolled is the one around the test's own
time): items across the hour's start and end, a case re-opened in the hour
after its completion was folded, another finished in the look-back and
re-opened, statuses held across both ends. The roll-up must give exactly
the sums of the full pass (`compute_range` + `summarise`) in every
dimension; and its memory must follow the traffic's rate, not the hour's
length.
"""

from __future__ import annotations

import itertools
import random
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from zoneinfo import ZoneInfo

import msgpack
import orjson
import pytest
from redis.asyncio import Redis as AsyncRedis

from presence.http import reports
from presence.kpi import history, replay, rollup
from presence.kpi.rollup import HOUR_MS, Rollup, roll_range
from presence.store import Store, new_work_id
from presence.store.cases import transfer
from presence.store.keys import Keys
from tests.fullpass import bucket_rows, compute_range, summarise
from tests.helpers import ids_from_ts, kpi_center

pytestmark = pytest.mark.in_process

MIN = 60_000
AGENTS = [f"a{i}" for i in range(5)]
QUEUES = ("support", "billing")
CHANNELS = ("chat", "voice", "email")


@pytest.fixture
async def driven(redis_server: str) -> AsyncIterator[tuple[Store, list[float], int]]:
    """A center whose clock the test drives, and the start of the range to
    roll up: half an hour before now, so the stream ids (Redis's clock, now)
    lie within the range's reads (from its look-back to just after it)."""
    client = AsyncRedis.from_url(redis_server)
    start = int(time.time() * 1000) - 30 * MIN
    start -= start % MIN
    clock = [(start - 7 * 60 * MIN) / 1000]
    store = Store(client, "ru" + uuid.uuid4().hex[:8], clock=lambda: clock[0])
    await kpi_center(store, AGENTS)
    yield store, clock, start
    await client.delete(*[key async for key in client.scan_iter(match=store.keys.prefix + "*")])
    await client.aclose()


async def _case(store: Store, ref: str, customer: str) -> tuple[str, str]:
    """An email from thread `ref`: a new case, or the case of its thread again."""
    data = msgpack.packb({"customer": {"id": customer}, "payload": {"type": "claim", "source": "mail"}})
    reply = await store.scripts.call(
        "case_intake", store.keys.prefix, store.now_ms(), new_work_id(), "support", "email", 0,
        data, msgpack.packb({}), msgpack.packb({}), "", "", "",
        msgpack.packb([ref]), msgpack.packb([ref]), "join", "1", 86400,
    )  # fmt: skip
    return str(reply[0]), str(reply[1])


async def _answer(store: Store, wid: str) -> str | None:
    """Route and accept `wid` as whoever it is offered to (None: nobody free)."""
    item = await store.get_work(wid, history=False)
    assert item is not None
    await store.route([item["queue"]])
    item = await store.get_work(wid, history=False)
    assert item is not None
    if item["state"] != "offered":
        return None
    await store.accept(item["agent_id"], wid)
    return str(item["agent_id"])


async def _history(store: Store, clock: list[float], start: int, seed: int) -> dict[str, str]:
    """Drive a random history around [start, start + 1 h); returns the cases."""
    rnd = random.Random(seed)

    def at(minutes: float) -> None:
        t = (start + int(minutes * MIN)) / 1000
        assert t >= clock[0], "the clock never goes back"
        clock[0] = t

    # before the look-back: everyone signs in; one item waits from then on,
    # another is accepted then and completed in the hour
    at(-420)
    for a in AGENTS[:-1]:  # the last agent never changes: seeded from its view
        await store.conn_open(a, f"c-{a}", 30 * 86400)
        await store.set_status(a, "Available", "", a)
    ancient = (await store.intake_work(new_work_id(), "backoffice", "chat", 0, {}, {})).work_id
    at(-410)
    old = (await store.intake_work(new_work_id(), "billing", "voice", 0, {}, {})).work_id
    old_agent = await _answer(store, old)
    assert old_agent is not None
    # a case finished in the look-back, re-opened in the hour
    at(-200)
    past_case, outcome = await _case(store, "thread-past", "cust-p")
    assert outcome == "created"
    past_agent = await _answer(store, past_case)
    assert past_agent is not None
    at(-190)
    await store.complete(past_agent, past_case, "solved")

    held: dict[str, tuple[str, float]] = {}  # work -> (agent, when it is done)
    waiting: list[str] = []
    case = ""
    reopened = past_reopened = away = back = False
    through = through_agent = ""  # held from before the hour until after it, no event inside
    m = -60.0
    while m < 95:
        at(m)
        if rnd.random() < 0.6:
            data = {"customer": {"id": f"cust-{rnd.randrange(6)}"}, "payload": {"type": rnd.choice("xyz")}}
            wid = (
                await store.intake_work(new_work_id(), rnd.choice(QUEUES), rnd.choice(CHANNELS), 0, data, {})
            ).work_id
            waiting.append(wid)
        for wid in list(waiting):
            if wid not in (case, past_case) and rnd.random() < 0.07:
                await store.cancel(wid, "hangup")
                waiting.remove(wid)
                continue
            agent = await _answer(store, wid)
            if agent is not None:
                waiting.remove(wid)
                held[wid] = (agent, m + rnd.uniform(0.5, 12))
        for wid, (agent, done) in list(held.items()):
            if done > m:
                continue
            del held[wid]
            if wid != through and rnd.random() < 0.12:
                await transfer(
                    store, wid, "transfer", f"agent:{agent}", holder_only=agent, to_queue="support"
                )
                waiting.append(wid)
            else:
                await store.complete(agent, wid, "ok")
        if rnd.random() < 0.08:
            a = rnd.choice(AGENTS[1:-1])  # the first is on its break
            view = (await store.views([a]))[0]
            await store.set_status(a, "Available" if view["status"] != "Available" else "Break", "", a)
        if m >= 2 and not case:
            case, _ = await _case(store, "thread-1", "cust-c")
            waiting.append(case)
        elif case and m >= 40 and not reopened and case not in waiting and case not in held:
            # long after its completion was folded: the customer writes again
            again, outcome = await _case(store, "thread-1", "cust-c")
            assert (again, outcome) == (case, "reopened")
            waiting.append(case)
            reopened = True
        if m >= 20 and not past_reopened:
            again, outcome = await _case(store, "thread-past", "cust-p")
            assert (again, outcome) == (past_case, "reopened")
            waiting.append(past_case)
            past_reopened = True
        if m >= 25 and ancient:
            await store.route(["backoffice"])
            item = await store.get_work(ancient, history=False)
            if item is not None and item["state"] == "offered":
                await store.accept(item["agent_id"], ancient)
                held[ancient] = (item["agent_id"], m + 3)
                ancient = ""
        if m >= -100 and not through:
            through = (await store.intake_work(new_work_id(), "billing", "email", 0, {}, {})).work_id
            agent = await _answer(store, through)
            assert agent is not None
            held[through] = (agent, 80.0)
            through_agent = agent
        if m >= 30 and old_agent:
            await store.complete(old_agent, old, "done")
            old_agent = ""
        if m >= -20 and not away:
            # an agent on a break from before the hour until after it
            await store.set_status(AGENTS[0], "Break", "Coffee", AGENTS[0])
            away = True
        if m >= 75 and not back:
            await store.set_status(AGENTS[0], "Available", "", AGENTS[0])
            back = True
        m += rnd.uniform(0.2, 1.5)
    assert reopened and past_reopened and not ancient
    return {"case": case, "past": past_case, "through": through_agent}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_streamed_roll_up_equals_the_full_pass(
    driven: tuple[Store, list[float], int], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, clock, start = driven
    monkeypatch.setattr(rollup, "PAGE", 23)  # many pages, a fold after each
    who = await _history(store, clock, start, seed)
    end = start + HOUR_MS
    tracker, attrs = await compute_range(store, start, end)
    want = summarise(tracker, start, end, attrs)
    got = await roll_range(store, start, end)
    assert sorted(got) == sorted(want)
    for dim in want:
        assert got[dim] == want[dim], dim
    center = want["center"][""]
    assert center.handled and center.resolved_first < center.handled  # the re-opens spoiled some
    assert want["agent"][AGENTS[0]].status_ms.get("Break") == HOUR_MS  # held across both ends
    assert set(want["customer"]) >= {"cust-c", "cust-p"}
    assert want["agent"][who["through"]].handling_ms == HOUR_MS  # known from the look-back only


@pytest.mark.parametrize("seed", [1, 2])
async def test_parts_resumed_from_the_cursor_equal_the_full_pass_on_trimmed_streams(
    driven: tuple[Store, list[float], int], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The roll-up in parts, each resuming from the items the one before
    still followed: every part's sums are the full pass's over the part,
    with the streams trimmed to the first part resumed (less the clock
    margin), so none of the look-back is read from them."""
    store, clock, start = driven
    monkeypatch.setattr(rollup, "PAGE", 23)
    await _history(store, clock, start, seed)
    await ids_from_ts(store)
    bounds = [start - HOUR_MS, start, start + 20 * MIN, start + 45 * MIN, start + HOUR_MS]
    want = []
    for lo, hi in itertools.pairwise(bounds):
        tracker, attrs = await compute_range(store, lo, hi)
        want.append(summarise(tracker, lo, hi, attrs))
    _, resume = await rollup.roll_part(store, bounds[0], bounds[1], None, None)
    assert resume  # items open across the hour's start: prefed from their histories
    k = store.keys
    for key in (k.event_stream, k.status_stream):
        await store.redis.xtrim(key, minid=f"{start - history.MARGIN_MS}-0", approximate=False)
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds[1:]), start=1):
        got, resume = await rollup.roll_part(store, lo, hi, None, resume)
        assert sorted(got) == sorted(want[i]), i
        for dim in want[i]:
            assert got[dim] == want[i][dim], (i, dim)
    # without the cursor, the trimmed look-back is missed (what the test tells apart)
    lost = await roll_range(store, bounds[1], bounds[2])
    assert lost != want[1]


async def test_the_task_rolls_parts_into_the_hour_and_trims_to_its_cursor(
    driven: tuple[Store, list[float], int],
) -> None:
    """`Rollup` with 15-minute parts: the hour's value is the sum of its
    parts, the cursor moves with each, and the streams are trimmed to the
    cursor (less the clock margin) when the retention is short."""
    store, clock, start = driven
    await _history(store, clock, start, 4)
    await ids_from_ts(store)
    start -= start % HOUR_MS  # the hour holding the history's own
    quarters = [start + i * 15 * MIN for i in range(5)]
    want: rollup.Rolled = {}
    for lo, hi in itertools.pairwise(quarters):
        tracker, attrs = await compute_range(store, lo, hi)
        rollup.merge(want, summarise(tracker, lo, hi, attrs))
    k = store.keys
    await store.redis.hset(k.kpi_state, "rolled", start - HOUR_MS)
    task = Rollup(store, retention_days=0.0001, step_minutes=15)
    # (the clock stays where the history left it: the agents' views, which
    # seed the status of one that never changed, are as of then)
    assert await task.run_once() >= 8
    state = await store.redis.hgetall(k.kpi_state)
    rolled = int(state[b"rolled"])
    assert rolled == int(state[b"open_at"]) >= start + HOUR_MS
    got = (await rollup.read_rollups(store, start, start + HOUR_MS))[start]
    assert sorted(got) == sorted(want)
    for dim in want:
        assert got[dim] == want[dim], dim
    first = await store.redis.xrange(k.event_stream, count=1)
    assert int(first[0][0].split(b"-")[0]) >= rolled - history.MARGIN_MS
    assert int(state[b"trimmed"]) == rolled


async def test_the_trim_keeps_the_clock_margin_it_is_given(
    driven: tuple[Store, list[float], int],
) -> None:
    """`Rollup(margin_ms=...)` (PRESENCE_CLOCK_MARGIN_SECONDS) trims the
    streams to that long behind the cursor, not a fixed 5 minutes: what is
    older goes, what lies inside the margin stays."""
    store, _, start = driven
    k = store.keys
    rolled = start + 20 * MIN
    await store.redis.delete(k.event_stream, k.status_stream)  # only the entries below
    for key in (k.event_stream, k.status_stream):
        for back in (90_000, 45_000, 15_000):  # entries this long before the cursor
            await store.redis.xadd(key, {"x": "1"}, id=f"{rolled - back}-0")
    task = Rollup(store, retention_days=0.0001, margin_ms=30_000)
    await task.trim(rolled + 10 * MIN, rolled, resumable=True)
    for key in (k.event_stream, k.status_stream):
        ids = [int(i.split(b"-")[0]) for i, _ in await store.redis.xrange(key)]
        assert ids == [rolled - 15_000], key
    assert int(await store.redis.hget(k.kpi_state, "trimmed")) == rolled


async def test_the_events_report_streams_them_in_the_order_of_the_whole_read(
    driven: tuple[Store, list[float], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/reports/events` read page by page (`replay.ordered`) gives the
    events `history.load` gives in one piece, in its order; its JSON and
    CSV bodies, written in chunks, parse back to those rows, cut at
    `MAX_EVENTS` with ``truncated``."""
    store, clock, start = driven
    await _history(store, clock, start, 5)
    await ids_from_ts(store)
    lo, hi = start - 3 * HOUR_MS, start + HOUR_MS
    want = await history.load(store, lo, hi)
    got = [e async for e in replay.ordered(store, lo, hi, page=23)]
    assert len(got) > 200 and got == want
    utc = ZoneInfo("UTC")
    monkeypatch.setattr(reports, "MAX_EVENTS", 150)
    monkeypatch.setattr(reports, "STREAM_ROWS", 40)
    head = reports._head("events", lo, hi + 1, utc, "events")
    body = b"".join(
        [c async for c in reports._json_chunks(head, reports._event_rows(store, lo, hi + 1, utc))]
    )
    parsed = orjson.loads(body)
    assert parsed["truncated"] is True and parsed["columns"] == list(reports.EVENT_COLUMNS)
    assert [(r["ts"], r["ev"], r["work"]) for r in parsed["rows"]] == [
        (e.ts, e.ev, e.work) for e in want[:150]
    ]
    text = b"".join(
        [
            c
            async for c in reports._csv_chunks(
                reports.EVENT_COLUMNS, reports._event_rows(store, lo, hi + 1, utc)
            )
        ]
    )
    lines = text.decode("utf-8").split("\r\n")
    assert lines[0] == "\ufefftime,ts,ev,work,agent,queue,channel,details" and lines[-1] == ""
    assert len(lines) == 152 and lines[1].split(",")[1] == str(want[0].ts)


async def _write_traffic(
    client: AsyncRedis,
    cid: str,
    hour: int,
    minutes: int,
    per_s: float,
    extra: tuple[tuple[int, dict[str, str]], ...] = (),
) -> None:
    """`minutes` of traffic from `hour` on, `per_s` items a second, straight
    into the streams (ids = ts): each item created, answered 10 s later and
    completed a minute after; and the routing events `extra` (ts, fields)."""
    k = Keys(cid)
    pipe = client.pipeline(transaction=False)
    n = int(minutes * 60 * per_s)
    entries = []
    for i in range(n):
        t = hour + int(i * 1000 / per_s)
        w, q, c = f"w{i}", QUEUES[i % 2], CHANNELS[i % 3]
        agent = AGENTS[i % len(AGENTS)]
        entries += [
            (t, {"ev": "create", "work": w, "queue": q, "channel": c}),
            (t + 10_000, {"ev": "accept", "work": w, "agent": agent, "queue": q, "channel": c}),
            (t + 70_000, {"ev": "complete", "work": w, "agent": agent, "queue": q, "channel": c}),
        ]
    entries += list(extra)
    for ts, f in sorted(entries, key=lambda e: e[0]):
        pipe.xadd(k.event_stream, {**f, "ts": str(ts)}, id=f"{ts}-*")
    for a in AGENTS:
        f = {
            "agent": a,
            "status": "Available",
            "reason": "",
            "prev": "Offline",
            "prev_since": str(hour - HOUR_MS),
        }
        pipe.xadd(k.status_stream, {**f, "ts": str(hour + 1)}, id=f"{hour + 1}-*")
    await pipe.execute()


async def _peaks_by_length(
    redis_server: str, prefix: str, handled: Callable[[Store, int], Awaitable[int]]
) -> dict[int, int]:
    """The peak of traced memory of `handled` (a read of the hour; it
    returns how many items that read found handled) over ten minutes of
    traffic in an hour and over forty at the same rate, by minutes."""
    client = AsyncRedis.from_url(redis_server)
    hour = int(time.time() * 1000) - 5 * HOUR_MS
    hour -= hour % HOUR_MS
    peaks = {}
    cids = []
    try:
        for minutes in (10, 40):
            cid = prefix + uuid.uuid4().hex[:8]
            cids.append(cid)
            await _write_traffic(client, cid, hour, minutes, 2.0)
            store = Store(client, cid, clock=lambda: (hour + 2 * HOUR_MS) / 1000)
            tracemalloc.start()
            try:
                n = await handled(store, hour)
                peaks[minutes] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert n == minutes * 60 * 2
        return peaks
    finally:
        for cid in cids:
            await client.delete(*[key async for key in client.scan_iter(match=Keys(cid).prefix + "*")])
        await client.aclose()


async def test_the_roll_up_s_memory_follows_the_rate_not_the_hour(
    redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten minutes of traffic and forty at the same rate: rolled up, the
    second holds no more at its peak (the full pass held four times as much)."""
    # a page well below ten minutes' entries (the default, 5000, is more
    # than the shorter hour's, and then the page is what the peak measures)
    monkeypatch.setattr(rollup, "PAGE", 500)

    async def handled(store: Store, hour: int) -> int:
        settings = await history.settings(store)  # the same for both lengths: not what the peak compares
        tracemalloc.reset_peak()
        rolled = await Rollup(store, retention_days=31).roll_hour(hour, settings, day=False)
        return rolled["center"][""].handled

    peaks = await _peaks_by_length(redis_server, "rm", handled)
    assert peaks[40] < 1.5 * peaks[10], peaks


async def test_a_change_read_later_than_the_fold_lag_reads_the_hour_again(
    redis_server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A status change whose entry id is two minutes after its ``ts`` (its
    server's clock behind Redis's): the roll-up folded that agent's time
    past it already, so it reads the hour again, folding the clock margin
    behind, and is exact."""
    monkeypatch.setattr(rollup, "PAGE", 50)
    client = AsyncRedis.from_url(redis_server)
    cid = "rl" + uuid.uuid4().hex[:8]
    k = Keys(cid)
    hour = int(time.time() * 1000) - 5 * HOUR_MS
    hour -= hour % HOUR_MS
    try:
        await _write_traffic(client, cid, hour, 40, 0.2)
        late = hour + 20 * MIN
        f = {
            "agent": AGENTS[0],
            "status": "Break",
            "reason": "",
            "prev": "Available",
            "prev_since": str(hour + 1),
        }
        await client.xadd(k.status_stream, {**f, "ts": str(late)}, id=f"{late + 2 * MIN}-*")
        back = hour + 30 * MIN
        f = {
            "agent": AGENTS[0],
            "status": "Available",
            "reason": "",
            "prev": "Break",
            "prev_since": str(late),
        }
        await client.xadd(k.status_stream, {**f, "ts": str(back)}, id=f"{back}-*")
        store = Store(client, cid, clock=lambda: (hour + 2 * HOUR_MS) / 1000)
        tracker, attrs = await compute_range(store, hour, hour + HOUR_MS)
        want = summarise(tracker, hour, hour + HOUR_MS, attrs)
        with caplog.at_level("INFO", logger="presence.kpi"):
            got = await roll_range(store, hour, hour + HOUR_MS)
        assert "read again" in caplog.text
        assert "not exact" not in caplog.text
        assert got == want
        assert want["agent"][AGENTS[0]].status_ms["Break"] == 10 * MIN
    finally:
        await client.delete(*[key async for key in client.scan_iter(match=k.prefix + "*")])
        await client.aclose()


@pytest.mark.parametrize("first", ["transfer", "offer"])
async def test_an_item_accepted_before_the_look_back_keeps_its_handle_time_across_pages(
    redis_server: str, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """An item accepted seven hours before the hour (before its look-back)
    whose events in the hour are a transfer or an offer and, pages later, a
    completion with no new accept: its handle time comes from its own
    record (``accepted_at``), as the full pass takes it, though the tracker
    met the item a page before it needed it. (Fails without reading it then
    for the transfer, whose fact keeps the item followed; an offer leaves
    none, so the item is forgotten at the next fold and met again.)"""
    monkeypatch.setattr(rollup, "PAGE", 20)
    client = AsyncRedis.from_url(redis_server)
    cid = "ra" + uuid.uuid4().hex[:8]
    k = Keys(cid)
    hour = int(time.time() * 1000) - 5 * HOUR_MS
    hour -= hour % HOUR_MS
    try:
        accepted = hour - 7 * HOUR_MS
        await client.hset(k.work("old"), mapping={"created": accepted - MIN, "accepted_at": accepted})
        f = {"work": "old", "agent": AGENTS[0], "queue": "support", "channel": "chat"}
        met, done = hour + 5 * MIN, hour + 5 * MIN + 20_000  # within a fold lag, pages apart
        old = ((met, {**f, "ev": first}), (done, {**f, "ev": "complete"}))
        await _write_traffic(client, cid, hour, 20, 0.5, old)
        store = Store(client, cid, clock=lambda: (hour + 2 * HOUR_MS) / 1000)
        tracker, attrs = await compute_range(store, hour, hour + HOUR_MS)
        want = summarise(tracker, hour, hour + HOUR_MS, attrs)
        got = await roll_range(store, hour, hour + HOUR_MS)
        assert got == want
        handled = [f for f in tracker.facts if f.kind == "handled" and f.work == "old"]
        assert [f.handle_ms for f in handled] == [done - accepted]
    finally:
        await client.delete(*[key async for key in client.scan_iter(match=k.prefix + "*")])
        await client.aclose()


@pytest.mark.parametrize("seed", [1, 4])
async def test_time_bucket_reports_read_as_streamed_equal_the_full_pass(
    driven: tuple[Store, list[float], int], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The KPI report by 15 minutes, hour and day, and the charts' rows, read
    page by page and folded as read: each bucket's facts and agent time as
    the full pass sums them, a range starting and ending inside a bucket too."""
    store, clock, start = driven
    monkeypatch.setattr(rollup, "PAGE", 23)
    await _history(store, clock, start, seed)
    tz = ZoneInfo("Asia/Kolkata")  # a half-hour offset: its hours are not UTC's
    for lo, hi in ((start, start + HOUR_MS), (start - 7 * MIN, start + 52 * MIN)):
        tracker, attrs = await compute_range(store, lo, hi)
        for group in ("15m", "hour", "day"):
            want = bucket_rows(tracker, lo, hi, group, tz)
            assert await reports.kpis_from_events(store, lo, hi, group, tz) == want, group
        rows = bucket_rows(tracker, lo, hi, "15m", tz)
        assert sum(r["handled"] for r in rows) and sum(r["logged_in_time"] for r in rows)
        for group in ("customer", "type", "source"):
            by = summarise(tracker, lo, hi, attrs).get(group, {})
            want_rows = reports.dimension_rows(group, by)
            assert await reports.kpis_from_events(store, lo, hi, group, tz) == want_rows
        # the charts' one read: the dimensions and the quarter hours together
        buckets = reports.time_buckets(lo, hi, "15m", tz)
        rolled, sums = await rollup.roll_buckets(store, lo, hi, [b for b, _ in buckets])
        assert rolled == summarise(tracker, lo, hi, attrs)
        got = [reports.kpi_row("15m", label, a) for (_, label), a in zip(buckets, sums, strict=True)]
        assert got == rows


async def test_a_time_bucket_report_s_memory_follows_the_rate_not_the_range(
    redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten minutes of traffic and forty at the same rate, reported by 15
    minutes: the second holds no more at its peak (the full pass held about
    four times as much)."""
    monkeypatch.setattr(rollup, "PAGE", 500)

    async def handled(store: Store, hour: int) -> int:
        rows = await reports.kpis_from_events(store, hour, hour + HOUR_MS, "15m", ZoneInfo("UTC"))
        return sum(r["handled"] for r in rows)

    peaks = await _peaks_by_length(redis_server, "rb", handled)
    assert peaks[40] < 1.5 * peaks[10], peaks


async def test_a_roll_up_part_holds_about_its_own_minute_of_entries_at_its_peak(redis_server: str) -> None:
    """A one-minute part (the soak's) read from streams holding six minutes
    at 30 items a second: at its peak it holds little more than the part's
    own entries as redis-py reads them (a minute of items is followed until
    the part ends: `FOLD_LAG_MS`). Read in pages of 5,000 entries (a page
    of each stream, three copies of each entry while it is folded) with
    each event's names decoded afresh, it held 3.8 times as much (3.1 with
    the names interned), and its spike on top of the live tracker's recent
    items made the server's memory high-water mark (docs/RELIABILITY.md, rss16)."""
    client = AsyncRedis.from_url(redis_server)
    hour = int(time.time() * 1000) - 5 * HOUR_MS
    hour -= hour % HOUR_MS
    cid = "rp" + uuid.uuid4().hex[:8]
    try:
        await _write_traffic(client, cid, hour, 6, 30.0)
        store = Store(client, cid, clock=lambda: (hour + 2 * HOUR_MS) / 1000)
        settings = await history.settings(store)
        lo, hi = hour + 3 * MIN, hour + 4 * MIN
        tracemalloc.start()
        try:
            raw = await client.xrange(Keys(cid).event_stream, min=f"{lo}-0", max=f"{hi - 1}-{replay.MAX_SEQ}")
            entries = tracemalloc.get_traced_memory()[0]
            del raw
            entries -= tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            rolled, _ = await rollup.roll_part(store, lo, hi, settings, [])
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert rolled["center"][""].handled == 30 * 60  # those completed in the part
        assert peak < 1.6 * entries, (peak, entries)
    finally:
        await client.delete(*[key async for key in client.scan_iter(match=Keys(cid).prefix + "*")])
        await client.aclose()
