"""Business hours against a real Redis, on a driven clock: intake outside hours
follows the queue's rule (keep queuing, overflow to a named queue, refuse voice
with the message the IVR speaks), the wallboard figures say a queue is closed,
and service level and ASA leave out the time a queue was closed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from redis.asyncio import Redis

from presence.center import parse_center, parse_queue
from presence.kpi.events import parse_events
from presence.kpi.facts import Settings
from presence.kpi.tracker import Tracker
from presence.store import ScriptError, Store, new_work_id
from tests.harness import ServerProcess, post_work, supervisor, token
from tests.helpers import open_case
from tests.integration import channels_http
from tests.integration.conftest import ServerFactory

TOKYO = ZoneInfo("Asia/Tokyo")
OFFICE = {
    "time_zone": "Asia/Tokyo",
    "hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "open": "09:00", "close": "18:00"}],
    "holidays": ["2026-12-31"],
}


def at(*args: int) -> float:
    return datetime(*args, tzinfo=TOKYO).timestamp()  # type: ignore[misc]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def setup(redis_server: str) -> AsyncIterator[tuple[Store, Clock]]:
    client = Redis.from_url(redis_server)
    clock = Clock(at(2026, 12, 1, 20, 0))  # a Tuesday evening in Tokyo: closed
    store = Store(client, f"hours{uuid.uuid4().hex[:8]}", clock)
    await store.sync_center(
        parse_center(
            {
                "queues": [
                    {"name": "keep", **OFFICE},
                    {"name": "day", **OFFICE, "after_hours": "overflow", "after_hours_queue": "night"},
                    {
                        "name": "phones",
                        **OFFICE,
                        "after_hours": "refuse",
                        "closed_message": "本日の受付は終了しました。",
                    },
                    {"name": "night"},
                ],
                "agents": [{"id": "alice", "queues": ["keep", "day", "phones", "night"]}],
            }
        )
    )
    yield store, clock
    await client.aclose()


SVC = {"Authorization": f"Bearer {token('service', 'pbx')}"}


# the suite's keep-alive client (channels_http), not a new client per call
def put(server: ServerProcess, path: str, body: object) -> httpx.Response:
    return channels_http.put(f"{server.http}{path}", json=body, headers=SVC)


def post(server: ServerProcess, path: str, body: object) -> httpx.Response:
    return channels_http.post(f"{server.http}{path}", json=body, headers=SVC)


def get(server: ServerProcess, path: str) -> httpx.Response:
    return channels_http.get(f"{server.http}{path}", headers=SVC)


def form(server: ServerProcess, fields: dict[str, str]) -> httpx.Response:
    headers = {"Accept": "application/json"}
    return channels_http.post(f"{server.http}/forms/case", data=fields, headers=headers)


async def waiting_in(store: Store, queue: str) -> list[str]:
    return [x.decode() for x in await store.redis.zrange(store.keys.queue_waiting(queue), 0, -1)]


async def test_closed_queues_follow_their_rules(setup: tuple[Store, Clock]) -> None:
    store, clock = setup
    kept = await store.intake_work(new_work_id(), "keep", "email", 0, {}, {})
    assert kept.queue == "keep" and await waiting_in(store, "keep") == [kept.work_id]
    moved = await store.intake_work(new_work_id(), "day", "chat", 0, {}, {})
    assert moved.queue == "night" and await waiting_in(store, "night") == [moved.work_id]
    assert (await store.get_work(moved.work_id))["queue"] == "night"  # type: ignore[index]
    with pytest.raises(ScriptError) as refused:
        await store.intake_work(new_work_id(), "phones", "voice", 0, {}, {})
    assert refused.value.code == "closed" and refused.value.field == "queue"
    assert refused.value.message == "本日の受付は終了しました。"
    assert await waiting_in(store, "phones") == []
    # only voice is refused: an email to the same queue keeps queuing
    mail = await store.intake_work(new_work_id(), "phones", "email", 0, {}, {})
    assert mail.queue == "phones"
    # a case opened through the channel adapters follows the same rule
    with pytest.raises(ScriptError):
        await open_case(store, "phones", "voice")
    case = await open_case(store, "day", "chat")
    assert case.woke == "night"

    # the wallboard's figures: closed until 9:00 tomorrow; a queue without hours says nothing
    stats = {q["name"]: q for q in await store.queue_stats()}
    assert stats["keep"]["open"] is False
    assert stats["keep"]["changes_at"] == int(at(2026, 12, 2, 9, 0) * 1000)
    assert "open" not in stats["night"]

    # in the morning the queues are open again: new items stay where they were sent
    clock.t = at(2026, 12, 2, 9, 30)
    assert (await store.intake_work(new_work_id(), "day", "chat", 0, {}, {})).queue == "day"
    assert (await store.intake_work(new_work_id(), "phones", "voice", 0, {}, {})).queue == "phones"
    stats = {q["name"]: q for q in await store.queue_stats()}
    assert stats["keep"]["open"] is True
    assert stats["keep"]["changes_at"] == int(at(2026, 12, 2, 18, 0) * 1000)


async def test_service_level_and_asa_leave_out_the_closed_time(setup: tuple[Store, Clock]) -> None:
    store, clock = setup
    # an email at 17:59:50 (10 s before closing), answered at 9:00:15 the next morning:
    # it waited 25 s of opening hours
    clock.t = at(2026, 12, 1, 17, 59, 50)
    wid = (await store.intake_work(new_work_id(), "keep", "email", 0, {}, {})).work_id
    clock.t = at(2026, 12, 2, 9, 0, 15)
    await store.conn_open("alice", "c1", 3600)
    await store.set_status("alice", "Available", "", "alice")
    await store.route(["keep"])
    await store.accept("alice", wid)
    events = [e for raw in await store.redis.xrange(store.keys.event_stream) for e in parse_events(raw[1])]
    accept = next(e for e in events if e.ev == "accept" and e.work == wid)
    closed = (at(2026, 12, 2, 9, 0) - at(2026, 12, 1, 18, 0)) * 1000
    assert int(accept.get("paused")) == closed
    tracker = Tracker(Settings(thresholds={"keep": 30}))
    tracker.feed(events)
    answered = next(f for f in tracker.facts if f.kind == "answered" and f.work == wid)
    assert answered.wait_ms == 25_000 and answered.within  # not 15 hours, and within the 30 s

    # an item that waits only within opening hours has no pause at all
    other = (await store.intake_work(new_work_id(), "keep", "chat", 0, {}, {})).work_id
    clock.t += 5
    await store.cancel(other, "caller gave up")
    events = [e for raw in await store.redis.xrange(store.keys.event_stream) for e in parse_events(raw[1])]
    gave_up = next(e for e in events if e.ev == "abandon" and e.work == other)
    assert gave_up.get("paused") == ""


async def test_the_admin_api_and_the_voice_adapter(server_factory: ServerFactory) -> None:
    # every day closed (a holiday on each of three days around today, in Tokyo): refused, overflowed
    today = datetime.now(TOKYO).date()
    days = [str(today.fromordinal(today.toordinal() + d)) for d in (-1, 0, 1)]
    center = f"""
