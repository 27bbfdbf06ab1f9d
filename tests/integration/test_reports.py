"""Reports over a scripted history written straight into the streams.

The events carry known times (stream ids = their ts), so every figure is
known in advance; the CSV is checked byte for byte (BOM, CRLF, quoting,
Japanese text, a defused formula). The roll-up is run against the same
history and must give the same figures once the raw events are gone.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import msgpack
import pytest

from presence.kpi.rollup import HOUR_MS, Rollup, hour_name, read_rollups
from presence.store import Store
from presence.store.client import open_redis
from presence.store.keys import Keys
from tests.harness import ServerProcess, token
from tests.helpers import REDIS_MODES, http, redis_of, redis_sync


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


pytestmark = pytest.mark.in_process

T0 = int(datetime(2026, 1, 15, 9, 0, tzinfo=UTC).timestamp() * 1000)


def s(sec: float) -> int:
    return T0 + int(sec * 1000)


EVENTS: list[tuple[int, dict[str, str]]] = []
STATUS: list[tuple[int, dict[str, str]]] = []


def ev(t: float, kind: str, work: str, agent: str = "", queue: str = "", channel: str = "", **x: str) -> None:
    fields = {"ev": kind, "work": work, "agent": agent, "queue": queue, "channel": channel, **x}
    EVENTS.append((s(t), {k: v for k, v in fields.items() if v != ""}))


def status(t: float, agent: str, st: str, prev: str, prev_since: float) -> None:
    STATUS.append(
        (s(t), {"agent": agent, "status": st, "reason": "", "prev": prev, "prev_since": str(s(prev_since))})
    )


status(0, "alice", "Available", "Offline", -3600)
status(50, "bob", "Available", "Away", -60)
ev(10, "create", "w1", queue="support", channel="chat", priority="0")
ev(25, "accept", "w1", "alice", "support", "chat", via="accept")
ev(100, "create", "w2", queue="support", channel="voice", priority="0")
ev(130, "abandon", "w2", queue="support", channel="voice", reason="hangup")
ev(200, "create", "w3", queue="billing", channel="email", priority="0")
ev(260, "accept", "w3", "bob", "billing", "email", via="accept")
ev(325, "complete", "w1", "alice", "support", "chat", disposition="解決")
ev(500, "complete", "w3", "bob", "billing", "email")

ITEMS = {
    "w1": ("chat", {"customer": {"name": "山田 花子"}, "payload": {"type": "請求", "source": "web"}}),
    "w2": ("voice", {"customer": {"name": 'ACME, "Ltd"'}, "payload": {"type": "=cmd"}}),
    "w3": ("email", {"customer": {"name": "山田 花子"}, "payload": {"type": "請求"}}),
}


@pytest.fixture
def history(server: ServerProcess, redis_server: str) -> str:
    """Write the scripted history into the server's center; returns its id."""
    cid = server.center_id
    k = Keys(cid)
    r = redis_sync(redis_server)
    try:
        # The server's own roll-up runs once at start; keep it from running
        # again (it would trim these January events, far past the retention).
        # It writes "trimmed" before it releases its lock: wait for both, or
        # the lock is taken while the server still holds it.
        deadline = time.monotonic() + 10
        while not r.hexists(k.kpi_state, "trimmed") or not r.set(
            k.kpi_lock("rollup"), "test", px=120_000, nx=True
        ):
            assert time.monotonic() < deadline, "the server's first roll-up did not finish"
            time.sleep(0.05)
        r.delete(k.kpi_state, k.event_stream, k.status_stream)
        # the items below are kept (January is past the default 90-day item
        # retention, which would send every report to the roll-ups)
        r.hset(k.rules, "retention_ms", 0)
        r.delete(k.settings_version)  # the scripts' kept copy of the rules (_lib_config.lua)
        for ts, f in sorted(EVENTS, key=lambda e: e[0]):
            r.xadd(k.event_stream, {**f, "ts": str(ts)}, id=f"{ts}-{sum(1 for e in EVENTS if e[0] < ts)}")
        for ts, f in STATUS:
            r.xadd(k.status_stream, {**f, "ts": str(ts)}, id=f"{ts}-0")
        for wid, (channel, data) in ITEMS.items():
            r.hset(k.work(wid), mapping={"id": wid, "channel": channel, "data": msgpack.packb(data)})
    finally:
        r.close()
    return cid


def get(server: ServerProcess, path: str, role: str = "supervisor", **params: str) -> httpx.Response:
    return http().get(
        f"{server.http}{path}",
        params=params,
        headers={"Authorization": f"Bearer {token(role, 'boss')}"},
        timeout=30,
    )


RANGE = {"from": "2026-01-15T09:00:00Z", "to": "2026-01-15T10:00:00Z"}


