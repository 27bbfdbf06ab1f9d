"""The admin HTTP API: agents, queues, statuses and channels; roles;
problem+json naming the field; conflicts; persistence across restarts and
config seeding that never overwrites what the API changed."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis

from presence.store.keys import Keys
from tests.harness import DrivenClock, ServerProcess, agent, available, post_work, supervisor, token
from tests.helpers import http
from tests.integration.conftest import ServerFactory

pytestmark = [pytest.mark.timeout(60), pytest.mark.in_process]

PROBLEM = "application/problem+json"


def auth(role: str = "supervisor", sub: str = "sue") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, sub)}"}


def call(
    server: ServerProcess,
    method: str,
    path: str,
    body: Any = None,
    *,
    role: str | None = "supervisor",
    sub: str = "sue",
    **kw: Any,
) -> httpx.Response:
    headers = kw.pop("headers", {})
    if role is not None:
        headers.update(auth(role, sub))
    return http().request(method, f"{server.http}/api/v1{path}", json=body, headers=headers, timeout=10, **kw)


def problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM, r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    if field is not None:
        assert body.get("field") == field, body
    return body


async def test_agents_crud(server: ServerProcess) -> None:
    listed = call(server, "GET", "/agents")
    assert listed.status_code == 200
    agents = {a["id"]: a for a in listed.json()["agents"]}
    assert set(agents) == {"alice", "bob"}
    assert agents["alice"]["queues"] == ["support", "billing"]
    assert agents["alice"]["skills"] == {"english": 5}
    assert agents["alice"]["capacity"] == 100
    assert agents["alice"]["live"]["status"] == "Offline"

    body = {
        "name": "Carol Chen",
        "capacity": 150,
        "skills": {"english": 7, "billing": 10},
        "queues": ["billing"],
        "extension": "sip:1004@pbx.local",
    }
    r = call(server, "PUT", "/agents/carol", body)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "carol", **body}
    sup = await supervisor(server)
    assert "carol" in {a["agent_id"] for a in sup.snapshot["agents"]}
    carol = await agent(server, "carol")  # a new agent can sign in at once
    assert carol.snapshot["agent"]["capacity"] == 150

    r = call(server, "PUT", "/agents/carol", {**body, "capacity": 120, "queues": ["support"]})
    assert r.status_code == 200, r.text
    got = call(server, "GET", "/agents/carol").json()
    assert got["capacity"] == 120 and got["queues"] == ["support"]
    assert got["live"]["capacity"] == 120
    st = await carol.expect(lambda m: m["type"] == "load" and m["capacity"] == 120)
    assert st["agent_id"] == "carol"
    queue = call(server, "GET", "/queues/support").json()
    assert queue["name"] == "support"

    await carol.close()
    assert call(server, "DELETE", "/agents/carol").status_code == 204
    problem(call(server, "GET", "/agents/carol"), 404)
    problem(call(server, "DELETE", "/agents/carol"), 404, "agent_id")
    assert "carol" not in {a["id"] for a in call(server, "GET", "/agents").json()["agents"]}


def test_queues_statuses_channels(server: ServerProcess) -> None:
    names = [q["name"] for q in call(server, "GET", "/queues").json()["queues"]]
    assert names == ["support", "billing"]  # highest priority first
    r = call(
        server,
        "PUT",
        "/queues/vip",
        {"title": "VIP", "strategy": "longest_idle", "priority": 50, "push_timeout": 12.5},
    )
    assert r.status_code == 201, r.text
    vip = r.json()
    assert (vip["title"], vip["strategy"], vip["priority"], vip["push_timeout"]) == (
        "VIP",
        "longest_idle",
        50,
        12.5,
    )
    assert call(server, "PUT", "/queues/vip", {"strategy": "least_active"}).status_code == 200
    assert call(server, "GET", "/queues/vip").json()["strategy"] == "least_active"
    assert next(q["name"] for q in call(server, "GET", "/queues").json()["queues"]) == "support"
    assert call(server, "DELETE", "/queues/vip").status_code == 204
    problem(call(server, "GET", "/queues/vip"), 404)
    problem(call(server, "DELETE", "/queues/vip"), 404, "name")
    # a queue with members cannot go
    problem(call(server, "DELETE", "/queues/billing"), 409, "name")

    statuses = {s["name"]: s for s in call(server, "GET", "/statuses").json()["statuses"]}
    assert statuses["Available"]["routable"] is True
    assert statuses["Break"]["routable"] is False
    assert statuses["Break"]["reasons"] == ["Coffee", "Meeting", "Training"]
    channels = {c["name"]: c for c in call(server, "GET", "/channels").json()["channels"]}
    assert (channels["voice"]["weight"], channels["voice"]["cap"]) == (100, 1)
    assert channels["chat"]["weight"] == 25 and channels["email"]["weight"] == 10
    # an agent may read these (its panel needs them)
    assert call(server, "GET", "/statuses", role="agent", sub="alice").status_code == 200
    assert call(server, "GET", "/channels", role="agent", sub="alice").status_code == 200


def test_roles(server: ServerProcess) -> None:
    body = {"capacity": 50}
    for method, path, payload in [
        ("PUT", "/agents/alice", body),
        ("DELETE", "/agents/bob", None),
        ("PUT", "/queues/vip", {}),
        ("DELETE", "/queues/billing", None),
        ("GET", "/agents", None),
    ]:
        problem(call(server, method, path, payload, role="agent", sub="alice"), 403)
        r = problem(call(server, method, path, payload, role=None), 401)
        assert r["detail"]
        bad = call(server, method, path, payload, role=None, headers={"Authorization": "Bearer nope"})
        problem(bad, 401)
    r = call(server, "GET", "/agents", role=None)
    assert r.headers["www-authenticate"].startswith("Bearer")
    # an agent reads its own profile, not another's
    assert call(server, "GET", "/agents/alice", role="agent", sub="alice").status_code == 200
    problem(call(server, "GET", "/agents/bob", role="agent", sub="alice"), 403)
    # a service token administers like a supervisor
    assert call(server, "PUT", "/agents/dave", {"queues": []}, role="service", sub="crm").status_code == 201
    assert call(server, "DELETE", "/agents/dave", role="service", sub="crm").status_code == 204
    # nothing changed by the refused calls
    assert call(server, "GET", "/agents/alice").json()["capacity"] == 100
    assert call(server, "GET", "/agents/bob").status_code == 200


def test_bad_input_names_the_field_and_stores_nothing(server: ServerProcess) -> None:
    cases: list[tuple[str, Any, int, str | None]] = [
        ("/agents/carol", {"capacity": "lots"}, 422, "capacity"),
        ("/agents/carol", {"capacity": 0}, 422, "capacity"),
        ("/agents/carol", {"capacity": True}, 422, "capacity"),
        ("/agents/carol", {"capacity": 1.5}, 422, "capacity"),
        ("/agents/carol", {"skills": {"english": 11}}, 422, "skills.english"),
        ("/agents/carol", {"skills": {"english": 0}}, 422, "skills.english"),
        ("/agents/carol", {"skills": ["english"]}, 422, "skills"),
        ("/agents/carol", {"queues": ["support", "nope"]}, 422, "queues[1]"),
        ("/agents/carol", {"queues": "support"}, 422, "queues"),
        ("/agents/carol", {"nickname": "C"}, 422, "nickname"),
        ("/agents/carol", {"id": "someone"}, 422, "id"),
        # not an object at all: a bad request, on this route as on every other
        ("/agents/carol", [1, 2], 400, "body"),
        ("/agents/bad%20id", {}, 422, "id"),
        ("/queues/vip", {"strategy": "round_robin"}, 422, "strategy"),
        ("/queues/vip", {"push_timeout": -1}, 422, "push_timeout"),
        ("/queues/vip", {"auto_accept": "yes"}, 422, "auto_accept"),
        ("/queues/vip", {"service_level_target": 2}, 422, "service_level_target"),
        ("/queues/vip", {"colour": "red"}, 422, "colour"),
    ]
    for path, body, status, field in cases:
        body_out = problem(call(server, "PUT", path, body), status, field)
        if field and field != "body":
            assert field.split(".")[0].split("[")[0] in body_out["detail"] or body_out["field"] == field

    r = call(
        server, "PUT", "/agents/carol", content=b'{"capacity": ', headers={"Content-Type": "application/json"}
    )
    problem(r, 400)
    r = http().put(
        f"{server.http}/api/v1/agents/carol",
        content=b"capacity=5",
        headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    problem(r, 415)
    r = http().put(
        f"{server.http}/api/v1/queues/vip",
        content=b"<queue/>",
        headers={**auth(), "Content-Type": "text/xml"},
        timeout=10,
    )
    problem(r, 415)
    problem(call(server, "GET", "/agents/carol"), 404)
    problem(call(server, "GET", "/queues/vip"), 404)
    problem(call(server, "GET", "/nowhere"), 404)


async def test_conflicts_with_work_in_hand(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    await available(alice)
    wid = post_work(server, channel="chat").json()["id"]
    await alice.expect("offer")
    assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    # alice holds 25 units: a capacity of 20 would put her over it
    body = problem(
        call(server, "PUT", "/agents/alice", {"capacity": 20, "queues": ["support"]}), 409, "capacity"
    )
    assert "25" in body["detail"]
    problem(call(server, "DELETE", "/agents/alice"), 409, "agent_id")
    got = call(server, "GET", "/agents/alice").json()
    assert got["capacity"] == 100 and got["queues"] == ["support", "billing"]  # untouched
    assert call(server, "PUT", "/agents/alice", {"capacity": 25, "queues": ["support"]}).status_code == 200
    done = await alice.request({"type": "work.complete", "work_id": wid})
    assert done["type"] == "ok"
    await alice.close()
    assert call(server, "DELETE", "/agents/alice").status_code == 204


def test_api_changes_survive_restart_and_seeding(server_factory: ServerFactory) -> None:
    first = server_factory()
    assert call(first, "PUT", "/agents/alice", {"capacity": 40, "skills": {"french": 9}}).status_code == 200
    assert (
        call(first, "PUT", "/queues/support", {"strategy": "longest_idle", "priority": 3}).status_code == 200
    )
    assert call(first, "PUT", "/agents/carol", {"queues": ["support"]}).status_code == 201
    assert call(first, "PUT", "/queues/vip", {"priority": 99}).status_code == 201
    assert call(first, "DELETE", "/agents/bob").status_code == 204
    assert call(first, "DELETE", "/queues/billing").status_code == 204
    first.stop()

    second = server_factory(config=first.config)  # same center file and Redis
    alice = call(second, "GET", "/agents/alice").json()
    assert (alice["capacity"], alice["skills"], alice["queues"]) == (40, {"french": 9}, [])
    support = call(second, "GET", "/queues/support").json()
    assert (support["strategy"], support["priority"]) == ("longest_idle", 3)
    assert call(second, "GET", "/agents/carol").json()["queues"] == ["support"]
    assert call(second, "GET", "/queues/vip").json()["priority"] == 99
    problem(call(second, "GET", "/agents/bob"), 404)  # a deleted agent is not seeded again
    problem(call(second, "GET", "/queues/billing"), 404)  # nor a deleted queue
    ids = {a["id"] for a in call(second, "GET", "/agents").json()["agents"]}
    assert ids == {"alice", "carol"}
    # the API can bring them back, and then they stay
    assert call(second, "PUT", "/queues/billing", {}).status_code == 201
    assert call(second, "PUT", "/agents/bob", {"queues": ["billing"]}).status_code == 201
    second.stop()
    third = server_factory(config=first.config)
    assert call(third, "GET", "/agents/bob").json()["queues"] == ["billing"]
    assert call(third, "GET", "/queues/billing").status_code == 200


async def test_deleting_a_connected_agent_closes_its_sockets(
    redis_server: str, server_factory: ServerFactory
) -> None:
    clock = DrivenClock()
    server = server_factory(clock=clock)  # the default grace: 30 s
    assert call(server, "PUT", "/agents/carol", {"queues": ["support"]}).status_code == 201
    carol = await agent(server, "carol")
    sup = await supervisor(server)
    assert call(server, "DELETE", "/agents/carol").status_code == 204
    gone = await carol.expect("agent.removed")
    assert gone["agent_id"] == "carol"
    await asyncio.wait_for(carol.conn.wait_closed(), 5)
    assert carol.conn.close_code == 4404
    assert (await sup.expect("agent.removed"))["agent_id"] == "carol"
    clock.advance(31)  # past the grace period
    await sup.quiet(0.3)  # sweeps run every 0.05 s
    cid = server.center_id
    with redis.Redis.from_url(redis_server) as r:
        # nothing of carol is left behind (no ghost record from her socket closing)
        assert not r.exists(Keys(cid).agent("carol"))
        assert r.zscore(Keys(cid).graces, "carol") is None
        assert not [m for m in r.zrange(Keys(cid).leases, 0, -1) if m.startswith(b"carol|")]
    assert call(server, "PUT", "/agents/carol", {}).status_code == 201  # and she can come back
    again = await agent(server, "carol")
    assert again.snapshot["agent"]["status"] == "Away"


async def test_queue_with_open_items_cannot_be_deleted(server: ServerProcess) -> None:
    # an offered or held item goes back to its queue on decline or timeout:
    # deleting that queue would strand it where nobody routes
    alice = await agent(server, "alice")
    await available(alice)
    wid = post_work(server, channel="chat", queue="billing").json()["id"]
    await alice.expect("offer")
    assert call(server, "PUT", "/agents/alice", {"queues": ["support"]}).status_code == 200
    body = problem(call(server, "DELETE", "/queues/billing"), 409, "name")
    assert wid in body["detail"]
    assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    assert (await alice.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"
    assert call(server, "DELETE", "/queues/billing").status_code == 204
