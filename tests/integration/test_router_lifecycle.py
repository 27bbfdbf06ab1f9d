"""An item's life after routing, end to end: decline, push timeout, missed
offers, Break and Offline with an open offer, wrap-up and its limit,
complete (and the next item routed at once), cancel.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.harness import (
    DrivenClock,
    ServerProcess,
    WsClient,
    agent,
    available,
    get_work,
    post_work,
    sockets_of,
    token,
)
from tests.helpers import http
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.in_process

CENTER = """
[rules]
missed_offers_limit = 3

[[queues]]
name = "main"
push_timeout = 30
wrapup_seconds = 30

[[queues]]
name = "fast"
push_timeout = 20

[[queues]]
name = "open"
push_timeout = 0

[[agents]]
id = "ann"
capacity = 25
queues = ["main", "fast", "open"]

[[agents]]
id = "bo"
capacity = 25
queues = ["main", "fast", "open"]

[[agents]]
id = "cy"
capacity = 25
queues = ["main"]

[[agents]]
id = "dee"
queues = ["main"]
"""


async def online(server: ServerProcess, aid: str) -> WsClient:
    client = await agent(server, aid)
    await available(client)
    return client


def is_(kind: str, wid: str, **fields: Any) -> Any:
    return lambda m: (
        m.get("type") == kind and m.get("work_id") == wid and all(m.get(f) == v for f, v in fields.items())
    )


async def ok(client: WsClient, msg: dict[str, Any]) -> dict[str, Any]:
    reply = await client.request(msg)
    assert reply["type"] == "ok", reply
    return reply


async def no_offer(*clients: WsClient, wait: float = 0.4) -> None:
    for c in clients:
        new = await c.quiet(wait)
        got = [m for m in c.inbox if m.get("type") == "offer"]
        got += [m for m in new if m.get("type") == "work.assigned"]
        assert not got, f"unexpected offer: {got}"


def cancel(server: ServerProcess, wid: str, reason: str | None = None) -> httpx.Response:
    return http().post(
        f"{server.http}/api/v1/work/{wid}/cancel",
        json={"reason": reason} if reason else None,
        headers={"Authorization": f"Bearer {token('service', 'crm')}"},
        timeout=10,
    )


def new(server: ServerProcess, queue: str = "main", **kw: Any) -> str:
    r = post_work(server, queue=queue, **kw)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# -- decline -------------------------------------------------------------------------------


async def test_decline_requeues_with_original_age_never_to_that_agent_again(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(CENTER)
    ann = await online(server, "ann")  # capacity 25: one chat at a time
    w1 = new(server)
    await ann.expect(is_("offer", w1))
    w2 = new(server)  # waits: ann is full
    await ok(ann, {"type": "offer.decline", "work_id": w1, "reason": "not my topic"})
    await ann.expect(is_("offer.rescinded", w1, reason="declined"))
    # ann is free again, but w1 is never offered to her: she gets w2
    await ann.expect(is_("offer", w2))
    await ok(ann, {"type": "offer.accept", "work_id": w2})
    w3 = new(server)
    cy = await online(server, "cy")
    # w1 kept its original age: it goes before the younger w3
    await cy.expect(is_("offer", w1))
    await ok(cy, {"type": "offer.decline", "work_id": w1})
    await cy.expect(is_("offer", w3))
    await ok(ann, {"type": "work.complete", "work_id": w2, "disposition": "done"})
    await no_offer(ann)  # ann has room, but declined the only waiting item
    item = get_work(server, w1)
    assert item["state"] == "queued" and item["offers"] == 2
    declines = [h for h in item["history"] if h["ev"] == "decline"]
    assert [(h["agent"], h["note"]) for h in declines] == [("ann", "not my topic"), ("cy", "")]
    bo = await online(server, "bo")
    await bo.expect(is_("offer", w1))


# -- push timeout and missed offers -------------------------------------------------------


async def test_push_timeout_rescinds_requeues_and_offers_elsewhere(server_factory: ServerFactory) -> None:
    clock = DrivenClock()
    server = server_factory(CENTER, clock=clock)
    ann = await online(server, "ann")
    bo = await online(server, "bo")
    wid = new(server, "fast")
    offer = await ann.expect(is_("offer", wid))  # the tie goes to ann
    assert offer["expires_at"] - offer["offered_at"] == 20_000
    clock.advance(19)
    await no_offer(bo)
    assert get_work(server, wid)["agent_id"] == "ann"  # not before its time
    clock.advance(2)
    await ann.expect(is_("offer.rescinded", wid, reason="timeout"), timeout=3)
    # ann (who let it ring out) is the last resort: bo gets it now
    await bo.expect(is_("offer", wid), timeout=3)
    item = get_work(server, wid)
    assert item["state"] == "offered" and item["agent_id"] == "bo"
    assert [h["ev"] for h in item["history"]] == ["create", "offer", "rescind", "offer"]
    await ok(bo, {"type": "offer.accept", "work_id": wid})
    await ann.quiet(0.6)
    st = [m for m in ann.inbox if m.get("type") == "status"]
    assert not st or st[-1]["status"] == "Available"  # one miss is not three


async def test_offer_that_times_out_returns_to_the_only_agent(server_factory: ServerFactory) -> None:
    clock = DrivenClock()
    server = server_factory(CENTER, clock=clock)
    ann = await online(server, "ann")
    wid = new(server, "fast")
    await ann.expect(is_("offer", wid))
    clock.advance(21)
    await ann.expect(is_("offer.rescinded", wid, reason="timeout"), timeout=3)
    # nobody else can take it: it is not stranded
    await ann.expect(is_("offer", wid), timeout=3)
    await ok(ann, {"type": "offer.accept", "work_id": wid})


async def test_three_consecutive_missed_offers_move_the_agent_to_away(server_factory: ServerFactory) -> None:
    clock = DrivenClock()
    server = server_factory(CENTER, clock=clock)
    ann = await online(server, "ann")

    async def ring_out(wid: str) -> None:
        await ann.expect(is_("offer", wid), timeout=3)
        clock.advance(21)  # past the push timeout (20 s)
        await ann.expect(is_("offer.rescinded", wid, reason="timeout"), timeout=3)

    wid = new(server, "fast")
    # two misses, then an answer: the count starts again
    for _ in range(2):
        await ring_out(wid)
    await ann.expect(is_("offer", wid), timeout=3)
    await ok(ann, {"type": "offer.accept", "work_id": wid})
    await ok(ann, {"type": "work.complete", "work_id": wid})
    w2 = new(server, "fast")
    for _ in range(2):
        await ring_out(w2)
    ann.inbox = [m for m in ann.inbox if m.get("type") != "status"]
    await ann.expect(is_("offer", w2), timeout=3)
    clock.advance(21)  # the third miss
    st = await ann.expect(lambda m: m.get("type") == "status" and m["status"] != "Available", timeout=3)
    assert (st["status"], st["reason"]) == ("Away", "missed offers")
    assert get_work(server, w2)["state"] == "queued"
    await no_offer(ann)
    # once back, the item is offered again
    await available(ann)
    await ann.expect(is_("offer", w2), timeout=3)
    await ok(ann, {"type": "offer.decline", "work_id": w2})


# -- Break and Offline ------------------------------------------------------------------------


async def test_break_with_open_offer_rescinds_at_once_and_keeps_work_in_hand(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(CENTER)
    dee = await online(server, "dee")  # capacity 100
    held = new(server, "open")
    # dee is not in "open": give dee work in "main", then an open offer
    w1 = new(server)
    await dee.expect(is_("offer", w1))
    await ok(dee, {"type": "offer.accept", "work_id": w1})
    w2 = new(server)
    await dee.expect(is_("offer", w2))
    cy = await online(server, "cy")
    assert held
    await ok(dee, {"type": "status.set", "status": "Break", "reason": "Coffee"})
    await dee.expect(is_("offer.rescinded", w2, reason="status"), timeout=2)
    await cy.expect(is_("offer", w2), timeout=2)
    assert get_work(server, w1)["state"] == "assigned"
    snap = await dee.request({"type": "snapshot.get"})
    assert [w["work_id"] for w in snap["work"]] == [w1] and snap["offers"] == []
    await no_offer(dee)
    # work in hand can still be finished on Break
    await ok(dee, {"type": "work.complete", "work_id": w1, "disposition": "done"})
    await no_offer(dee)


async def test_offline_past_grace_requeues_open_offers(server_factory: ServerFactory) -> None:
    clock = DrivenClock()
    server = server_factory(CENTER, clock=clock)  # the default grace: 30 s
    ann = await online(server, "ann")
    wid = new(server, "open")  # no push timeout: only the grace period ends it
    await ann.expect(is_("offer", wid))
    await ann.close()
    await sockets_of(server, "ann", 0)
    bo = await online(server, "bo")
    clock.advance(29)
    await no_offer(bo)  # sweeps ran on the clock 29 s on
    assert get_work(server, wid)["state"] == "offered"  # still within grace
    clock.advance(2)
    await bo.expect(is_("offer", wid), timeout=3)
    item = get_work(server, wid)
    assert item["agent_id"] == "bo"
    rescind = [h for h in item["history"] if h["ev"] == "rescind"]
    assert rescind and rescind[0]["agent"] == "ann" and rescind[0]["reason"] == "status"


async def test_back_within_grace_keeps_the_offer(server_factory: ServerFactory) -> None:
    clock = DrivenClock()
    server = server_factory(CENTER, clock=clock)
    ann = await online(server, "ann")
    wid = new(server, "open")
    await ann.expect(is_("offer", wid))
    await ann.close()
    await sockets_of(server, "ann", 0)
    clock.advance(20)
    again = await agent(server, "ann")
    assert [o["work_id"] for o in again.snapshot["offers"]] == [wid]
    assert again.snapshot["agent"]["status"] == "Available"
    clock.advance(40)  # past the grace period counted from the close: a socket is back
    await again.quiet(0.4)
    assert get_work(server, wid)["state"] == "offered"
    gone = [m for m in again.inbox if m.get("type") == "offer.rescinded"]
    gone += [m for m in again.inbox if m.get("type") == "status" and m["status"] != "Available"]
    assert not gone, gone
    await ok(again, {"type": "offer.accept", "work_id": wid})


# -- wrap-up and complete -------------------------------------------------------------------------


async def test_wrapup_holds_capacity_then_completes_at_the_queue_limit(server_factory: ServerFactory) -> None:
    clock = DrivenClock()
    server = server_factory(CENTER, clock=clock)  # "main": wrap-up 30 s
    ann = await online(server, "ann")
    wid = new(server)
    await ann.expect(is_("offer", wid))
    await ok(ann, {"type": "offer.accept", "work_id": wid})
    reply = await ok(ann, {"type": "work.wrapup", "work_id": wid})
    upd = await ann.expect(is_("work.updated", wid, state="wrapup"))
    assert upd["wrapup_until"] == reply["wrapup_until"] > 0
    assert 29_000 <= upd["wrapup_until"] - clock() * 1000 <= 30_000  # the queue's limit
    # capacity stays held during wrap-up: the next item waits
    w2 = new(server)
    clock.advance(29)
    await no_offer(ann)
    assert get_work(server, wid)["state"] == "wrapup"
    clock.advance(2)
    done = await ann.expect(is_("work.updated", wid, state="completed"), timeout=3)
    assert done["disposition"] == "wrapup-timeout"
    assert clock() * 1000 >= upd["wrapup_until"]
    await ann.expect(is_("offer", w2), timeout=2)
    item = get_work(server, wid)
    assert item["state"] == "completed" and item["disposition"] == "wrapup-timeout"
    assert [h["ev"] for h in item["history"]][-2:] == ["wrapup", "complete"]
    # wrap-up of an item not in hand is refused
    err = await ann.request({"type": "work.wrapup", "work_id": wid})
    assert err["type"] == "error" and err["code"] == "conflict" and err["field"] == "work_id"


async def test_complete_frees_capacity_and_routes_the_next_item_at_once(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(CENTER)
    ann = await online(server, "ann")  # one chat at a time
    for _ in range(4):
        new(server)
    lags = []
    wid = (await ann.expect("offer"))["work_id"]
    for _ in range(3):
        await ok(ann, {"type": "offer.accept", "work_id": wid})
        t0 = time.monotonic()
        await ann.send({"type": "work.complete", "work_id": wid, "disposition": "done"})
        wid = (await ann.expect("offer", timeout=3))["work_id"]
        lags.append(time.monotonic() - t0)
    # the safety pass runs each second: every one of these came from the complete itself
    assert max(lags) < 0.25, lags


# -- cancel -----------------------------------------------------------------------------------------


async def test_cancel_queued_and_offered_items_are_abandoned(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    queued = new(server)
    r = cancel(server, queued, "caller hung up")
    assert r.status_code == 200 and r.json() == {"id": queued, "state": "abandoned"}
    item = get_work(server, queued)
    assert item["state"] == "abandoned" and item["reason"] == "caller hung up"
    assert item["history"][-1]["ev"] == "abandon" and item["history"][-1]["was"] == "queued"
    ann = await online(server, "ann")
    await no_offer(ann)
    offered = new(server)
    await ann.expect(is_("offer", offered))
    assert cancel(server, offered).status_code == 200
    rescinded = await ann.expect(is_("offer.rescinded", offered, reason="abandoned"))
    # the agent's new view rides on the rescind itself
    load = rescinded["agent"]
    assert load["load"] == 0 and load["items"] == 0 and load["by_channel"] == {}
    assert get_work(server, offered)["state"] == "abandoned"
    # capacity came back at once
    nxt = new(server)
    await ann.expect(is_("offer", nxt))
    err = await ann.request({"type": "offer.accept", "work_id": offered})
    assert err["type"] == "error"
    # twice, or an unknown item
    assert cancel(server, queued).status_code == 409
    assert cancel(server, "nope").status_code == 404


async def test_cancel_of_an_assigned_item_is_refused(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    ann = await online(server, "ann")
    wid = new(server)
    await ann.expect(is_("offer", wid))
    await ok(ann, {"type": "offer.accept", "work_id": wid})
    r = cancel(server, wid)
    assert r.status_code == 409, r.text
    assert r.json()["field"] == "work_id" and "assigned" in r.json()["detail"]
    assert get_work(server, wid)["state"] == "assigned"
    await ok(ann, {"type": "work.wrapup", "work_id": wid})
    assert cancel(server, wid).status_code == 409
    await ok(ann, {"type": "work.complete", "work_id": wid})
