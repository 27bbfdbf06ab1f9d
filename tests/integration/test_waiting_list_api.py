"""The waiting list: each queue's waiting items in routing order, with channel,
priority, arrival, subject and customer, on the supervisors' socket and over
HTTP; and an agent's own items, for a supervisor to pull or reassign one."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import ServerProcess, agent, available, post_work, supervisor, token

SUP = {"Authorization": f"Bearer {token('supervisor', 'sue')}"}


def waiting(server: ServerProcess, queue: str, who: dict[str, str] = SUP) -> httpx.Response:
    return httpx.get(f"{server.http}/api/v1/queues/{queue}/waiting", headers=who, timeout=10)


def listed(msg: dict[str, Any], queue: str) -> list[dict[str, Any]]:
    q = next(q for q in msg["queues"] if q["name"] == queue)
    return list(q["items"])


async def test_waiting_items_in_routing_order_with_who_and_what(server: ServerProcess) -> None:
    sup = await supervisor(server)
    assert listed(sup.snapshot, "support") == []
    low = post_work(
        server, channel="email", subject="請求書の再発行", customer={"id": "c-7", "name": "山田 太郎"}
    ).json()["id"]
    urgent = {"channel": "voice", "priority": 5, "subject": "urgent", "customer": {"phone": "+81 3"}}
    high = post_work(server, **urgent).json()["id"]
    bare = post_work(server, channel="chat", subject="", customer={}).json()["id"]
    msg = await sup.expect(lambda m: m["type"] == "queues" and len(listed(m, "support")) == 3)
    items = listed(msg, "support")
    # the router's order: priority band first, then age
    assert [i["work_id"] for i in items] == [high, low, bare]
    first, second, third = items
    assert first["channel"] == "voice" and first["priority"] == 5 and first["customer"] == {"phone": "+81 3"}
    assert second["subject"] == "請求書の再発行" and second["customer"] == {"id": "c-7", "name": "山田 太郎"}
    assert second["created"] <= third["created"] and second["created"] > 0
    assert "customer" not in third and "subject" not in third
    # nothing overflowed or handed over: no such flags at all
    assert not any("overflow_to" in i or "handed_over" in i for i in items), items
    assert listed(msg, "billing") == []

    # the same list over HTTP, with the count
    r = waiting(server, "support")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queue"] == "support" and body["waiting"] == 3
    assert [i["work_id"] for i in body["items"]] == [high, low, bare]
    assert body["items"][1]["customer"]["name"] == "山田 太郎"

    # a pushed item leaves the list. Figures sent before the three were
    # listed (two items: high and low, before bare came) are kept in the
    # inbox by `expect`: let them go, or one of them would match below
    sup.inbox.clear()
    bob = await agent(server, "bob")
    r2 = await sup.request({"type": "work.push", "work_id": high, "agent_id": "bob"})
    assert r2["type"] == "ok", r2
    await bob.expect("offer")
    msg = await sup.expect(
        lambda m: m["type"] == "queues" and high not in [i["work_id"] for i in listed(m, "support")]
    )
    assert [i["work_id"] for i in listed(msg, "support")] == [low, bare]


async def test_long_text_is_clipped_whole_characters(server: ServerProcess) -> None:
    sup = await supervisor(server)
    name = "あ" * 100  # 300 bytes: clipped at 200 bytes, between two characters
    post_work(server, customer={"name": name, "email": "a@example.com"}, subject="x" * 150)
    msg = await sup.expect(lambda m: m["type"] == "queues" and listed(m, "support"))
    item = listed(msg, "support")[0]
    assert item["customer"]["name"] == "あ" * 66
    assert item["customer"]["email"] == "a@example.com"
    assert item["subject"] == "x" * 150


async def test_waiting_route_refuses_unknown_queue_and_agents(server: ServerProcess) -> None:
    r = waiting(server, "nowhere")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = waiting(server, "support", {"Authorization": f"Bearer {token('agent', 'alice')}"})
    assert r.status_code == 403
    r = waiting(server, "support", {})
    assert r.status_code == 401


async def test_an_agents_items_for_pull_and_reassign(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    sup = await supervisor(server)
    await available(alice)
    first = post_work(server, channel="chat", subject="one", customer={"name": "Kim"}).json()["id"]
    await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == first)
    await alice.request({"type": "offer.accept", "work_id": first})
    second = post_work(server, channel="email", subject="two").json()["id"]
    await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == second)

    r = await sup.request({"type": "agent.work.get", "agent_id": "alice"})
    assert r["type"] == "ok", r
    assert [i["work_id"] for i in r["work"]] == [first] and r["work"][0]["customer"] == {"name": "Kim"}
    assert [i["work_id"] for i in r["offers"]] == [second] and r["offers"][0]["state"] == "offered"

    r = await sup.request({"type": "agent.work.get", "agent_id": "bob"})
    assert r["type"] == "ok" and r["work"] == [] and r["offers"] == []
    r = await sup.request({"type": "agent.work.get", "agent_id": "nobody"})
    assert r["type"] == "error" and r["code"] == "not_found" and r["field"] == "agent_id"
    r = await sup.request({"type": "agent.work.get"})
    assert r["type"] == "error" and r["field"] == "agent_id"
    # an agent may not ask
    r = await alice.request({"type": "agent.work.get", "agent_id": "alice"})
    assert r["type"] == "error" and r["code"] == "unknown_type"
    await alice.request({"type": "offer.decline", "work_id": second})
    await alice.request({"type": "work.complete", "work_id": first})
