"""The supervisor socket (``/ws/supervisor``): its messages, its snapshot, its role.

A supervisor sees every agent and queue: its snapshot is every agent's
view and the queue figures; the hub then sends it coalesced deltas.
"""

from __future__ import annotations

from typing import Any

from presence import protocol
from presence.context import Context
from presence.schema import messages as m
from presence.store import cases as case_store
from presence.ws import cases
from presence.ws.hub import Conn, Hub
from presence.ws.session import Handler, Role, ping, with_ref


async def _force_status(ctx: Context, conn: Conn, msg: m.AgentStatusSet) -> dict[str, Any]:
    woke = await ctx.store.set_status(
        msg.agent_id, msg.status, msg.reason or "", f"supervisor:{conn.subject}"
    )
    ctx.dispatcher.wake(woke)
    return protocol.ok(msg.ref)


async def snapshot(ctx: Context) -> dict[str, Any]:
    statuses, channels = await ctx.catalog()
    return protocol.supervisor_snapshot(
        await ctx.store.views(),
        await ctx.store.queue_stats(protocol.WAITING_LISTED),
        statuses,
        channels,
        ctx.store.now_ms(),
        center=ctx.center_info(),
        composing=await case_store.composing_marks(ctx.store),
    )


async def _agent_work(ctx: Context, conn: Conn, msg: m.AgentWorkGet) -> dict[str, Any]:
    if await ctx.store.get_agent(msg.agent_id) is None:
        raise protocol.ProtocolError(
            protocol.ErrorCode.NOT_FOUND, f"no agent {msg.agent_id}", field="agent_id", ref=msg.ref
        )
    offers, work = await ctx.store.agent_items(msg.agent_id)
    return protocol.ok(msg.ref, offers=offers, work=work)


async def _snapshot_get(ctx: Context, conn: Conn, msg: m.SnapshotGet) -> dict[str, Any]:
    return with_ref(await snapshot(ctx), msg)


# the dispatch table: one handler per message of `protocol.SUPERVISOR_MESSAGES`
HANDLERS: dict[type[m.ClientMessage], Handler] = {
    m.Ping: ping,
    m.AgentStatusSet: _force_status,
    m.SnapshotGet: _snapshot_get,
    m.WorkReassign: cases.reassign,
    m.WorkPush: cases.push,
    m.WorkPull: cases.pull,
    m.AgentWorkGet: _agent_work,
}


async def _start(ctx: Context, hub: Hub, conn: Conn) -> dict[str, Any]:
    # registered first: deltas that arrive while the snapshot is read are
    # newer (higher ver) and win on the client
    hub.add_supervisor(conn)
    return await snapshot(ctx)


async def _finish(ctx: Context, hub: Hub, conn: Conn) -> None:
    hub.remove_supervisor(conn)


async def resync(ctx: Context, conn: Conn) -> None:
    await conn.send_message(await snapshot(ctx))


ROLE = Role(protocol.SUPERVISOR, HANDLERS, _start, resync, _finish)
