"""A second center on a Redis Cluster: its events reach its sockets.

Events are published with SPUBLISH on the shard of the center's keys; each
center's hub subscribes there (`Store.events`, SSUBSCRIBE). A subscription
on another node, or a plain SUBSCRIBE, would never see them: the agent of
the second center would get no offer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import httpx
import pytest
import redis

from presence.auth import mint
from tests.harness import SECRET, ServerProcess, agent, available, post_work, supervisor
from tests.helpers import REDIS_MODES, redis_of
from tests.integration.conftest import ServerFactory
from tests.integration.test_centers import _forget

PLATFORM = mint(SECRET, "ops", "platform")


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


async def test_a_second_centers_sockets_get_its_events(
    server_factory: ServerFactory, redis_server: str
) -> None:
    server = server_factory()
    # several centers, so that they lie on different shards of the cluster
    centers = [f"shard{uuid.uuid4().hex[:8]}{i}" for i in range(4)]
    try:
        await _route_in_each(server, centers)
    finally:
        # the session's standalone Redis is shared with later tests (a
        # cluster test starts from a flushed cluster: MOVED here, nothing to do)
        with contextlib.suppress(redis.exceptions.ResponseError):
            for cid in centers:
                _forget(redis_server, cid)


def _put(server: ServerProcess, cid: str, doc: dict[str, Any]) -> httpx.Response:
    return httpx.put(
        f"{server.http}/api/v1/centers/{cid}",
        json=doc,
        headers={"Authorization": f"Bearer {PLATFORM}"},
        timeout=10,
    )


async def _route_in_each(server: ServerProcess, centers: list[str]) -> None:
    for cid in centers:
        doc = {"queues": [{"name": "support"}], "agents": [{"id": "kenji", "queues": ["support"]}]}
        r = await asyncio.to_thread(_put, server, cid, doc)
        assert r.status_code in (200, 201), r.text
    for cid in centers:
        kenji = await agent(server, "kenji", center=cid)
        sup = await supervisor(server, "sue", center=cid)
        await available(kenji)
        wid = post_work(server, queue="support", center=cid).json()["id"]
        offer = await kenji.expect("offer")
        assert offer["work_id"] == wid
        # the wallboard of that center saw its agent become Available, by the same feed
        await sup.expect(lambda m: "kenji" in str(m) and "Available" in str(m), timeout=10)
        await kenji.close()
        await sup.close()
