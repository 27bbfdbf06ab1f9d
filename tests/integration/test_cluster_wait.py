"""WAIT: where the center's shard has a replica, a change is acknowledged
(HTTP 201, a websocket `ok`) only once the replica has it, and a replica
that does not answer in time turns into a 503 / `unavailable`, never into
an acknowledged change the primary alone holds."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from presence.store.keys import Keys
from tests.cluster import LocalCluster, Node
from tests.harness import agent, available, post_work
from tests.integration.conftest import ServerFactory

pytestmark = [pytest.mark.timeout(60), pytest.mark.cluster]


@pytest.fixture
def redis_server(redis_cluster: LocalCluster) -> str:
    redis_cluster.wait_ok()
    return redis_cluster.url


def waits(node: Node) -> int:
    with node.client() as c:
        return int(c.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


@contextlib.contextmanager
def paused(node: Node) -> Iterator[None]:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)


async def test_changes_wait_for_the_replica(
    redis_cluster: LocalCluster, server_factory: ServerFactory
) -> None:
    server = server_factory(env={"PRESENCE_REDIS_WAIT_TIMEOUT": "0.3"})
    owner = redis_cluster.owner(Keys(server.center_id).prefix)
    [replica] = redis_cluster.replicas_of(owner)
    alice = await agent(server, "alice")
    await available(alice)
    before = waits(owner)
    r = post_work(server, subject="one", idem="w-1")
    assert r.status_code == 201, r.text
    offer = await alice.expect("offer")
    assert waits(owner) > before  # the intake and the routing waited

    with paused(replica):
        # the replica is silent: the change is not acknowledged
        r = post_work(server, subject="two", idem="w-2")
        assert r.status_code == 503, r.text
        assert r.json()["type"].endswith("/unavailable")
        assert "not confirmed by a replica" in r.json()["detail"]
        assert r.headers["retry-after"] == "1"
        reply = await alice.request({"type": "offer.accept", "work_id": offer["work_id"]})
        assert (reply["type"], reply["code"]) == ("error", "unavailable"), reply
    redis_cluster.wait_ok()
    # the primary applied both; a retry finds them (idempotent intake, the accept done)
    r = post_work(server, subject="two", idem="w-2")
    assert r.status_code == 200, r.text
    with owner.client() as c:
        assert c.hget(Keys(server.center_id).work(offer["work_id"]), "state") == "assigned"


async def test_wait_replicas_0_turns_it_off(
    redis_cluster: LocalCluster, server_factory: ServerFactory
) -> None:
    server = server_factory(env={"PRESENCE_REDIS_WAIT_REPLICAS": "0"})
    before = {n.port: waits(n) for n in redis_cluster.primaries()}
    assert post_work(server, subject="x").status_code == 201
    assert {n.port: waits(n) for n in redis_cluster.primaries()} == before