def test_kpis_by_queue_exact(server: ServerProcess, history: str) -> None:
    r = get(server, "/api/v1/reports/kpis", group_by="queue", **RANGE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["from"], body["to"], body["source"]) == (T0, T0 + HOUR_MS, "events")
    rows = {row["queue"]: row for row in body["rows"]}
    sup, bil = rows["support"], rows["billing"]
    # support: w1 answered in 15 s (within 20), w2 abandoned after 30 s
    assert (sup["offered"], sup["answered"], sup["abandoned"]) == (2, 1, 1)
    assert (sup["service_level"], sup["asa"], sup["aht"], sup["abandonment_rate"], sup["fcr"]) == (
        0.5,
        15.0,
        300.0,
        0.5,
        1.0,
    )
    # billing: w3 answered after 60 s, handled 240 s
    assert (bil["offered"], bil["answered"], bil["service_level"], bil["asa"], bil["aht"]) == (
        1,
        1,
        0.0,
        60.0,
        240.0,
    )
    # alice, member of both queues: available 3600 s, handling 300 s
    center = get(server, "/api/v1/reports/kpis", group_by="center", **RANGE).json()["rows"][0]
    assert center["handle_time"] == 300 + 240
    assert center["available_time"] == 3600 + 3550
    assert center["occupancy"] == 540 / 7150


