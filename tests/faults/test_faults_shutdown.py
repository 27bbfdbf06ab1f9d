"""Graceful shutdown on SIGTERM: the server stops accepting, closes every
socket with 1012 (so clients reconnect elsewhere), finishes the requests in
flight, releases its sockets in Redis and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis
import websockets

from presence.store.keys import Keys
from tests.harness import ServerProcess, agent, available, supervisor, token, write_center
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.timeout(60)


async def test_sigterm_closes_1012_and_finishes_in_flight(
    server_factory: ServerFactory, redis_server: str, tmp_path: Path
) -> None:
    path, cid = write_center(tmp_path / "term.toml")
    server = server_factory(config=path)
    other = server_factory(config=path)
    alice = await agent(server, "alice")
    await available(alice)
    sup = await supervisor(server)
    assert server.proc is not None

    sent_first = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        body = orjson.dumps({"channel": "chat", "queue": "billing", "skills": {}, "subject": "slow"})
        yield body[:10]
        sent_first.set()
        await asyncio.sleep(1.0)
        yield body[10:]

    async with httpx.AsyncClient(timeout=20) as http:
        in_flight = asyncio.create_task(
            http.post(
                f"{server.http}/api/v1/work",
                content=slow_body(),
                headers={
                    "Authorization": f"Bearer {token('service', 'crm')}",
                    "Content-Type": "application/json",
                },
            )
        )
        await asyncio.wait_for(sent_first.wait(), 5)
        await asyncio.sleep(0.2)
        term_at = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)

        # every socket is told to reconnect elsewhere
        for client in (alice, sup):
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await client.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1012, closed.value.rcvd
        # no longer accepting
        with pytest.raises((OSError, websockets.InvalidHandshake, websockets.ConnectionClosed)):
            await agent(server, "bob")
        # the request in flight is finished, not cut
        r = await in_flight
        assert r.status_code == 201, r.text

    code = server.proc.wait(15)
    assert code == 0, server.logs()
    assert time.monotonic() - term_at < 10.0  # uvicorn's graceful timeout
    logs = server.logs()
    assert "Traceback" not in logs and "ERROR" not in logs, logs

    # its sockets were released in Redis at once (no lease left to expire)
    r2 = redis.Redis.from_url(redis_server)
    try:
        assert r2.zcard(Keys(cid).leases) == 0
        assert r2.zscore(Keys(cid).graces, "alice") is not None
    finally:
        r2.close()
    # and the agent carries on on the other process, where the item waits
    alice2 = await agent(other, "alice")
    assert alice2.snapshot["agent"]["status"] == "Available"
    offer = await alice2.expect("offer", timeout=5)
    assert offer["subject"] == "slow"
    assert (await alice2.request({"type": "offer.accept", "work_id": offer["work_id"]}))["type"] == "ok"
    assert (await alice2.request({"type": "work.complete", "work_id": offer["work_id"]}))["type"] == "ok"


def test_stop_helper_exit_code(server: ServerProcess) -> None:
    """The harness's stop() (SIGTERM to the group) ends an idle server with 0."""
    assert server.stop() == 0
