"""The two websocket endpoints the app mounts, and the hub's resync hook."""

from __future__ import annotations

from starlette.websockets import WebSocket

from presence.context import Context
from presence.ws import agent, supervisor
from presence.ws.hub import Conn
from presence.ws.session import run


async def agent_endpoint(ws: WebSocket) -> None:
    await run(ws, agent.ROLE)


async def supervisor_endpoint(ws: WebSocket) -> None:
    await run(ws, supervisor.ROLE)


async def resync(ctx: Context, conn: Conn) -> None:
    """A fresh snapshot for a socket that may have missed events (the hub asks)."""
    if conn.role == "agent":
        await agent.resync(ctx, conn)
    else:
        await supervisor.resync(ctx, conn)
