"""Phone / CTI intake: IVR routing, the screen pop from the customer
directory, duplicate and malformed call events, and hang-ups (abandoned
while waiting; ended, then wrap-up, while in progress)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.harness import ServerProcess, agent, available, get_work, token
from tests.helpers import http
from tests.integration import channels_http
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.in_process

CENTER = """
[[queues]]
name = "support"
push_timeout = 30

[[queues]]
name = "billing"
push_timeout = 30

[intake.voice]
queue = "support"
ivr = { "1" = "support", "2" = "billing" }

[[agents]]
id = "alice"
queues = ["billing"]
extension = "sip:1001@pbx.local"

[[agents]]
id = "bob"
queues = ["support"]
"""

SVC = {"Authorization": f"Bearer {token('service', 'pbx')}"}


def post(server: ServerProcess, path: str, body: Any) -> httpx.Response:
    return http().post(f"{server.http}{path}", json=body, headers=SVC, timeout=10)


def call(server: ServerProcess, **body: Any) -> httpx.Response:
    return post(server, "/api/v1/channels/voice/calls", body)


async def test_call_routes_by_ivr_with_screen_pop(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    r = channels_http.put(
        f"{server.http}/api/v1/customers/c-42",
        json={"name": "山田 太郎", "phones": ["+81 3-1234-5678"], "tier": "gold"},
        headers=SVC,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    alice = await agent(server, "alice")
    await available(alice)
    r = call(server, call_id="call-1", to="+815000000", digits="2", **{"from": "+81312345678"})
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    assert r.json()["queue"] == "billing"
    offer = await alice.expect("offer")
    assert offer["work_id"] == wid
    assert offer["channel"] == "voice"
    assert offer["customer"]["id"] == "c-42" and offer["customer"]["tier"] == "gold"
    assert offer["payload"]["call_id"] == "call-1"
    item = get_work(server, wid)
    assert item["case"]["call_id"] == "call-1" and item["case"]["lead"] is False
    assert item["case"]["customer_id"] == "c-42" and item["case"]["status"] == "New"
    # the PBX retries the same event: nothing new
    again = call(server, call_id="call-1", to="+815000000", digits="2", **{"from": "+81312345678"})
    assert again.status_code == 200 and again.json()["id"] == wid
    assert again.json()["outcome"] == "duplicate"
    # accepted, then the caller hangs up: the agent is told and wraps up
    assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    r = post(server, "/api/v1/channels/voice/calls/call-1/hangup", {"reason": "caller hung up"})
    assert r.status_code == 200 and r.json()["outcome"] == "ended", r.text
    state = await alice.expect("call.state")
    assert state == {"type": "call.state", "work_id": wid, "state": "ended"}
    upd = await alice.expect(lambda m: m["type"] == "work.updated" and m["state"] == "wrapup")
    assert upd["work_id"] == wid
    assert get_work(server, wid)["state"] == "wrapup"
    ok = await alice.request({"type": "work.complete", "work_id": wid})
    assert ok["type"] == "ok"


async def test_hangup_while_waiting_is_abandoned(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    r = call(server, call_id="call-2", digits="9", **{"from": "+1 555 0100"})
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    assert r.json()["queue"] == "support"  # unknown digits: the default queue
    item = get_work(server, wid)
    assert item["state"] == "queued" and item["case"]["lead"] is True
    assert item["customer"] == {"phone": "+1 555 0100", "lead": True}
    r = post(server, "/api/v1/channels/voice/calls/call-2/hangup", {})
    assert r.json()["outcome"] == "abandoned", r.text
    item = get_work(server, wid)
    assert item["state"] == "abandoned"
    assert item["history"][-1]["ev"] == "abandon"
    # a second hang-up of the same call changes nothing
    assert post(server, "/api/v1/channels/voice/calls/call-2/hangup", {}).json()["outcome"] == "already"
    r = post(server, "/api/v1/channels/voice/calls/nope/hangup", {})
    assert r.status_code == 404 and r.json()["field"] == "call_id"


async def test_hangup_of_ringing_call_rescinds_the_offer(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    bob = await agent(server, "bob")
    await available(bob)
    wid = call(server, call_id="call-3", **{"from": "+15550101"}).json()["id"]
    assert (await bob.expect("offer"))["work_id"] == wid
    assert post(server, "/api/v1/channels/voice/calls/call-3/hangup", {}).json()["outcome"] == "abandoned"
    gone = await bob.expect("offer.rescinded")
    assert gone["work_id"] == wid and gone["reason"] == "abandoned"


async def test_malformed_calls_store_nothing(server: ServerProcess) -> None:
    cases = [
        ({"from": "+1555"}, "call_id"),
        ({"call_id": "x y", "from": "+1555"}, "call_id"),
        ({"call_id": "c9"}, "from"),
        ({"call_id": "c9", "from": "+1555", "digits": "12a"}, "digits"),
        ({"call_id": "c9", "from": "+1555", "priority": 1000}, "priority"),
        ({"call_id": "c9", "from": "+1555", "colour": "red"}, "colour"),
        ({"call_id": "c9", "from": "+1555", "skills": {"english": 11}}, "skills.english"),
    ]
    for body, field in cases:
        r = call(server, **body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == field, (body, r.json())
    r = channels_http.post(f"{server.http}/api/v1/channels/voice/calls", content=b"{nope", headers=SVC)
    assert r.status_code == 400
    r = channels_http.post(f"{server.http}/api/v1/channels/voice/calls", json={})
    assert r.status_code == 401
    # nothing was stored: the same call id is still new
    r = call(server, call_id="c9", **{"from": "+1555"})
    assert r.status_code == 201 and r.json()["outcome"] == "created"