def test_counts_by_customer_csv_byte_for_byte(server: ServerProcess, history: str) -> None:
    r = get(server, "/api/v1/reports/kpis", group_by="customer", format="csv", **RANGE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="presence-kpis-customer-2026-01-15.csv"'
    expected = (
        "\ufeff"
        "customer,offered,answered,abandoned,answered_in_sl,abandoned_in_sl,service_level,asa,"
        "max_answer_wait,aht,handled,abandonment_rate,fcr,transfers,csat,csat_count,occupancy,"
        "utilisation,handle_time,available_time,logged_in_time\r\n"
        '"ACME, ""Ltd""",1,0,1,0,0,0,,0,,0,1,,0,,0,,,0,0,0\r\n'
        "山田 花子,2,2,0,1,0,0.5,37.5,60,270,2,0,1,0,,0,,,0,0,0\r\n"
    ).encode()
    assert r.content == expected


def test_counts_by_type_and_source(server: ServerProcess, history: str) -> None:
    rows = get(server, "/api/v1/reports/kpis", group_by="type", **RANGE).json()["rows"]
    assert {r["type"]: r["offered"] for r in rows} == {"請求": 2, "=cmd": 1}
    csv = get(server, "/api/v1/reports/kpis", group_by="type", format="csv", **RANGE).content.decode(
        "utf-8-sig"
    )
    assert "\r\n'=cmd,1,0,1," in csv  # a formula is never handed to Excel
    rows = get(server, "/api/v1/reports/kpis", group_by="source", **RANGE).json()["rows"]
    # no source given: the channel stands in
    assert {r["source"]: (r["offered"], r["handled"]) for r in rows} == {
        "web": (1, 1),
        "voice": (1, 0),
        "email": (1, 1),
    }


def test_by_hour_day_channel_agent(server: ServerProcess, history: str) -> None:
    rows = get(
        server, "/api/v1/reports/kpis", group_by="hour", **{**RANGE, "to": "2026-01-15T11:00:00Z"}
    ).json()["rows"]
    assert [(r["hour"], r["offered"], r["handled"]) for r in rows] == [
        ("2026-01-15T09:00+00:00", 3, 2),
        ("2026-01-15T10:00+00:00", 0, 0),
    ]
    day = get(
        server, "/api/v1/reports/kpis", group_by="day", **{"from": "2026-01-15", "to": "2026-01-16"}
    ).json()
    assert [(r["day"], r["offered"], r["answered"]) for r in day["rows"]] == [("2026-01-15", 3, 2)]
    ch = {
        r["channel"]: r["offered"]
        for r in get(server, "/api/v1/reports/kpis", group_by="channel", **RANGE).json()["rows"]
    }
    assert ch == {"chat": 1, "voice": 1, "email": 1}
    agents = get(server, "/api/v1/reports/agents", **RANGE).json()
    by = {r["agent"]: r for r in agents["rows"]}
    assert (by["alice"]["handled"], by["alice"]["handle_time"], by["alice"]["time:Available"]) == (
        1,
        300,
        3600,
    )
    assert (by["bob"]["time:Away"], by["bob"]["time:Available"]) == (50, 3550)


def test_events_export(server: ServerProcess, history: str) -> None:
    r = get(server, "/api/v1/reports/events", format="csv", **RANGE)
    assert r.status_code == 200
    text = r.content.decode("utf-8")
    assert text.startswith("\ufefftime,ts,ev,work,agent,queue,channel,details\r\n")
    assert "disposition=解決" in text
    body = get(server, "/api/v1/reports/events", **RANGE).json()
    assert [e["ev"] for e in body["rows"]][:3] == ["status", "create", "accept"]
    assert len(body["rows"]) == len(EVENTS) + len(STATUS)


def test_refusals(server: ServerProcess, history: str) -> None:
    assert get(server, "/api/v1/reports/kpis", role="agent").status_code == 403
    assert http().get(f"{server.http}/api/v1/reports/kpis", timeout=10).status_code == 401
    assert get(server, "/api/v1/reports/kpis", role="service").status_code == 200
    for params, field in (
        ({"group_by": "planet"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-15", "to": "2026-01-14"}, "to"),
        ({"from": "2020-01-01", "to": "2026-01-14"}, "to"),
        ({"format": "xlsx"}, "format"),
    ):
        r = get(server, "/api/v1/reports/kpis", **params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["field"] == field


async def test_rollup_outlives_the_raw_events(server: ServerProcess, history: str, redis_server: str) -> None:
    client = await open_redis(redis_server)
    try:
        store = Store(client, history, clock=lambda: (T0 + 3 * HOUR_MS) / 1000)
        roll = Rollup(store, retention_days=31)
        # (the fixture holds the roll-up lock: drive the hours by hand)
        await roll.roll_hour(T0)
        await roll.roll_hour(T0 + HOUR_MS)
        hours = await read_rollups(store, T0, T0 + 2 * HOUR_MS)
        assert sorted(hours) == [T0, T0 + HOUR_MS]
        assert hours[T0]["queue"]["support"].offered == 2
        assert hours[T0]["customer"]["山田 花子"].answered == 2
        assert await client.exists(store.keys.kpi_day("20260115")) == 1
        before = {r["queue"]: r for r in get(server, "/api/v1/reports/kpis", **RANGE).json()["rows"]}
        # the raw events of the range are now past the retention: the roll-up answers
        await client.hset(store.keys.kpi_state, "trimmed", T0 + 2 * HOUR_MS)
        body = get(server, "/api/v1/reports/kpis", **RANGE).json()
        assert body["source"] == "rollup"
        after = {r["queue"]: r for r in body["rows"]}
        for q in ("support", "billing"):
            for col in (
                "offered",
                "answered",
                "abandoned",
                "service_level",
                "asa",
                "aht",
                "fcr",
                "occupancy",
            ):
                assert after[q][col] == before[q][col], (q, col)
        by_type = get(server, "/api/v1/reports/kpis", group_by="type", format="csv", **RANGE)
        assert "請求,2,2,0" in by_type.content.decode("utf-8-sig")
        day = get(server, "/api/v1/reports/kpis", group_by="day", **RANGE).json()
        assert [(r["day"], r["offered"]) for r in day["rows"]] == [("2026-01-15", 3)]
        assert get(server, "/api/v1/reports/events", **RANGE).status_code == 422
        # what needs the raw events says from when they are gone, and what to ask instead
        quarter = get(server, "/api/v1/reports/kpis", group_by="15m", **RANGE)
        assert quarter.status_code == 422 and quarter.json()["field"] == "group_by", quarter.text
        assert "no longer reaches back to 2026-01-15T" in quarter.json()["detail"], quarter.text
        assert "use hour" in quarter.json()["detail"]
        charts = get(server, "/api/v1/reports/charts", **RANGE)
        assert charts.status_code == 422 and charts.json()["field"] == "from", charts.text
        assert "no longer reaches back to 2026-01-15T" in charts.json()["detail"], charts.text
    finally:
        await client.aclose()


async def test_rollup_run_once_and_trim(redis_server: str) -> None:
    cid = "r" + uuid.uuid4().hex[:12]
    k = Keys(cid)
    client = await open_redis(redis_server)
    try:
        for ts, f in sorted(EVENTS, key=lambda e: e[0]):
            await client.xadd(k.event_stream, {**f, "ts": str(ts)}, id=f"{ts}-*")
        for ts, f in STATUS:
            await client.xadd(k.status_stream, {**f, "ts": str(ts)}, id=f"{ts}-*")
        clock = [(T0 + 3 * HOUR_MS) / 1000]
        store = Store(client, cid, clock=lambda: clock[0])
        roll = Rollup(store, retention_days=1)
        assert await roll.run_once() == 2  # 09:00 and 10:00 are closed; 11:00 is not
        assert await client.hget(k.kpi_state, "rolled") == str(T0 + 2 * HOUR_MS).encode()
        assert await roll.run_once() == 0  # nothing new
        assert hour_name(T0) == "2026011509"
        assert (await read_rollups(store, T0, T0 + HOUR_MS))[T0]["center"][""].handled == 2
        assert await client.xlen(k.event_stream) == len(EVENTS)
        # 3 days on: the retention (1 day) has passed, but hours not yet
        # rolled up are never trimmed; once rolled up, they go
        clock[0] = (T0 + 3 * 86400_000) / 1000
        await roll.trim(store.now_ms(), T0 + 2 * HOUR_MS)
        assert await client.xlen(k.event_stream) == len(EVENTS)
        assert await roll.run_once(max_hours=100) == 3 * 24 - 3
        assert await client.xlen(k.event_stream) == 0
        assert await client.xlen(k.status_stream) == 0
        assert int(await client.hget(k.kpi_state, "trimmed") or 0) == T0 + 2 * 86400_000
        assert (await read_rollups(store, T0, T0 + HOUR_MS))[T0]["center"][""].offered == 3
    finally:
        await client.delete(*[key async for key in client.scan_iter(match=k.prefix + "*")])
        await client.aclose()
