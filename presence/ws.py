"""The websocket endpoints: `/ws/agent` and `/ws/supervisor`.

Each socket goes through one state machine: authenticate (before accept),
accept with a subprotocol, register with the hub (events queue up), send the
snapshot, start the sender, then serve client messages one at a time until
the socket closes; on the way out it always unregisters, even when
cancelled. The handler catches everything, logs once and closes with 1011:
one bad socket never takes the process down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from starlette.websockets import WebSocket

from presence import cases, protocol
from presence.auth import AuthError, Claims, bearer, verify
from presence.hub import Conn, Hub
from presence.protocol import Close, ErrorCode, Message, ProtocolError
from presence.router.dispatcher import Dispatcher
from presence.store import AgentSnapshot, ScriptError, Store

log = logging.getLogger("presence.ws")


@dataclass
class Context:
    """What an endpoint needs, assembled once by the app."""

    store: Store
    hub: Hub
    dispatcher: Dispatcher
    secret: str
    grace: float
    lease: float
    allowed_origins: tuple[str, ...]
    rate_per_second: float
    rate_burst: int
    # The center's statuses and channels, as `Store.statuses()`/`channels()`
    # read them once after `Store.sync_center` (app.py): they change only
    # when a process starts with a new center file, so no snapshot reads
    # them again. None: read from Redis on each snapshot.
    statuses: list[dict[str, Any]] | None = None
    channels: list[dict[str, Any]] | None = None

    async def catalog(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The statuses and channels every snapshot carries."""
        statuses = self.statuses if self.statuses is not None else await self.store.statuses()
        channels = self.channels if self.channels is not None else await self.store.channels()
        return statuses, channels


Handler = Callable[[Context, Conn, Message], Awaitable[dict[str, Any] | None]]


def _pick_subprotocol(ws: WebSocket) -> str:
    offered: list[str] = ws.scope.get("subprotocols") or []
    for p in offered:
        if p in protocol.SUBPROTOCOLS:
            return p
    # no subprotocol asked for (wscat, curl): JSON, the readable one
    return protocol.JSON


async def _authenticate(ws: WebSocket, ctx: Context, role: str) -> tuple[Claims, str] | None:
    """Check origin and token before accepting; refuse with a close code.

    The token is verified before the handshake is accepted. Browsers cannot
    read the HTTP status of a refused handshake, so a refusal is sent as an
    accept followed at once by a close with a 44xx code they can see.
    """
    sub = _pick_subprotocol(ws)
    origin = ws.headers.get("origin")
    if ctx.allowed_origins and origin is not None and origin not in ctx.allowed_origins:
        await _refuse(ws, sub, Close.POLICY, "origin not allowed")
        return None
    token = bearer(ws.headers.get("authorization")) or ws.query_params.get("token")
    try:
        claims = verify(ctx.secret, token)
    except AuthError as exc:
        await _refuse(ws, sub, Close.UNAUTHORIZED, str(exc))
        return None
    if claims.role != role:
        await _refuse(ws, sub, Close.FORBIDDEN, f"this endpoint needs a {role} token")
        return None
    return claims, sub


async def _refuse(ws: WebSocket, sub: str, code: int, reason: str) -> None:
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol=sub if sub in offered else None)
    await ws.close(code, reason)


