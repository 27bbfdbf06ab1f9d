"""Email-to-case: the to-address picks the queue, a reply joins its case
and goes to the owner (or routes the finished item again, to its last owner
first), a repeated message id is ignored, malformed mail stores nothing."""

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
wrapup_seconds = 0

[[queues]]
name = "billing"
push_timeout = 30

[intake.email]
queue = "support"
addresses = { "support@example.com" = "support", "billing@example.com" = "billing" }

[[agents]]
id = "alice"
queues = ["support", "billing"]

[[agents]]
id = "bob"
queues = ["support"]
"""

SVC = {"Authorization": f"Bearer {token('service', 'mailgw')}"}


def mail(server: ServerProcess, **body: Any) -> httpx.Response:
    body.setdefault("from", "Ken Sato <ken@example.org>")
    body.setdefault("to", "support@example.com")
    body.setdefault("subject", "Invoice question")
    body.setdefault("text", "Hello, my invoice looks wrong.")
    return http().post(f"{server.http}/api/v1/channels/email/inbound", json=body, headers=SVC, timeout=10)


async def test_to_address_picks_queue_and_duplicates_are_ignored(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    r = mail(server, message_id="<m1@example.org>", to=["Billing <billing@example.com>"])
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    item = get_work(server, wid)
    assert item["queue"] == "billing" and item["channel"] == "email"
    assert item["case"]["source"] == "email:billing@example.com" and item["case"]["lead"] is True
    assert item["case"]["messages"][0]["text"] == "Hello, my invoice looks wrong."
    assert item["position"] == 1
    again = mail(server, message_id="m1@example.org", to="billing@example.com")
    assert again.status_code == 200 and again.json() == {**again.json(), "id": wid, "outcome": "duplicate"}
    assert len(get_work(server, wid)["case"]["messages"]) == 1
    other = mail(server, message_id="<m2@example.org>", to="someone@else.example")
    assert get_work(server, other.json()["id"])["queue"] == "support"


async def test_reply_goes_to_the_owner_then_reopens_the_case(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    alice = await agent(server, "alice")
    await available(alice)
    wid = mail(server, message_id="<q1@example.org>").json()["id"]
    assert (await alice.expect("offer"))["work_id"] == wid
    assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    case = await alice.expect("case.updated")
    assert case["case"]["status"] == "In progress" and case["case"]["owner"] == "alice"
    # the customer replies while alice holds the case: it goes to her
    r = mail(
        server,
        message_id="<q2@example.org>",
        in_reply_to="<q1@example.org>",
        references="<q1@example.org>",
        subject="Re: Invoice question",
        text="Here is the invoice number: 123",
    )
    assert r.status_code == 200 and r.json()["outcome"] == "joined" and r.json()["id"] == wid, r.text
    assert r.json()["agent_id"] == "alice"
    msg = await alice.expect("work.message")
    assert msg["work_id"] == wid and msg["message"]["text"] == "Here is the invoice number: 123"
    # alice completes and closes; a later reply (to the reply) re-opens the case to her
    assert (await alice.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"
    r = channels_http.post(
        f"{server.http}/api/v1/work/{wid}/status", json={"status": "Closed"}, headers=SVC, timeout=10
    )
    assert r.status_code == 200 and r.json()["status"] == "Closed" and r.json()["closed"], r.text
    r = mail(
        server,
        message_id="<q3@example.org>",
        references="<q1@example.org> <q2@example.org>",
        text="Still wrong",
    )
    assert r.json()["outcome"] == "reopened" and r.json()["id"] == wid, r.text
    offer = await alice.expect("offer")
    assert offer["work_id"] == wid and offer["reopened"] is True
    assert [h["ev"] for h in offer["history"]].count("complete") == 1
    item = get_work(server, wid)
    assert item["state"] == "offered" and item["case"]["status"] == "New" and item["case"]["reopened"] == 1
    assert len(item["case"]["messages"]) == 3
    assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    assert (await alice.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"


async def test_reply_to_finished_case_waits_when_owner_is_away(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    alice = await agent(server, "alice")
    await available(alice)
    wid = mail(server, message_id="<w1@example.org>").json()["id"]
    await alice.expect("offer")
    await alice.request({"type": "offer.accept", "work_id": wid})
    await alice.request({"type": "work.complete", "work_id": wid})
    await available(alice, "Away")
    r = mail(server, message_id="<w2@example.org>", in_reply_to="<w1@example.org>")
    assert r.json()["outcome"] == "reopened"
    item = get_work(server, wid)
    assert item["state"] == "queued" and item["queue"] == "support"
    bob = await agent(server, "bob")
    await available(bob)
    assert (await bob.expect("offer"))["work_id"] == wid


async def test_malformed_mail_stores_nothing(server: ServerProcess) -> None:
    bad = [
        ({"message_id": ""}, "message_id"),
        ({"message_id": "<a b@x>"}, "message_id"),
        ({"message_id": "<x1@y>", "from": "not an address"}, "from"),
        ({"message_id": "<x1@y>", "to": 7}, "to"),
        ({"message_id": "<x1@y>", "text": ""}, "text"),
        ({"message_id": "<x1@y>", "references": 5}, "references"),
        ({"message_id": "<x1@y>", "in_reply_to": 5}, "in_reply_to"),
        ({"message_id": "<x1@y>", "attachments": []}, "attachments"),
    ]
    for body, field in bad:
        r = mail(server, **body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
    r = mail(server, message_id="<x1@y>")
    assert r.status_code == 201 and r.json()["outcome"] == "created"
