"""A half-open pub/sub connection: the TCP path between the server and
Redis stops delivering without a FIN or a RST (a partition, a NAT or a
firewall that forgot the flow, a peer host gone). Simulated honestly with a
real TCP proxy that keeps both sockets open and drops every byte of the
subscribed connection. The listener must notice within seconds (it PINGs a
silent subscription), subscribe again on a new connection, and resync its
sockets, as after a Redis restart; new work then reaches the agent."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.faults.conftest import ONE_AGENT_CENTER, PrivateFactory, PrivateRedis
from tests.faults.proxy import BlackholeProxy
from tests.harness import agent, available, post_work

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def proxy(private_redis: PrivateRedis) -> Iterator[BlackholeProxy]:
    p = BlackholeProxy(private_redis.port).start()
    try:
        yield p
    finally:
        p.stop()


async def test_half_open_subscription_is_detected_and_resynced(
    private_server_factory: PrivateFactory, proxy: BlackholeProxy
) -> None:
    server = private_server_factory(
        ONE_AGENT_CENTER, env={"REDIS_URL": proxy.url, "PRESENCE_HEARTBEAT_TIMEOUT": "60"}
    )
    alice = await agent(server, "alice")
    await available(alice)
    assert proxy.subscribers() == 1  # the hub's listener goes through the proxy

    assert proxy.freeze() == 1  # the subscribed flow goes silent; nothing is closed
    frozen_at = time.monotonic()
    resync = await alice.expect("resync", timeout=15)
    detected = time.monotonic() - frozen_at
    assert resync["type"] == "resync"
    assert detected < 8.0, detected
    assert proxy.subscribers() == 1  # subscribed again, on a new connection

    # events flow again: new work is offered to the agent
    await alice.expect("snapshot", timeout=10)
    wid = post_work(server, subject="after the partition").json()["id"]
    offer = await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == wid, timeout=10)
    assert (await alice.request({"type": "offer.accept", "work_id": offer["work_id"]}))["type"] == "ok"
    assert (await alice.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"
    logs = server.logs()
    assert "pub/sub listener lost Redis" in logs and "not even a PONG" in logs, logs[-2000:]
    assert "Traceback" not in logs
