"""The agent socket (``/ws/agent``): its messages, its snapshot, its role.

An agent's socket is registered in Redis (``conn_open``, with its lease)
in the same script call that reads its first snapshot; leaving, it is
released (``conn_close``) with the grace period during which a reconnect
keeps the agent's status and offers.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from presence import protocol
from presence.context import Context
from presence.protocol import Close
from presence.schema import messages as m
from presence.store import AgentSnapshot, ScriptError
from presence.ws import cases
from presence.ws.hub import Conn, Hub
from presence.ws.session import Handler, Refused, Role, ping, with_ref


async def _status_set(ctx: Context, conn: Conn, msg: m.StatusSet) -> dict[str, Any]:
    woke = await ctx.store.set_status(conn.subject, msg.status, msg.reason or "", conn.subject)
    ctx.dispatcher.wake(woke)
    return protocol.ok(msg.ref)


async def _accept(ctx: Context, conn: Conn, msg: m.OfferAccept) -> dict[str, Any]:
    await ctx.store.accept(conn.subject, msg.work_id)
    return protocol.ok(msg.ref)


async def _decline(ctx: Context, conn: Conn, msg: m.OfferDecline) -> dict[str, Any]:
    woke = await ctx.store.decline(conn.subject, msg.work_id, msg.reason or "")
    ctx.dispatcher.wake(woke)
    return protocol.ok(msg.ref)


async def _wrapup(ctx: Context, conn: Conn, msg: m.WorkWrapup) -> dict[str, Any]:
    deadline = await ctx.store.wrapup(conn.subject, msg.work_id)
    return protocol.ok(msg.ref, wrapup_until=deadline)


async def _complete(ctx: Context, conn: Conn, msg: m.WorkComplete) -> dict[str, Any]:
    woke = await ctx.store.complete(conn.subject, msg.work_id, msg.disposition or "")
    ctx.dispatcher.wake(woke)
    return protocol.ok(msg.ref)


async def _snapshot_message(ctx: Context, snap: AgentSnapshot) -> dict[str, Any]:
    agent, offers, work = snap
    statuses, channels = await ctx.catalog()
    return protocol.agent_snapshot(
        agent, offers, work, statuses, channels, ctx.store.now_ms(), center=ctx.center_info()
    )


async def snapshot(ctx: Context, conn: Conn) -> dict[str, Any]:
    return await _snapshot_message(ctx, await ctx.store.agent_snapshot(conn.subject))


async def _snapshot_get(ctx: Context, conn: Conn, msg: m.SnapshotGet) -> dict[str, Any]:
    return with_ref(await snapshot(ctx, conn), msg)


# the dispatch table: one handler per message of `protocol.AGENT_MESSAGES`
HANDLERS: dict[type[m.ClientMessage], Handler] = {
    m.Ping: ping,
    m.StatusSet: _status_set,
    m.OfferAccept: _accept,
    m.OfferDecline: _decline,
    m.WorkWrapup: _wrapup,
    m.WorkComplete: _complete,
    m.SnapshotGet: _snapshot_get,
    m.WorkNote: cases.note,
    m.WorkTransfer: cases.transfer,
    m.CallControl: cases.call_control,
    m.WorkReply: cases.reply,
    m.WorkComposing: cases.composing,
}


async def _start(ctx: Context, hub: Hub, conn: Conn) -> dict[str, Any]:
    hub.add_agent(conn)
    try:
        # the socket's registration and its snapshot's reads: one script call
        woke, snap = await ctx.store.conn_open_snapshot(conn.subject, conn.id, ctx.lease)
    except ScriptError as exc:
        raise Refused(Close.UNKNOWN_AGENT, exc.message) from None
    conn.registered = True
    ctx.dispatcher.wake(woke)
    return await _snapshot_message(ctx, snap)


async def _finish(ctx: Context, hub: Hub, conn: Conn) -> None:
    hub.remove_agent(conn)
    if conn.registered:
        # shielded: a cancelled handler (shutdown) must still release the socket
        with contextlib.suppress(Exception):
            await asyncio.shield(ctx.store.conn_close(conn.subject, conn.id, ctx.grace))


async def resync(ctx: Context, conn: Conn) -> None:
    await conn.send_message(await snapshot(ctx, conn))


ROLE = Role(protocol.AGENT, HANDLERS, _start, resync, _finish)
