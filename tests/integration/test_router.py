"""The router's rules, end to end: a real server, real agent websockets.

Who gets an item (strategies, skills, channel weights and caps), in which
order (queue priority, item priority, age), and the intake API around it
(idempotency, validation, the item's state and history, auto-accept).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from presence.store.keys import Keys
from tests.harness import ServerProcess, WsClient, agent, available, get_work, post_work, token
from tests.helpers import REDIS_MODES, http, redis_of, redis_sync
from tests.integration.conftest import ServerFactory


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


pytestmark = pytest.mark.in_process

CENTER = """
[channels.case]
weight = 20

[[queues]]
name = "ma"
strategy = "most_available"
priority = 5

[[queues]]
name = "la"
strategy = "least_active"
priority = 5

[[queues]]
name = "li"
strategy = "longest_idle"
priority = 5

[[queues]]
name = "hi"
priority = 10

[[queues]]
name = "lo"
priority = 1

[[queues]]
name = "auto"
auto_accept = true

[[agents]]
id = "ann"
queues = ["ma", "la", "li", "hi", "lo", "auto"]
skills = {english = 3}

[[agents]]
id = "bo"
queues = ["ma", "la", "li"]

[[agents]]
id = "zed"
queues = ["ma", "la", "li"]
skills = {english = 7, billing = 2}

[[agents]]
id = "tiny"
capacity = 25
queues = ["hi", "lo"]

[[agents]]
id = "big"
capacity = 200
queues = ["ma"]