class RateLimit:
    """Token bucket per socket: a client flooding messages is closed (1008)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _stop_sender(conn: Conn) -> None:
    """Cancel the socket's sender task and let go of it.

    The cancelled task keeps its CancelledError, whose traceback holds the
    sender's frame and so the Conn: while the Conn also held the task, the
    whole socket (Conn, WebSocket, transport, ~75 objects) was a reference
    cycle that only a full garbage collection could free. Dropped here, it
    is freed as soon as the task ends.
    """
    if conn.sender is not None:
        conn.sender.cancel()
        conn.sender = None


def _script_error(exc: ScriptError, ref: Any) -> ProtocolError:
    return ProtocolError(exc.code, exc.message, field=exc.field, ref=ref)


async def _serve(
    ws: WebSocket,
    conn: Conn,
    ctx: Context,
    spec: Mapping[str, Any],
    handlers: Mapping[str, Handler],
    expires: float = float("inf"),
) -> None:
    """The receive loop: one message at a time, every failure an `error`."""
    limit = RateLimit(ctx.rate_per_second, ctx.rate_burst)
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        conn.last_seen = time.monotonic()
        if time.time() >= expires:
            # a token is good for its lifetime, not for the socket's: the
            # client must fetch a new one (clients ping, so this is prompt)
            await ws.close(Close.UNAUTHORIZED, "the token has expired")
            return
        if not limit.allow():
            await ws.close(Close.POLICY, "message rate limit exceeded")
            return
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes") or b""
        ref = None
        try:
            msg = protocol.decode(frame, conn.subprotocol, spec)
            ref = msg.ref
            reply = await handlers[msg.type](ctx, conn, msg)
        except ProtocolError as exc:
            reply = exc.to_message()
        except ScriptError as exc:
            reply = _script_error(exc, ref).to_message()
        except (RedisError, OSError) as exc:
            log.warning("request failed, Redis unavailable: %s", exc)
            reply = protocol.error(
                ErrorCode.UNAVAILABLE, "the server's store is unavailable; try again", ref=ref
            )
        # without a ref nobody waits for the `ok`: skip the frame (errors still go)
        if reply is not None and (ref is not None or reply["type"] != "ok"):
            await conn.send_message(reply)


# -- agent -------------------------------------------------------------------


async def _ping(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    return protocol.pong(msg.ref, msg.data.get("ts"), ctx.store.now_ms())


async def _status_set(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    woke = await ctx.store.set_status(
        conn.subject, msg.data["status"], msg.data["reason"] or "", conn.subject
    )
    ctx.dispatcher.wake(woke)
    return protocol.ok(msg.ref)


async def _accept(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    await ctx.store.accept(conn.subject, msg.data["work_id"])
    return protocol.ok(msg.ref)


async def _decline(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    woke = await ctx.store.decline(conn.subject, msg.data["work_id"], msg.data["reason"] or "")
    ctx.dispatcher.wake(woke)
    return protocol.ok(msg.ref)


async def _wrapup(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    deadline = await ctx.store.wrapup(conn.subject, msg.data["work_id"])
    return protocol.ok(msg.ref, wrapup_until=deadline)


async def _complete(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    woke = await ctx.store.complete(conn.subject, msg.data["work_id"], msg.data["disposition"] or "")
    ctx.dispatcher.wake(woke)
    return protocol.ok(msg.ref)


async def _agent_snapshot_message(ctx: Context, snap: AgentSnapshot) -> dict[str, Any]:
    agent, offers, work = snap
    statuses, channels = await ctx.catalog()
    return protocol.agent_snapshot(agent, offers, work, statuses, channels, ctx.store.now_ms())


async def agent_snapshot(ctx: Context, conn: Conn) -> dict[str, Any]:
    return await _agent_snapshot_message(ctx, await ctx.store.agent_snapshot(conn.subject))


async def _agent_snapshot_get(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    snap = await agent_snapshot(ctx, conn)
    if msg.ref is not None:
        snap["ref"] = msg.ref
    return snap


AGENT_HANDLERS: dict[str, Handler] = {
    "ping": _ping,
    "status.set": _status_set,
    "offer.accept": _accept,
    "offer.decline": _decline,
    "work.wrapup": _wrapup,
    "work.complete": _complete,
    "snapshot.get": _agent_snapshot_get,
    "work.note": cases.ws_note,
    "work.transfer": cases.ws_transfer,
    "call.control": cases.ws_call_control,
}


class Refused(Exception):
    """The socket cannot be served after all; closed with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Role:
    """What differs between the agent and the supervisor socket."""

    name: str
    spec: Mapping[str, tuple[protocol.F, ...]]
    handlers: Mapping[str, Handler]
    # register with the hub, then return the first snapshot (may raise Refused)
    start: Callable[[Context, Conn], Awaitable[dict[str, Any]]]
    resync: Callable[[Context, Conn], Awaitable[None]]
    # unregister from the hub and release what `start` took
    finish: Callable[[Context, Conn], Awaitable[None]]


