"""Redis faults: a restart (embedded, with its append-only file) and an
outage of several seconds (the process paused with SIGSTOP). Every state
comes back, the server reconnects on its own, clients are told (`resync`,
then a fresh snapshot; or a prompt `unavailable` error, never a hang)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import websockets

from presence.store.client import redis_client
from tests.faults.conftest import PrivateFactory, PrivateRedis
from tests.harness import ServerProcess, agent, available, post_work, supervisor, token
from tests.helpers import http

pytestmark = pytest.mark.timeout(90)

CENTER = """
[[queues]]
name = "support"
push_timeout = 30

[[queues]]
name = "later"

[[agents]]
id = "alice"
queues = ["support"]

[[agents]]
id = "bob"
queues = ["support"]
"""

AUTH = {"Authorization": f"Bearer {token('service', 'crm')}"}


def _get(server: ServerProcess, path: str) -> httpx.Response:
    return http().get(f"{server.http}{path}", headers=AUTH, timeout=15)


def _state(server: ServerProcess, ids: list[str]) -> dict[str, Any]:
    agents = {a["id"]: a["live"] for a in _get(server, "/api/v1/agents").json()["agents"]}
    for live in agents.values():
        live.pop("ver", None)
    return {
        "agents": agents,
        "queues": _get(server, "/api/v1/queues").json(),
        "items": {wid: _get(server, f"/api/v1/work/{wid}").json() for wid in ids},
    }


def _wait_ready(server: ServerProcess, limit: float = 20.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            if http().get(f"{server.http}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready again after {limit}s")


async def test_redis_restart_keeps_everything(
    private_redis: PrivateRedis, private_server_factory: PrivateFactory
) -> None:
    server = private_server_factory(CENTER)
    alice = await agent(server, "alice")
    await available(alice)
    sup = await supervisor(server)
    in_hand = post_work(server, subject="in hand").json()["id"]
    await alice.expect("offer")
    assert (await alice.request({"type": "offer.accept", "work_id": in_hand}))["type"] == "ok"
    waiting = post_work(server, queue="later", subject="waiting").json()["id"]
    offered = post_work(server, subject="offered").json()["id"]
    await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == offered)
    ids = [in_hand, waiting, offered]
    before = _state(server, ids)
    assert before["items"][offered]["state"] == "offered"

    private_redis.stop()  # SHUTDOWN: the AOF is flushed
    assert _get(server, "/healthz").status_code == 200
    private_redis.start()  # same directory, same port

    _wait_ready(server)
    # the hub's listener resubscribed and told every socket to resynchronise
    await alice.expect("resync", timeout=10)
    snap = await alice.expect("snapshot", timeout=10)
    assert [w["work_id"] for w in snap["work"]] == [in_hand]
    assert [o["work_id"] for o in snap["offers"]] == [offered]
    assert snap["agent"]["status"] == "Available"
    await sup.expect("resync", timeout=10)
    sup_snap = await sup.expect("snapshot", timeout=10)
    assert {a["agent_id"] for a in sup_snap["agents"]} == {"alice", "bob"}

    after = _state(server, ids)
    assert after == before
    # and it works: the offer is accepted, new work is routed and completed
    assert (await alice.request({"type": "offer.accept", "work_id": offered}))["type"] == "ok"
    bob = await agent(server, "bob")
    await available(bob)
    fresh = post_work(server, subject="after restart").json()["id"]
    offer = await bob.expect(lambda m: m["type"] == "offer" and m["work_id"] == fresh)
    assert (await bob.request({"type": "offer.accept", "work_id": offer["work_id"]}))["type"] == "ok"
    for client, wid in ((alice, in_hand), (alice, offered), (bob, fresh)):
        reply = await client.request({"type": "work.complete", "work_id": wid})
        assert reply["type"] == "ok", reply
    assert "Traceback" not in server.logs()


async def test_redis_unreachable_then_back(
    private_redis: PrivateRedis, private_server_factory: PrivateFactory
) -> None:
    server = private_server_factory(CENTER, env={"PRESENCE_HEARTBEAT_TIMEOUT": "60"})
    alice = await agent(server, "alice")
    await available(alice)
    queued = post_work(server, queue="later").json()["id"]

    private_redis.pause()
    paused_at = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            health, ready, api, work = await asyncio.gather(
                http.get(f"{server.http}/healthz"),
                http.get(f"{server.http}/readyz"),
                http.get(f"{server.http}/api/v1/work/{queued}", headers=AUTH),
                http.post(
                    f"{server.http}/api/v1/work",
                    headers=AUTH,
                    json={"channel": "chat", "queue": "support", "skills": {}},
                ),
            )
            http_latency = time.monotonic() - paused_at
        assert health.status_code == 200
        assert ready.status_code == 503, ready.text
        assert ready.headers["content-type"] == "application/problem+json"
        for r in (api, work):
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == 503
            assert r.headers["retry-after"] == "1"
        assert http_latency < 6.0, http_latency

        # a connected agent gets a clear error, not a hang
        sent = time.monotonic()
        reply = await alice.request({"type": "status.set", "status": "Break"}, timeout=10)
        assert reply["type"] == "error" and reply["code"] == "unavailable", reply
        assert time.monotonic() - sent < 6.0
        # a new socket is refused with "try again" (1013), not left hanging
        sent = time.monotonic()
        bob = await agent(server, "bob", expect_snapshot=False)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await bob.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert time.monotonic() - sent < 6.0
        assert time.monotonic() - paused_at > 3.0  # Redis really was gone several seconds
    finally:
        private_redis.resume()

    _wait_ready(server, 15)
    # service resumes by itself: the same socket works, new work is routed
    assert (await alice.request({"type": "ping"}))["type"] == "pong"
    await available(alice)
    wid = post_work(server, subject="after outage").json()["id"]
    offer = await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == wid, timeout=10)
    assert (await alice.request({"type": "offer.accept", "work_id": offer["work_id"]}))["type"] == "ok"
    assert (await alice.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"
    bob = await agent(server, "bob")
    assert bob.snapshot["agent"]["agent_id"] == "bob"
    assert "Traceback" not in server.logs()


async def test_pooled_connections_survive_a_restart(private_redis: PrivateRedis) -> None:
    """Every pooled connection is stale after a restart; each call must
    reconnect and succeed (a command, a script, a pipeline), not fail with
    "Connection closed by server". A wrong `Retry` class once made that a
    flaky 503 just after `/readyz` turned green again."""
    client = redis_client(private_redis.url)
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    n = 12

    async def fill_pool() -> None:
        # n calls at once hold n connections, all returned to the pool
        await asyncio.gather(*(client.blpop(["nothing"], timeout=0.05) for _ in range(n)))

    try:
        await fill_pool()
        private_redis.stop()
        private_redis.start()
        results = await asyncio.gather(
            *(client.get("k") for _ in range(n // 3)),
            *(script(keys=["k"]) for _ in range(n // 3)),
            *(client.pipeline(transaction=False).get("k").hgetall("h").execute() for _ in range(n // 3)),
        )
        assert sorted(r for r in results[n // 3 : 2 * (n // 3)]) == list(range(1, n // 3 + 1))
    finally:
        await client.aclose()
