"""Retries that must be safe: an agent's action sent again with the same
`ref` (the panel does so after `unavailable`, when a paused Redis may have
applied it all the same), and the server's own retry of a Redis call whose
connection broke after Redis had applied it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.conftest import ONE_AGENT_CENTER, PrivateFactory, PrivateRedis
from tests.faults.proxy import Meddler
from tests.harness import ServerProcess, WsClient, agent, available, get_work, post_work

pytestmark = pytest.mark.timeout(90)


async def _ask(client: WsClient, msg: dict[str, Any], ref: str, timeout: float = 8.0) -> dict[str, Any]:
    await client.send({**msg, "ref": ref})
    return await client.expect(lambda m: m.get("ref") == ref, timeout)


def _events(item: dict[str, Any], ev: str) -> list[dict[str, Any]]:
    return [h for h in item["history"] if h["ev"] == ev]


async def test_an_action_sent_twice_with_one_ref_is_applied_once_and_answered_alike(
    server: ServerProcess,
) -> None:
    alice = await agent(server, "alice")
    await available(alice)
    wid = post_work(server).json()["id"]
    await alice.expect("offer")
    accept = {"type": "offer.accept", "work_id": wid}
    assert (await _ask(alice, accept, "a-1"))["type"] == "ok"
    # the same ref again: the first answer, not `conflict`
    assert (await _ask(alice, accept, "a-1")) == {"type": "ok", "ref": "a-1"}
    first = await _ask(alice, {"type": "work.wrapup", "work_id": wid}, "a-2")
    again = await _ask(alice, {"type": "work.wrapup", "work_id": wid}, "a-2")
    assert first["type"] == "ok" and again == first
    done = {"type": "work.complete", "work_id": wid, "disposition": "solved"}
    assert (await _ask(alice, done, "a-3"))["type"] == "ok"
    assert (await _ask(alice, done, "a-3"))["type"] == "ok"
    item = get_work(server, wid)
    assert item["state"] == "completed"
    assert len(_events(item, "accept")) == 1 and len(_events(item, "complete")) == 1, item["history"]
    # a new action is never taken for a retry: another ref, or another
    # action under a ref already used, is applied
    assert (await _ask(alice, accept, "a-4"))["type"] == "error"
    brk = {"type": "status.set", "status": "Break", "reason": "Coffee"}
    assert (await _ask(alice, brk, "a-3"))["type"] == "ok"
    assert (await _ask(alice, {"type": "status.set", "status": "Available"}, "a-5"))["type"] == "ok"
    # the same ref with other content is another action too
    assert (await _ask(alice, brk, "a-5"))["type"] == "ok"
    snap = await alice.request({"type": "snapshot.get"})
    assert snap["agent"]["status"] == "Break"


async def test_an_accept_answered_unavailable_but_applied_is_safe_to_retry(
    private_redis: PrivateRedis, private_server_factory: PrivateFactory
) -> None:
    server = private_server_factory(ONE_AGENT_CENTER)
    alice = await agent(server, "alice")
    await available(alice)
    wid = post_work(server).json()["id"]
    await alice.expect("offer")
    private_redis.pause()
    try:
        # the accept reaches Redis's socket buffer and waits there
        first = await _ask(alice, {"type": "offer.accept", "work_id": wid}, "p-1")
    finally:
        private_redis.resume()
    assert first["type"] == "error" and first["code"] == "unavailable", first
    deadline = time.monotonic() + 10
    while get_work(server, wid)["state"] != "assigned":
        assert time.monotonic() < deadline, "the accept was not applied when Redis came back"
        await asyncio.sleep(0.1)
    # the panel retries with the same ref: the first result, not `conflict`
    retry = await _ask(alice, {"type": "offer.accept", "work_id": wid}, "p-1")
    assert retry == {"type": "ok", "ref": "p-1"}, retry
    item = get_work(server, wid)
    assert item["agent_id"] == "alice" and len(_events(item, "accept")) == 1, item


async def test_intake_without_idempotency_key_retried_after_a_lost_reply_makes_one_item(
    private_redis: PrivateRedis, private_server_factory: PrivateFactory
) -> None:
    proxy = Meddler(private_redis.port, b"work_create", "drop")
    await proxy.start()
    try:
        # started in a thread: the proxy runs on this event loop
        env = {"REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
        server = await asyncio.to_thread(private_server_factory, ONE_AGENT_CENTER, env=env)
        # every call from here in a thread too: the server needs the proxy to answer
        before = await asyncio.to_thread(_created, server)
        proxy.armed = True
        r = await asyncio.to_thread(post_work, server, subject="lost reply")
        assert proxy.dropped == 1, "the proxy did not break the connection"
        # redis-py retried the call on a fresh connection: its answer, one item
        assert r.status_code == 201, r.text
        assert await asyncio.to_thread(_created, server) == before + 1
        item = await asyncio.to_thread(get_work, server, r.json()["id"])
        assert len(_events(item, "create")) == 1, item["history"]
    finally:
        await proxy.stop()


def _created(server: ServerProcess) -> float:
    """Items created so far (the Prometheus counter, every queue and channel)."""
    text = httpx.get(f"{server.http}/metrics", timeout=10).text
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "presence_work_created"
        for s in fam.samples
        if s.name.endswith("_total")
    )
