"""Cases: notes (socket and HTTP), statuses, transfer to an agent and to a
queue with the handoff note and the whole history, the supervisor's
reassign / push / pull, call controls, and who may do what."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from presence.store import new_work_id
from tests.harness import ServerProcess, agent, available, get_work, post_work, supervisor, token
from tests.helpers import REDIS_MODES, redis_of
from tests.integration import channels_http


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


pytestmark = pytest.mark.in_process

SVC = {"Authorization": f"Bearer {token('service', 'crm')}"}


def http(server: ServerProcess, path: str, body: Any, who: dict[str, str] = SVC) -> httpx.Response:
    return channels_http.post(f"{server.http}{path}", json=body, headers=who, timeout=10)


def as_agent(aid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('agent', aid)}"}


def chat(server: ServerProcess, conv: str, text: str = "hello") -> str:
    r = http(server, "/api/v1/channels/chat/messages", {"conversation_id": conv, "text": text})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_notes_and_statuses(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    await available(alice)
    wid = chat(server, "n-1")
    await alice.expect("offer")
    await alice.request({"type": "offer.accept", "work_id": wid})
    first = await alice.expect("case.updated")
    assert first["case"]["status"] == "In progress" and first["case"]["first_response"]
    ok = await alice.request({"type": "work.note", "work_id": wid, "text": "Customer is a VIP"})
    assert ok["type"] == "ok" and ok["note"]["author"] == "alice"
    note = await alice.expect("work.note")
    assert note["note"]["text"] == "Customer is a VIP" and note["work_id"] == wid
    r = http(server, f"/api/v1/work/{wid}/comments", {"text": "CRM synced"})
    assert r.status_code == 201 and r.json()["author"] == "crm"
    assert (await alice.expect("work.note"))["note"]["text"] == "CRM synced"
    r = channels_http.get(f"{server.http}/api/v1/work/{wid}/comments", headers=as_agent("alice"))
    assert [c["text"] for c in r.json()["comments"]] == ["Customer is a VIP", "CRM synced"]
    # status over HTTP by the holder; the socket hears of it
    r = http(server, f"/api/v1/work/{wid}/status", {"status": "Waiting close"}, as_agent("alice"))
    assert r.status_code == 200 and r.json()["status"] == "Waiting close", r.text
    upd = await alice.expect("case.updated")
    assert upd["case"]["status"] == "Waiting close"
    r = http(server, f"/api/v1/work/{wid}/status", {"status": "Gone fishing"})
    assert r.status_code == 422 and r.json()["field"] == "status"
    # bob holds nothing: he may neither note nor change it
    for path, body in (
        (f"/api/v1/work/{wid}/comments", {"text": "x"}),
        (f"/api/v1/work/{wid}/status", {"status": "New"}),
    ):
        r = http(server, path, body, as_agent("bob"))
        assert r.status_code == 403 and r.json()["field"] == "work_id", r.text
    # nor read its notes or replies; an item that does not exist is a 404
    for what, words in (("comments", "the notes"), ("replies", "the replies")):
        r = channels_http.get(f"{server.http}/api/v1/work/{wid}/{what}", headers=as_agent("bob"))
        assert r.status_code == 403 and words in r.json()["detail"], r.text
        r = channels_http.get(f"{server.http}/api/v1/work/{new_work_id()}/{what}", headers=SVC)
        assert r.status_code == 404 and r.json()["type"].endswith("/not_found"), r.text
    bad = await alice.request({"type": "work.note", "work_id": wid, "text": ""})
    assert bad["type"] == "error" and bad["field"] == "text"
    bad = await alice.request({"type": "work.note", "work_id": "nope", "text": "x"})
    assert bad["type"] == "error" and bad["code"] == "not_found"
    item = get_work(server, wid)
    assert [c["text"] for c in item["case"]["comments"]] == ["Customer is a VIP", "CRM synced"]
    assert "note" in [h["ev"] for h in item["history"]]
    await alice.request({"type": "work.complete", "work_id": wid})


async def test_transfer_to_agent_carries_note_and_history(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    bob = await agent(server, "bob")
    await available(alice)
    wid = chat(server, "t-1", "my order is late")
    await alice.expect("offer")
    await alice.request({"type": "offer.accept", "work_id": wid})
    r = await alice.request(
        {"type": "work.transfer", "work_id": wid, "to_agent": "bob", "note": "over to you"}
    )
    assert r["type"] == "error" and r["field"] == "to_agent" and "not available" in r["message"], r
    await available(bob)
    r = await alice.request(
        {"type": "work.transfer", "work_id": wid, "to_agent": "bob", "note": "late order, refund ok"}
    )
    assert r == {**r, "type": "ok", "state": "offered"}, r
    gone = await alice.expect(lambda m: m["type"] == "work.updated" and m["work_id"] == wid)
    assert gone["state"] == "transferred"
    offer = await bob.expect("offer")
    assert offer["work_id"] == wid
    assert offer["handoff"] == {"from": "alice", "note": "late order, refund ok", "by": "agent:alice"}
    # a second tab (or a reconnect) sees the note in its snapshot
    tab = await agent(server, "bob")
    assert tab.snapshot["offers"][0]["handoff"]["note"] == "late order, refund ok"
    await tab.close()
    evs = [h["ev"] for h in offer["history"]]
    assert evs[:3] == ["create", "offer", "accept"] and "transfer" in evs
    assert offer["subject"] == "my order is late"
    await bob.request({"type": "offer.accept", "work_id": wid})
    upd = await bob.expect("case.updated")
    assert upd["case"]["owner"] == "bob"
    hist = get_work(server, wid)["history"]
    owners = [h["agent"] for h in hist if h["ev"] == "accept"]
    assert owners == ["alice", "bob"]
    assert any(h["ev"] == "transfer" and h["from"] == "alice" and h["to"] == "bob" for h in hist)
    # alice no longer holds it
    r = await alice.request({"type": "work.transfer", "work_id": wid, "to_queue": "billing", "note": "x"})
    assert r["type"] == "error" and r["code"] == "not_yours"
    r = await bob.request({"type": "work.transfer", "work_id": wid, "note": "x"})
    assert r["type"] == "error" and r["field"] == "to_agent"
    await bob.request({"type": "work.complete", "work_id": wid})


async def test_transfer_to_queue_and_supervisor_moves(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    bob = await agent(server, "bob")
    sup = await supervisor(server)
    await available(bob)
    wid = chat(server, "s-1", "billing question")
    await bob.expect("offer")
    await bob.request({"type": "offer.accept", "work_id": wid})
    # bob escalates to the billing queue (alice's)
    r = await bob.request(
        {"type": "work.transfer", "work_id": wid, "to_queue": "billing", "note": "needs billing"}
    )
    assert r["state"] == "queued", r
    item = get_work(server, wid)
    assert item["queue"] == "billing" and item["state"] == "queued" and item["position"] == 1
    await available(alice)
    offer = await alice.expect("offer")
    assert offer["handoff"]["note"] == "needs billing" and offer["handoff"]["from"] == "bob"
    assert any(h["ev"] == "transfer" for h in offer["history"])
    # the supervisor pulls it back from the offer, then pushes it to bob
    r = await sup.request({"type": "work.pull", "work_id": wid})
    assert r["type"] == "ok" and r["state"] == "queued", r
    assert (await alice.expect("offer.rescinded"))["work_id"] == wid
    await available(alice, "Away")
    r = await sup.request({"type": "work.push", "work_id": wid, "agent_id": "nobody"})
    assert r["type"] == "error" and r["field"] == "agent_id"
    r = await sup.request({"type": "work.push", "work_id": wid, "agent_id": "bob"})
    assert r["type"] == "ok" and r["state"] == "offered", r
    assert (await bob.expect("offer"))["work_id"] == wid
    await bob.request({"type": "offer.accept", "work_id": wid})
    # and reassigns it by force to alice with a note
    r = await sup.request(
        {"type": "work.reassign", "work_id": wid, "agent_id": "alice", "note": "alice knows them"}
    )
    assert r["type"] == "ok", r
    assert (await bob.expect(lambda m: m["type"] == "work.updated" and m["work_id"] == wid))[
        "state"
    ] == "transferred"
    offer = await alice.expect(
        lambda m: m["type"] == "offer" and m.get("handoff", {}).get("by") == "supervisor:sue"
    )
    assert offer["handoff"] == {"from": "bob", "note": "alice knows them", "by": "supervisor:sue"}
    await alice.request({"type": "offer.accept", "work_id": wid})
    r = await sup.request({"type": "work.push", "work_id": wid, "agent_id": "bob"})
    assert r["type"] == "error" and r["code"] == "conflict"
    # over HTTP too: pull it back to the queue, push needs a queued item
    r = http(server, f"/api/v1/work/{wid}/pull", {})
    assert r.status_code == 200 and r.json()["state"] == "queued", r.text
    r = http(server, f"/api/v1/work/{wid}/reassign", {"agent_id": "bob"}, as_agent("bob"))
    assert r.status_code == 403
    r = http(server, f"/api/v1/work/{wid}/push", {"agent_id": "bob"})
    assert r.status_code == 200, r.text
    await bob.expect("offer")
    r = http(server, f"/api/v1/work/{wid}/push", {"agent_id": "alice"})
    assert r.status_code == 409
    hist = [h["ev"] for h in get_work(server, wid)["history"]]
    for ev in ("transfer", "pull", "push", "reassign"):
        assert ev in hist, (ev, hist)


async def test_push_respects_capacity(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    sup = await supervisor(server)
    await available(alice)
    r = post_work(server, channel="voice", queue="billing")
    first = r.json()["id"]
    await alice.expect("offer")
    await available(alice, "Away")  # rescinds; alice stays signed in but not routable
    await alice.expect("offer.rescinded")
    r = await sup.request({"type": "work.push", "work_id": first, "agent_id": "alice"})
    assert r["type"] == "ok"
    await alice.request({"type": "offer.accept", "work_id": first})
    second = post_work(server, channel="voice", queue="billing").json()["id"]
    r = await sup.request({"type": "work.push", "work_id": second, "agent_id": "alice"})
    assert r["type"] == "error" and r["field"] == "agent_id" and r["code"] == "conflict", r
    # a call control on a non-call item is refused, naming the item
    r = await alice.request({"type": "call.control", "work_id": first, "action": "hold"})
    assert r["type"] == "error" and r["field"] == "work_id"
    r = await alice.request({"type": "call.control", "work_id": first, "action": "dance"})
    assert r["type"] == "error" and r["field"] == "action"
    await alice.request({"type": "work.complete", "work_id": first})