[[queues]]
name = "support"

[[queues]]
name = "night"

[[queues]]
name = "phones"
time_zone = "Asia/Tokyo"
holidays = {days!r}
after_hours = "refuse"
closed_message = "We are closed today. Please call again tomorrow."
crm_url = "https://crm.example/customers/{{customer.id}}?case={{case.id}}"

[intake.voice]
queue = "phones"

[[agents]]
id = "alice"
queues = ["support", "phones", "night"]
"""
    server: ServerProcess = server_factory(center)
    r = post(server, "/api/v1/channels/voice/calls", {"call_id": "c-1", "from": "+81 3"})
    problem = r.json()
    assert r.status_code == 409, problem
    assert problem["type"].endswith("/problems/closed") and problem["field"] == "queue"
    assert problem["detail"] == "We are closed today. Please call again tomorrow."
    # the same over the plain work API
    r = post_work(server, channel="voice", queue="phones")
    assert r.status_code == 409 and r.json()["type"].endswith("/closed")

    # the admin API: a queue with hours, read back as written; bad input names the field
    body = {
        "time_zone": "Asia/Tokyo",
        "holidays": days,
        "after_hours": "overflow",
        "after_hours_queue": "night",
        "crm_url": "https://crm.example/c/{customer.id}",
    }
    r = put(server, "/api/v1/queues/support", body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (
        got["time_zone"] == "Asia/Tokyo" and got["holidays"] == days and got["after_hours_queue"] == "night"
    )
    assert got["hours"] == [] and got["crm_url"] == "https://crm.example/c/{customer.id}"
    r = post_work(server, channel="chat", queue="support")
    assert r.status_code == 201 and r.json()["queue"] == "night", r.text
    # a web form's case too (the form's queue is the file's first, support)
    r = form(server, {"name": "Aiko", "email": "aiko@example.jp", "message": "ログインできません"})
    assert r.status_code == 201 and r.json()["queue"] == "night", r.text
    bad = {"hours": [{"days": ["mon"], "open": "18:00", "close": "9:00"}]}
    r = put(server, "/api/v1/queues/support", bad)
    assert r.status_code == 422 and r.json()["field"] == "hours[0].close", r.text
    r = put(server, "/api/v1/queues/support", {"holidays": ["2026-02-30"]})
    assert r.status_code == 422 and r.json()["field"] == "holidays[0]", r.text
    r = put(server, "/api/v1/queues/support", {"time_zone": "Mars/Olympus"})
    assert r.status_code == 422 and r.json()["field"] == "time_zone", r.text
    r = put(server, "/api/v1/queues/support", {"crm_url": "https://x/{agent}"})
    assert r.status_code == 422 and r.json()["field"] == "crm_url"
    r = put(server, "/api/v1/queues/support", {"after_hours": "overflow", "after_hours_queue": "nowhere"})
    assert r.status_code == 422 and r.json()["field"] == "after_hours_queue", r.text

    # Prometheus: both closed; a queue without hours has no such gauge
    metrics = get(server, "/metrics").text
    # one deployment serves every center in this Redis (other tests' too): read this one's
    mine = f'presence_queue_open{{center="{server.center_id}"'
    lines = [ln for ln in metrics.splitlines() if ln.startswith(mine)]
    assert len(lines) == 2 and all(ln.endswith(" 0.0") for ln in lines), lines

    # the supervisors see both queues closed
    sup = await supervisor(server)
    queues = {q["name"]: q for q in sup.snapshot["queues"]}
    assert queues["phones"]["open"] is False and queues["support"]["open"] is False
    assert "open" not in queues["night"]
    parse_queue("x", {"crm_url": "https://crm.example/{case.id}"})
