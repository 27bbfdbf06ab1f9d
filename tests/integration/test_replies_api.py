"""Replies from the panel: only the holder replies; the reply is kept on the
case and leaves as a signed ``reply`` webhook event; a second reply to the
customer's same message is refused with ``conflict`` unless confirmed; the
"being answered by" mark reaches the supervisors and the other tabs."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from tests.harness import ServerProcess, agent, available, get_work, supervisor, token
from tests.helpers import REDIS_MODES, free_port, redis_of
from tests.integration import channels_http
from tests.integration.conftest import ServerFactory
from tests.integration.test_webhooks import SECRET, Receiver


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


SVC = {"Authorization": f"Bearer {token('service', 'gw')}"}


def center(port: int) -> str:
    return f"""
[[queues]]
name = "support"

[[agents]]
id = "alice"
name = "Alice Andersen"
queues = ["support"]

[[agents]]
id = "bob"
queues = ["support"]

[[webhooks]]
name = "gateway"
url = "http://127.0.0.1:{port}/out"
secret = "{SECRET}"
events = ["reply"]
timeout = 1
max_backoff = 0.4
"""


def chat(server: ServerProcess, conv: str, text: str, mid: str) -> str:
    r = httpx.post(
        f"{server.http}/api/v1/channels/chat/messages",
        json={
            "conversation_id": conv,
            "message_id": mid,
            "from": {"id": "u1", "name": "Kenji"},
            "text": text,
        },
        headers=SVC,
        timeout=10,
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def as_agent(aid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('agent', aid)}"}


async def test_reply_is_kept_sent_and_never_doubled(server_factory: ServerFactory) -> None:
    port = free_port()
    rec = Receiver(port)
    try:
        server = server_factory(center(port))
        alice = await agent(server, "alice")
        tab = await agent(server, "alice")
        sup = await supervisor(server)
        await available(alice)
        wid = chat(server, "c-1", "where is my parcel?", "m1")
        await alice.expect("offer")
        # offered, not yet in hand: no reply, no composing
        r = await alice.request({"type": "work.reply", "work_id": wid, "text": "soon"})
        assert r["type"] == "error" and r["code"] == "conflict", r
        await alice.request({"type": "offer.accept", "work_id": wid})

        # composing: the supervisors and the other tab see "being answered by alice"
        ok = await alice.request({"type": "work.composing", "work_id": wid})
        assert ok["type"] == "ok" and ok["until_ms"] > 0, ok
        mark = await sup.expect("case.composing")
        assert mark == {
            **mark,
            "work_id": wid,
            "agent_id": "alice",
            "name": "Alice Andersen",
            "composing": True,
        }
        assert mark["subject"] == "where is my parcel?" and mark["until_ms"] == ok["until_ms"]
        assert (await tab.expect("case.composing"))["composing"] is True
        assert get_work(server, wid)["case"]["composing"] == "alice"
        # a wallboard opened meanwhile has the mark in its snapshot, as the event was
        late = await supervisor(server, "sam")
        assert late.snapshot["composing"] == [{**mark, "type": "case.composing"}], late.snapshot["composing"]
        await late.close()

        # bob does not hold it: he may neither compose nor reply
        bob = await agent(server, "bob")
        for msg in (
            {"type": "work.composing", "work_id": wid},
            {"type": "work.reply", "work_id": wid, "text": "x"},
        ):
            r = await bob.request(msg)
            assert r["type"] == "error" and r["code"] == "not_yours", r
        r = channels_http.post(
            f"{server.http}/api/v1/work/{wid}/replies", json={"text": "x"}, headers=as_agent("bob")
        )
        assert r.status_code == 403 and r.json()["field"] == "work_id", r.text
        # nor may a supervisor or a service: only the holder replies
        r = channels_http.post(f"{server.http}/api/v1/work/{wid}/replies", json={"text": "x"}, headers=SVC)
        assert r.status_code == 403, r.text
        bad = await alice.request({"type": "work.reply", "work_id": wid, "text": "   "})
        assert bad["type"] == "error" and bad["field"] == "text", bad

        # the reply: kept, sent on, the composing mark cleared
        ok = await alice.request(
            {"type": "work.reply", "work_id": wid, "text": "It left today — 本日発送しました"}
        )
        assert ok["type"] == "ok" and ok["reply"]["message"] == 1 and ok["reply"]["again"] is False, ok
        assert (await tab.expect("work.reply"))["reply"]["text"] == "It left today — 本日発送しました"
        cleared = await sup.expect("case.composing")
        assert cleared["composing"] is False and cleared["work_id"] == wid
        case = get_work(server, wid)["case"]
        assert "composing" not in case and case["answered"] == 1 and case["answered_by"] == "alice"
        late = await supervisor(server, "sam")
        assert late.snapshot["composing"] == [], late.snapshot["composing"]
        await late.close()
        assert [x["text"] for x in case["replies"]] == ["It left today — 本日発送しました"]

        # a second reply to the same message: refused, over HTTP too, unless confirmed
        again = await tab.request({"type": "work.reply", "work_id": wid, "text": "It left today!"})
        assert again["type"] == "error" and again["code"] == "conflict" and again["field"] == "confirm", again
        assert "already answered by alice" in again["message"]
        r = channels_http.post(
            f"{server.http}/api/v1/work/{wid}/replies",
            json={"text": "dup"},
            headers=as_agent("alice"),
            timeout=10,
        )
        assert r.status_code == 409 and r.json()["field"] == "confirm", r.text
        r = channels_http.post(
            f"{server.http}/api/v1/work/{wid}/replies",
            json={"text": "Tracking: JP123", "confirm": True},
            headers=as_agent("alice"),
            timeout=10,
        )
        assert r.status_code == 201 and r.json()["again"] is True, r.text
        r = channels_http.post(
            f"{server.http}/api/v1/work/{wid}/replies",
            json={"text": "x", "confirm": "yes"},
            headers=as_agent("alice"),
        )
        assert r.status_code == 422 and r.json()["field"] == "confirm", r.text

        # the customer writes again: a new message may be answered once more
        chat(server, "c-1", "thanks! and the invoice?", "m2")
        ok = await alice.request({"type": "work.reply", "work_id": wid, "text": "Attached."})
        assert ok["type"] == "ok" and ok["reply"]["message"] == 2 and ok["reply"]["again"] is False, ok
        listed = channels_http.get(
            f"{server.http}/api/v1/work/{wid}/replies", headers=as_agent("alice")
        ).json()
        assert [(x["message"], x["again"]) for x in listed["replies"]] == [(1, False), (1, True), (2, False)]
        assert (
            channels_http.get(f"{server.http}/api/v1/work/{wid}/replies", headers=as_agent("bob")).status_code
            == 403
        )

        # each reply left as a signed `reply` event, addressed from the inbound message
        events = await rec.wait_for(3)
        for headers, body in rec.got:
            want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-presence-signature"] == want and headers["x-presence-event"] == "reply"
        first, _, third = (e["data"] for e in events)
        assert first["work_id"] == wid and first["agent_id"] == "alice" and first["channel"] == "chat"
        assert first["conversation_id"] == "c-1" and first["in_reply_to"] == "m1"
        assert first["to"] == {"id": "u1", "name": "Kenji"}
        assert first["reply"]["text"] == "It left today — 本日発送しました"
        assert third["in_reply_to"] == "m2" and third["message"] == 2
        hist = [h["ev"] for h in get_work(server, wid)["history"]]
        assert hist.count("reply") == 3
        await alice.request({"type": "work.complete", "work_id": wid})
        # a finished item is no longer in hand: no reply
        r = await alice.request({"type": "work.reply", "work_id": wid, "text": "late", "confirm": True})
        assert r["type"] == "error" and r["code"] == "conflict", r
    finally:
        rec.stop()


async def test_an_item_without_a_case_has_nothing_to_reply_on(server: ServerProcess) -> None:
    from tests.harness import post_work

    alice = await agent(server, "alice")
    await available(alice)
    wid = post_work(server, channel="chat", subject="plain").json()["id"]
    await alice.expect("offer")
    await alice.request({"type": "offer.accept", "work_id": wid})
    r = await alice.request({"type": "work.reply", "work_id": wid, "text": "hi"})
    assert r["type"] == "error" and r["code"] == "not_found" and "no case" in r["message"], r
    await alice.request({"type": "work.complete", "work_id": wid})


async def test_the_composing_mark_ends_when_the_item_leaves_the_agent(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    sup = await supervisor(server)
    await available(alice)
    for n, leave in enumerate(
        ({"type": "work.complete"}, {"type": "work.transfer", "to_queue": "billing", "note": "billing"})
    ):
        r = channels_http.post(
            f"{server.http}/api/v1/channels/chat/messages",
            json={"conversation_id": f"lv-{n}", "from": "u1", "text": "hi"},
            headers=SVC,
        )
        wid = r.json()["id"]
        await alice.expect(lambda m, wid=wid: m["type"] == "offer" and m["work_id"] == wid)
        await alice.request({"type": "offer.accept", "work_id": wid})
        await alice.request({"type": "work.composing", "work_id": wid})
        assert (await sup.expect("case.composing"))["composing"] is True
        r = await alice.request({**leave, "work_id": wid})
        assert r["type"] == "ok", r
        gone = await sup.expect("case.composing")
        assert gone["composing"] is False and gone["work_id"] == wid
        assert "composing" not in get_work(server, wid)["case"]
    await alice.request({"type": "status.set", "status": "Away"})