[[agents]]
id = "six"
capacity = 60
queues = ["ma", "la"]
"""


async def online(server: ServerProcess, aid: str, **kw: Any) -> WsClient:
    client = await agent(server, aid, **kw)
    await available(client)
    return client


async def take(client: WsClient, server: ServerProcess, **work: Any) -> str:
    """Post an item that only `client` can get now, accept it; its id."""
    r = post_work(server, **work)
    assert r.status_code == 201, r.text
    wid: str = r.json()["id"]
    offer = await client.expect(lambda m: m.get("type") == "offer" and m["work_id"] == wid)
    assert offer["queue"] == work.get("queue", "support")
    assert (await client.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    await client.expect(lambda m: m.get("type") == "work.assigned" and m["work_id"] == wid)
    return wid


async def complete(client: WsClient, wid: str) -> None:
    reply = await client.request({"type": "work.complete", "work_id": wid, "disposition": "done"})
    assert reply["type"] == "ok", reply


async def offered(client: WsClient, timeout: float = 5.0) -> dict[str, Any]:
    return await client.expect("offer", timeout)


async def no_offer(*clients: WsClient, wait: float = 0.4) -> None:
    for c in clients:
        new = await c.quiet(wait)
        got = [m for m in c.inbox if m.get("type") == "offer"]
        got += [m for m in new if m.get("type") == "work.assigned"]
        assert not got, f"unexpected offer: {got}"


def created_count(server: ServerProcess) -> int:
    client = redis_sync(server.redis_url)
    try:
        # the arrivals: `created+|<queue>|<channel>` (`count` in _lib_core.lua)
        counted = client.hgetall(Keys(server.center_id).metrics)
        return sum(int(v) for f, v in counted.items() if f.startswith(b"created+|"))
    finally:
        client.close()


# -- strategies ----------------------------------------------------------------------


async def test_users_example_a_holds_three_cases_b_two_next_goes_to_b(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    # capacity 60, a case weighs 20: room for three cases each
    six = await online(server, "six")
    for _ in range(3):
        await take(six, server, queue="la", channel="case")
    bo = await online(server, "bo")
    for _ in range(2):
        await take(bo, server, queue="la", channel="case")
    r = post_work(server, queue="la", channel="case")
    offer = await offered(bo)
    assert offer["work_id"] == r.json()["id"]
    await no_offer(six)


async def test_most_available_offers_to_the_agent_with_most_free_units(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    bo = await online(server, "bo")
    await take(bo, server, queue="ma", channel="email")  # bo: 90 free, 1 item
    zed = await online(server, "zed")
    await take(zed, server, queue="ma", channel="chat")  # zed: 75 free, 1 item
    ann = await online(server, "ann")  # ann: 100 free
    first = post_work(server, queue="ma", channel="email").json()["id"]
    assert (await offered(ann))["work_id"] == first  # 100 > 90 > 75
    second = post_work(server, queue="ma", channel="email").json()["id"]
    # ann now has 90 free, as bo: the tie goes to the smaller id
    assert (await offered(ann))["work_id"] == second
    third = post_work(server, queue="ma", channel="email").json()["id"]
    assert (await offered(bo))["work_id"] == third
    await no_offer(zed)


async def test_least_active_offers_to_the_agent_holding_fewest_items(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    zed = await online(server, "zed")
    await take(zed, server, queue="la", channel="chat")  # zed: 1 item, 75 free
    bo = await online(server, "bo")
    await take(bo, server, queue="la", channel="email")
    await take(bo, server, queue="la", channel="email")  # bo: 2 items, 80 free
    wid = post_work(server, queue="la", channel="email").json()["id"]
    # most_available would pick bo (80 free); least_active picks zed (1 item)
    assert (await offered(zed))["work_id"] == wid
    await no_offer(bo)


async def test_longest_idle_offers_to_the_agent_whose_last_work_ended_first(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(CENTER)
    ann = await online(server, "ann")
    zed = await online(server, "zed")
    # ann has been idle longer: she gets the first item; zed, idle, the second
    # (ann holding work is no longer idle)
    w_ann = await take(ann, server, queue="li", channel="chat")
    w_zed = await take(zed, server, queue="li", channel="chat")
    await complete(zed, w_zed)
    await zed.expect(lambda m: m.get("type") == "work.updated" and m["state"] == "completed")
    # idle times are in ms: make sure ann's is later, so a tie cannot decide
    await asyncio.sleep(0.01)
    await complete(ann, w_ann)
    await ann.expect(lambda m: m.get("type") == "work.updated" and m["state"] == "completed")
    wid = post_work(server, queue="li", channel="chat").json()["id"]
    assert (await offered(zed))["work_id"] == wid  # idle longest, though "ann" < "zed"
    await no_offer(ann)


# -- eligibility -------------------------------------------------------------------------


async def test_skills_missing_or_too_low_are_not_offered_item_waits_for_qualified(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(CENTER)
    ann = await online(server, "ann")  # english 3: too low
    bo = await online(server, "bo")  # no english at all
    wid = post_work(server, queue="ma", skills={"english": 5}).json()["id"]
    await no_offer(ann, bo)
    assert get_work(server, wid)["state"] == "queued"
    zed = await online(server, "zed")  # english 7
    assert (await offered(zed))["work_id"] == wid
    # every required skill must be met: zed has billing 2, not 3
    other = post_work(server, queue="ma", skills={"english": 5, "billing": 3}).json()["id"]
    await no_offer(ann, bo, zed)
    assert get_work(server, other)["state"] == "queued"


async def test_voice_cap_one_blocks_a_second_call_but_not_an_email(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    big = await online(server, "big")  # capacity 200: room is not what stops a second call
    call = await take(big, server, queue="ma", channel="voice")
    second = post_work(server, queue="ma", channel="voice").json()["id"]
    await no_offer(big)
    email = post_work(server, queue="ma", channel="email").json()["id"]
    assert (await offered(big))["work_id"] == email
    assert get_work(server, second)["state"] == "queued"
    await complete(big, call)
    assert (await offered(big))["work_id"] == second


async def test_capacity_100_chat_weight_25_at_most_four_chats(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    bo = await online(server, "bo")
    ids = [post_work(server, queue="ma", channel="chat").json()["id"] for _ in range(6)]
    offers = [await offered(bo) for _ in range(4)]
    assert [o["work_id"] for o in offers] == ids[:4]
    await no_offer(bo)
    # each offer carries the agent's new view (no separate `load` event)
    assert not [m for m in bo.inbox if m.get("type") == "load"]
    load = offers[-1]["agent"]
    assert load["load"] == 100 and load["by_channel"] == {"chat": 4}
    # offers hold capacity: accepting the first and finishing it frees a place
    assert (await bo.request({"type": "offer.accept", "work_id": ids[0]}))["type"] == "ok"
    await complete(bo, ids[0])
    assert (await offered(bo))["work_id"] == ids[4]


async def test_an_agent_on_break_gets_nothing(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    bo = await online(server, "bo")
    await available(bo, "Break", "Coffee")
    wid = post_work(server, queue="ma").json()["id"]
    await no_offer(bo)
    await available(bo)
    assert (await offered(bo))["work_id"] == wid


# -- order -------------------------------------------------------------------------------------


async def test_queue_priority_then_item_priority_then_age(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    tiny = await agent(server, "tiny")  # capacity 25: one chat at a time; Away for now
    posted = {}
    for name, queue, prio in (
        ("lo-urgent", "lo", 50),
        ("hi-p0-old", "hi", 0),
        ("hi-p5-old", "hi", 5),
        ("hi-p5-new", "hi", 5),
        ("hi-p0-new", "hi", 0),
        ("hi-neg", "hi", -5),
    ):
        posted[post_work(server, queue=queue, priority=prio).json()["id"]] = name
    await available(tiny)
    order = []
    for _ in posted:
        wid = (await offered(tiny))["work_id"]
        order.append(posted[wid])
        assert (await tiny.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
        await complete(tiny, wid)
    assert order == ["hi-p5-old", "hi-p5-new", "hi-p0-old", "hi-p0-new", "hi-neg", "lo-urgent"]


# -- intake --------------------------------------------------------------------------------------


async def test_idempotency_key_returns_the_same_item_and_creates_nothing(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(CENTER)
    bo = await online(server, "bo")
    first = post_work(server, queue="ma", idem="crm-call-4711")
    assert first.status_code == 201
    again = post_work(server, queue="ma", idem="crm-call-4711")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    other = post_work(server, queue="ma", idem="crm-call-4712")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert created_count(server) == 2
    got = {(await offered(bo))["work_id"] for _ in range(2)}
    assert got == {first.json()["id"], other.json()["id"]}
    await no_offer(bo)


async def test_an_item_without_skills_needs_none(server_factory: ServerFactory) -> None:
    """`skills` may be left out: the item has no requirements, so an agent
    with no skills at all gets it."""
    server = server_factory(CENTER)
    bo = await online(server, "bo")  # no skills
    r = _post_raw(server, {"channel": "chat", "queue": "ma", "subject": "plain"})
    assert r.status_code == 201, r.text
    assert (await offered(bo))["work_id"] == r.json()["id"]
    assert get_work(server, r.json()["id"])["skills"] == {}


def _idem(server: ServerProcess, key: str, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token('service', 'crm')}", "Idempotency-Key": key}
    return http().post(f"{server.http}/api/v1/work", json=body, headers=headers, timeout=10)


def _batch(server: ServerProcess, items: list[Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token('service', 'crm')}"}
    return http().post(f"{server.http}/api/v1/work:batch", json={"items": items}, headers=headers, timeout=10)


async def test_idempotency_key_with_another_body_is_refused(server_factory: ServerFactory) -> None:
    """The same key and body answer the first item (200); the same key with
    another body is a 422 naming the key, and stores nothing. "The same
    body" is the body as decoded: key order, spacing and an explicit
    default do not make it another."""
    server = server_factory(CENTER)
    body = {"channel": "chat", "queue": "ma", "subject": "refund", "payload": {"a": 1, "b": [1, 2]}}
    first = _idem(server, "crm-7", body)
    assert first.status_code == 201, first.text
    wid = first.json()["id"]
    same = {"payload": {"b": [1, 2], "a": 1}, "priority": 0, "skills": {}, **body}  # reordered, defaults
    again = _idem(server, "crm-7", dict(reversed(list(same.items()))))
    assert again.status_code == 200 and again.json()["id"] == wid, again.text
    for other in ({**body, "subject": "refund!"}, {**body, "priority": 1}, {**body, "payload": {"a": 2}}):
        r = _idem(server, "crm-7", other)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["field"] == "Idempotency-Key" and "crm-7" in problem["detail"], problem
        assert wid in problem["detail"]
    assert created_count(server) == 1
    # the batch form answers the same way, per item, naming the item's key
    r = _batch(
        server, [{**body, "idempotency_key": "crm-7"}, {**body, "subject": "x", "idempotency_key": "crm-7"}]
    )
    res = r.json()["items"]
    assert res[0]["status"] == 200 and res[0]["id"] == wid, res
    assert res[1]["status"] == 422 and res[1]["problem"]["field"] == "items[1].idempotency_key", res
    assert created_count(server) == 1


async def test_idempotency_check_is_atomic(server_factory: ServerFactory) -> None:
    """Concurrent posts with one key and different bodies: exactly one item
    is made; every other post is refused (422) unless its body is the
    winner's, which answers that item (200)."""
    server = server_factory(CENTER)
    bodies = [{"channel": "chat", "queue": "ma", "subject": f"s{i % 4}"} for i in range(24)]
    async with httpx.AsyncClient(timeout=20) as client:
        headers = {"Authorization": f"Bearer {token('service', 'crm')}", "Idempotency-Key": "race-1"}
        replies = await asyncio.gather(
            *(client.post(f"{server.http}/api/v1/work", json=b, headers=headers) for b in bodies)
        )
    created = [(b, r) for b, r in zip(bodies, replies, strict=True) if r.status_code == 201]
    assert len(created) == 1, [r.status_code for r in replies]
    winner, first = created[0]
    wid = first.json()["id"]
    for b, r in zip(bodies, replies, strict=True):
        if r is first:
            continue
        if b == winner:
            assert r.status_code == 200 and r.json()["id"] == wid, r.text
        else:
            assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key", r.text
    assert created_count(server) == 1
    assert get_work(server, wid)["subject"] == winner["subject"]


