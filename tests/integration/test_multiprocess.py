"""Several processes, one Redis: two `presence serve` processes on one center
behave as one server, and the sockets of a process killed with -9 count as
gone once their lease runs out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from presence.store.keys import Keys
from tests.harness import MSGPACK, ServerProcess, agent, available, supervisor
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.timeout(60)

# A lease of 2 s is renewed every 0.67 s: short for a test, long enough that a
# busy CI machine's scheduling stalls do not let a live socket's lease lapse.
FAST = {"PRESENCE_LEASE_SECONDS": "2", "PRESENCE_GRACE_SECONDS": "0.5"}


def keys_of(server: ServerProcess) -> Keys:
    return Keys(server.center_id)


def alice_is(status: str) -> Any:
    def match(m: dict[str, Any]) -> bool:
        return m["type"] == "agents" and any(
            a["agent_id"] == "alice" and a["status"] == status for a in m["agents"]
        )

    return match


async def test_two_processes_behave_as_one(redis_server: str, server_factory: ServerFactory) -> None:
    one = server_factory()
    two = server_factory(config=one.config)
    with redis.Redis.from_url(redis_server) as r:
        # one pub/sub listener per process
        assert r.pubsub_shardnumsub(keys_of(one).events_channel)[0][1] == 2

    sup = await supervisor(two, subprotocol=MSGPACK)
    alice = await agent(one, "alice")
    assert {a["agent_id"] for a in sup.snapshot["agents"]} == {"alice", "bob"}
    await sup.expect(alice_is("Away"))  # the login, seen on the other process

    t0 = time.monotonic()
    await available(alice)
    await sup.expect(alice_is("Available"))
    assert time.monotonic() - t0 < 1.0  # milliseconds when idle; slack for a busy CI

    # a status forced on process two reaches the agent's sockets on process one
    tab2 = await agent(two, "alice", subprotocol=MSGPACK)
    t0 = time.monotonic()
    reply = await sup.request(
        {"type": "agent.status.set", "agent_id": "alice", "status": "Break", "reason": "Meeting"}
    )
    assert reply["type"] == "ok"
    for tab in (alice, tab2):
        st = await tab.expect(lambda m: m["type"] == "status" and m["status"] == "Break")
        assert st["reason"] == "Meeting"
    assert time.monotonic() - t0 < 1.0  # milliseconds when idle; slack for a busy CI

    # a supervisor on process one sees the same agents as the one on process two
    sup1 = await supervisor(one)
    views = {a["agent_id"]: a for a in sup1.snapshot["agents"]}
    assert views["alice"]["status"] == "Break" and views["alice"]["connected"] is True

    # the agent's tab on process two changes status; the tab on process one hears it
    await available(tab2)
    await alice.expect(lambda m: m["type"] == "status" and m["status"] == "Available")
    await sup1.expect(alice_is("Available"))


async def test_killed_process_sockets_expire_then_grace_then_offline(
    redis_server: str, server_factory: ServerFactory
) -> None:
    doomed = server_factory(env=FAST)
    survivor = server_factory(config=doomed.config, env=FAST)
    sup = await supervisor(survivor)
    alice = await agent(doomed, "alice")
    await available(alice)
    await sup.expect(alice_is("Available"))
    lease = keys_of(doomed).leases
    with redis.Redis.from_url(redis_server) as r:
        assert r.zcard(lease) == 1

    await asyncio.sleep(0.7)  # let the doomed process renew its leases once
    doomed.kill()
    killed = time.monotonic()
    # the socket's lease (renewed at most 0.67 s ago, so >= 1.3 s left) still runs
    got = await sup.quiet(0.8)
    assert not [m for m in got if alice_is("Offline")(m)]
    offline = await sup.expect(alice_is("Offline"), timeout=6)
    took = time.monotonic() - killed
    # lease (<= 2 s after the last renewal) + grace (0.5 s) + sweeps
    assert 0.8 <= took <= 5.0, took
    view = next(a for a in offline["agents"] if a["agent_id"] == "alice")
    assert view["reason"] == "disconnected" and view["connected"] is False
    with redis.Redis.from_url(redis_server) as r:
        assert r.zcard(lease) == 0
        assert r.hget(keys_of(doomed).agent("alice"), "conns") == b"0"
        assert r.zscore(keys_of(doomed).queue_ready("support"), "alice") is None
        last = r.xrevrange(keys_of(doomed).status_stream, count=1)[0][1]
        assert last[b"status"] == b"Offline" and last[b"by"] == b"system"