async def _session(ws: WebSocket, role: Role) -> None:
    """One socket's life: authenticate, accept, start (register + snapshot),
    serve messages, and always finish, even when cancelled."""
    ctx: Context = ws.app.state.ctx
    auth = await _authenticate(ws, ctx, role.name)
    if auth is None:
        return
    claims, sub = auth
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol=sub if sub in offered else None)
    conn = Conn(ws.send, sub, role.name, claims.sub)
    try:
        await conn.send_message(await role.start(ctx, conn))
        conn.snapshot_sent = True
        conn.sender = asyncio.create_task(conn.run_sender(lambda c: role.resync(ctx, c)))
        await _serve(ws, conn, ctx, role.spec, role.handlers, claims.exp)
    except Refused as exc:
        await ws.close(exc.code, exc.reason[:120])
    except (RedisError, OSError) as exc:
        log.warning("%s socket of %s ended, Redis unavailable: %s", role.name, conn.subject, exc)
        with contextlib.suppress(Exception):
            await ws.close(Close.TRY_AGAIN, "store unavailable")
    except Exception:
        log.exception("%s socket of %s failed", role.name, conn.subject)
        with contextlib.suppress(Exception):
            await ws.close(Close.INTERNAL, "internal error")
    finally:
        _stop_sender(conn)
        await role.finish(ctx, conn)


async def _agent_start(ctx: Context, conn: Conn) -> dict[str, Any]:
    ctx.hub.add_agent(conn)
    try:
        # the socket's registration and its snapshot's reads: one script call
        woke, snap = await ctx.store.conn_open_snapshot(conn.subject, conn.id, ctx.lease)
    except ScriptError as exc:
        raise Refused(Close.UNKNOWN_AGENT, exc.message) from None
    conn.registered = True
    ctx.dispatcher.wake(woke)
    return await _agent_snapshot_message(ctx, snap)


async def _agent_finish(ctx: Context, conn: Conn) -> None:
    ctx.hub.remove_agent(conn)
    if conn.registered:
        # shielded: a cancelled handler (shutdown) must still release the socket
        with contextlib.suppress(Exception):
            await asyncio.shield(ctx.store.conn_close(conn.subject, conn.id, ctx.grace))


async def _resync_agent(ctx: Context, conn: Conn) -> None:
    await conn.send_message(await agent_snapshot(ctx, conn))


# -- supervisor --------------------------------------------------------------


async def _force_status(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    woke = await ctx.store.set_status(
        msg.data["agent_id"],
        msg.data["status"],
        msg.data["reason"] or "",
        f"supervisor:{conn.subject}",
    )
    ctx.dispatcher.wake(woke)
    return protocol.ok(msg.ref)


async def supervisor_snapshot(ctx: Context) -> dict[str, Any]:
    statuses, channels = await ctx.catalog()
    return protocol.supervisor_snapshot(
        await ctx.store.views(),
        await ctx.store.queue_stats(),
        statuses,
        channels,
        ctx.store.now_ms(),
    )


async def _supervisor_snapshot_get(ctx: Context, conn: Conn, msg: Message) -> dict[str, Any]:
    snap = await supervisor_snapshot(ctx)
    if msg.ref is not None:
        snap["ref"] = msg.ref
    return snap


SUPERVISOR_HANDLERS: dict[str, Handler] = {
    "ping": _ping,
    "agent.status.set": _force_status,
    "snapshot.get": _supervisor_snapshot_get,
    "work.reassign": cases.ws_reassign,
    "work.push": cases.ws_push,
    "work.pull": cases.ws_pull,
}


async def _supervisor_start(ctx: Context, conn: Conn) -> dict[str, Any]:
    # registered first: deltas that arrive while the snapshot is read are
    # newer (higher ver) and win on the client
    ctx.hub.add_supervisor(conn)
    return await supervisor_snapshot(ctx)


async def _supervisor_finish(ctx: Context, conn: Conn) -> None:
    ctx.hub.remove_supervisor(conn)


async def _resync_supervisor(ctx: Context, conn: Conn) -> None:
    await conn.send_message(await supervisor_snapshot(ctx))


async def resync(ctx: Context, conn: Conn) -> None:
    if conn.role == "agent":
        await _resync_agent(ctx, conn)
    else:
        await _resync_supervisor(ctx, conn)


AGENT = Role("agent", protocol.AGENT_MESSAGES, AGENT_HANDLERS, _agent_start, _resync_agent, _agent_finish)
SUPERVISOR = Role(
    "supervisor",
    protocol.SUPERVISOR_MESSAGES,
    SUPERVISOR_HANDLERS,
    _supervisor_start,
    _resync_supervisor,
    _supervisor_finish,
)


async def agent_endpoint(ws: WebSocket) -> None:
    await _session(ws, AGENT)


async def supervisor_endpoint(ws: WebSocket) -> None:
    await _session(ws, SUPERVISOR)
