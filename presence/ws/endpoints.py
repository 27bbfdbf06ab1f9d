"""The two websocket endpoints the app mounts (`ROUTES`, at the paths of
`presence.protocol`), and the hub's resync hook."""

from __future__ import annotations

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from presence import protocol
from presence.context import Context
from presence.ws import agent, supervisor
from presence.ws.hub import Conn
from presence.ws.session import run


async def agent_endpoint(ws: WebSocket) -> None:
    await run(ws, agent.ROLE)


async def supervisor_endpoint(ws: WebSocket) -> None:
    await run(ws, supervisor.ROLE)


ROUTES = [
    WebSocketRoute(protocol.AGENT.path, agent_endpoint),
    WebSocketRoute(protocol.SUPERVISOR.path, supervisor_endpoint),
]


async def resync(ctx: Context, conn: Conn) -> None:
    """A fresh snapshot for a socket that may have missed events (the hub asks)."""
    if conn.role == "agent":
        await agent.resync(ctx, conn)
    else:
        await supervisor.resync(ctx, conn)
