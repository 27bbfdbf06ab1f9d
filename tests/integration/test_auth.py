"""Websocket authentication: the token is checked in the handshake, in a
header or a query parameter, and a refusal is a close code the client can
see (4401 bad token, 4403 wrong role, 4404 unknown agent)."""

from __future__ import annotations

import asyncio
import time

import jwt
import orjson
import pytest
import websockets
from websockets.typing import Origin

from presence.auth import mint
from tests.harness import JSON, MSGPACK, SECRET, ServerProcess, WsClient, token
from tests.integration.conftest import ServerFactory

pytestmark = [pytest.mark.timeout(60), pytest.mark.in_process]


async def close_code(server: ServerProcess, path: str, tok: str, **kw: object) -> int | None:
    client = await WsClient.connect(server, path, tok, expect_snapshot=False, **kw)  # type: ignore[arg-type]
    await asyncio.wait_for(client.conn.wait_closed(), 5)
    return client.conn.close_code


@pytest.mark.parametrize("subprotocol", [JSON, MSGPACK])
@pytest.mark.parametrize("via_header", [False, True])
async def test_token_in_header_or_query(server: ServerProcess, subprotocol: str, via_header: bool) -> None:
    alice = await WsClient.connect(
        server, "/ws/agent", token("agent", "alice"), subprotocol=subprotocol, via_header=via_header
    )
    assert alice.conn.subprotocol == subprotocol
    assert alice.snapshot["agent"]["agent_id"] == "alice"
    sup = await WsClient.connect(
        server,
        "/ws/supervisor",
        token("supervisor", "sue"),
        subprotocol=subprotocol,
        via_header=via_header,
    )
    assert sup.snapshot["type"] == "snapshot" and len(sup.snapshot["agents"]) == 2


async def test_bad_tokens_close_4401(server: ServerProcess) -> None:
    now = time.time()
    forged = mint("another-secret-0123456789abcdef0123456", "alice", "agent")
    expired = mint(SECRET, "alice", "agent", ttl=60, now=now - 3600)
    no_role = jwt.encode({"sub": "alice", "exp": int(now) + 60}, SECRET, algorithm="HS256")
    odd_role = jwt.encode({"sub": "alice", "role": "admin", "exp": int(now) + 60}, SECRET, algorithm="HS256")
    no_exp = jwt.encode({"sub": "alice", "role": "agent"}, SECRET, algorithm="HS256")
    none_alg = jwt.encode({"sub": "alice", "role": "agent", "exp": int(now) + 60}, None, algorithm="none")
    for bad in (forged, expired, no_role, odd_role, no_exp, none_alg, "garbage", ""):
        for path in ("/ws/agent", "/ws/supervisor"):
            assert await close_code(server, path, bad) == 4401, (path, bad)
    assert await close_code(server, "/ws/agent", forged, via_header=True) == 4401


async def test_wrong_role_closes_4403(server: ServerProcess) -> None:
    assert await close_code(server, "/ws/supervisor", token("agent", "alice")) == 4403
    assert await close_code(server, "/ws/agent", token("supervisor", "sue")) == 4403
    assert await close_code(server, "/ws/agent", token("service", "crm"), subprotocol=MSGPACK) == 4403
    assert await close_code(server, "/ws/supervisor", token("service", "crm"), via_header=True) == 4403


async def test_agent_not_in_center_closes_4404(server: ServerProcess) -> None:
    assert await close_code(server, "/ws/agent", token("agent", "mallory")) == 4404
    # the refusal left nothing behind: a supervisor sees only the configured agents
    sup = await WsClient.connect(server, "/ws/supervisor", token("supervisor", "sue"))
    assert {a["agent_id"] for a in sup.snapshot["agents"]} == {"alice", "bob"}


async def test_no_subprotocol_means_json(server: ServerProcess) -> None:
    url = f"{server.ws}/ws/agent?token={token('agent', 'alice')}"
    async with websockets.connect(url) as conn:
        assert conn.subprotocol is None
        frame = await asyncio.wait_for(conn.recv(), 5)
        assert isinstance(frame, str) and orjson.loads(frame)["type"] == "snapshot"


async def test_origin_allow_list(server_factory: ServerFactory) -> None:
    server = server_factory(env={"PRESENCE_ALLOWED_ORIGINS": "https://panel.example"})
    url = f"{server.ws}/ws/agent?token={token('agent', 'alice')}"
    async with websockets.connect(url, origin=Origin("https://evil.example")) as conn:
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert conn.close_code == 1008
    async with websockets.connect(url, origin=Origin("https://panel.example")) as conn:
        assert orjson.loads(await asyncio.wait_for(conn.recv(), 5))["type"] == "snapshot"
    async with websockets.connect(url) as conn:  # not a browser: no Origin header
        assert orjson.loads(await asyncio.wait_for(conn.recv(), 5))["type"] == "snapshot"
