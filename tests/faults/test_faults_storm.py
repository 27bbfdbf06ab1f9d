"""A reconnect storm: 1,000 agents on one process that shuts down all
reconnect at once to the other; every one is served (a snapshot each; at
most 5 % after one 1013 "try again later", as the panel retries), with no
error, and the center's invariants hold."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import websockets

from tests.faults.conftest import raise_nofile
from tests.harness import JSON, ServerProcess, WsClient, token, write_center
from tests.integration.conftest import ServerFactory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

N = 1000
CENTER = '[[queues]]\nname = "support"\n\n' + "".join(
    f'[[agents]]\nid = "s{i}"\nqueues = ["support"]\n\n' for i in range(N)
)


async def _agent(server: ServerProcess, agent_id: str) -> WsClient:
    """Connect with patient timeouts: in a storm the handshake queues up."""
    conn = await websockets.connect(
        f"{server.ws}/ws/agent?token={token('agent', agent_id)}",
        subprotocols=[JSON],  # type: ignore[list-item]
        open_timeout=60,
        max_size=2**24,
    )
    client = WsClient(conn, JSON)
    WsClient.opened.append(client)
    client.snapshot = await client.expect("snapshot", timeout=60)
    return client


async def _connect_all(server: ServerProcess, ids: list[str], batch: int) -> list[WsClient]:
    out: list[WsClient] = []
    for i in range(0, len(ids), batch):
        out += await asyncio.gather(*(_agent(server, a) for a in ids[i : i + batch]))
    return out


async def _agent_retrying(server: ServerProcess, agent_id: str, retried: list[str]) -> WsClient:
    """`_agent`, once more after a 1013 ("try again later", what the server
    answers when its Redis calls time out in the storm), as the panel does
    after its backoff; any other failure fails at once."""
    try:
        return await _agent(server, agent_id)
    except websockets.ConnectionClosedError as exc:
        if exc.rcvd is None or exc.rcvd.code != 1013:
            raise
        retried.append(agent_id)
        await asyncio.sleep(1.0)
        return await _agent(server, agent_id)


async def test_1000_agents_reconnect_at_once(server_factory: ServerFactory, tmp_path: Path) -> None:
    raise_nofile(8192)  # before the servers start: they inherit it
    path, _ = write_center(tmp_path / "storm.toml", CENTER)
    first = server_factory(config=path)
    second = server_factory(config=path)
    ids = [f"s{i}" for i in range(N)]
    clients = await _connect_all(first, ids, 100)
    assert all(c.snapshot["agent"]["agent_id"] == a for c, a in zip(clients, ids, strict=True))

    assert first.proc is not None
    os.kill(first.proc.pid, signal.SIGTERM)

    async def closed_code(c: WsClient) -> int | None:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await c.recv(timeout=30)
        return closed.value.rcvd.code if closed.value.rcvd else None

    codes = await asyncio.gather(*(closed_code(c) for c in clients))
    assert set(codes) == {1012}, {c: codes.count(c) for c in set(codes)}

    # all at once, no backoff: the worst case
    start = time.monotonic()
    retried: list[str] = []
    results = await asyncio.gather(
        *(_agent_retrying(second, a, retried) for a in ids), return_exceptions=True
    )
    took = time.monotonic() - start
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, f"{len(failed)} of {N} not served, e.g. {failed[:3]!r}"
    # none on an idle machine; 24 of 1,000 once in CI on a host starved by the
    # suite (2x slower that day): a few may be told to come back, not many
    assert len(retried) <= N // 20, f"{len(retried)} of {N} closed 1013 first"
    served = [r for r in results if isinstance(r, WsClient)]
    assert sorted(c.snapshot["agent"]["agent_id"] for c in served) == sorted(ids)
    assert all(c.snapshot["agent"]["connected"] for c in served[-10:])
    print(f"{N} agents reconnected and got their snapshot in {took:.1f}s ({len(retried)} after a 1013)")
    # every socket is live and answers
    pongs = await asyncio.gather(*(c.request({"type": "ping"}, timeout=30) for c in served))
    assert {p["type"] for p in pongs} == {"pong"}
    assert first.proc.wait(15) == 0
    logs = second.logs()
    assert "ERROR" not in logs and "Traceback" not in logs, logs[-3000:]