async def test_get_work_shows_state_and_history(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    bo = await online(server, "bo")
    r = post_work(server, queue="ma", subject="refund", customer={"id": "c1", "name": "Kim"})
    wid = r.json()["id"]
    assert r.json()["state"] in ("queued", "offered")
    assert r.headers["location"] == f"/api/v1/work/{wid}"
    await offered(bo)
    item = get_work(server, wid)
    assert item["state"] == "offered" and item["agent_id"] == "bo" and item["expires_at"] > 0
    assert item["subject"] == "refund" and item["customer"] == {"id": "c1", "name": "Kim"}
    assert (await bo.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    await complete(bo, wid)
    item = get_work(server, wid)
    assert item["state"] == "completed" and item["disposition"] == "done"
    assert [h["ev"] for h in item["history"]] == ["create", "offer", "accept", "complete"]
    assert all(h["work"] == wid and h["ts"] > 0 for h in item["history"])
    assert _get_raw(server, "/api/v1/work/nope").status_code == 404


async def test_auto_accept_queue_delivers_work_assigned_directly(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    ann = await online(server, "ann")
    wid = post_work(server, queue="auto", subject="callback").json()["id"]
    got = await ann.expect(lambda m: m.get("type") in ("offer", "work.assigned"))
    assert got["type"] == "work.assigned" and got["work_id"] == wid
    assert got["via"] == "auto" and got["subject"] == "callback"
    assert get_work(server, wid)["state"] == "assigned"


def _get_raw(server: ServerProcess, path: str) -> httpx.Response:
    return http().get(f"{server.http}{path}", headers={"Authorization": f"Bearer {token('service', 'crm')}"})


def _post_raw(
    server: ServerProcess, body: Any, tok: str | None = None, raw: bytes | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if tok != "":  # "" sends no token at all
        headers["Authorization"] = f"Bearer {tok or token('service', 'crm')}"
    if raw is not None:
        return http().post(f"{server.http}/api/v1/work", content=raw, headers=headers)
    return http().post(f"{server.http}/api/v1/work", json=body, headers=headers)


async def test_intake_validation_names_the_field_and_stores_nothing(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    good = {"channel": "chat", "queue": "ma", "skills": {}}
    for body, field in (
        ({**good, "queue": "nowhere"}, "queue"),
        ({**good, "channel": "pigeon"}, "channel"),
        ({**good, "skills": {"bad skill": 1}}, "skills.bad skill"),
        ({**good, "customer": {"id": [1]}}, "customer.id"),
        ({**good, "priority": 100}, "priority"),
        ({**good, "priority": "high"}, "priority"),
        ({**good, "skills": {"english": 11}}, "skills.english"),
        ({**good, "colour": "red"}, "colour"),
    ):
        r = _post_raw(server, body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["field"] == field, (body, r.json())
        assert field.split(".")[0] in r.json()["detail"]
    bad = _post_raw(server, None, raw=b'{"channel": "chat", ')
    assert bad.status_code == 400 and "JSON" in bad.json()["detail"]
    assert _post_raw(server, [good]).status_code == 400
    forbidden = _post_raw(server, good, tok=token("agent", "ann"))
    assert forbidden.status_code == 403
    assert _post_raw(server, good, tok="").status_code == 401
    assert created_count(server) == 0
    assert _post_raw(server, good, tok=token("supervisor", "sue")).status_code == 201
    assert created_count(server) == 1
