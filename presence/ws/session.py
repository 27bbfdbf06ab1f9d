"""One socket's life, for either role (``agent``, ``supervisor``).

Each socket goes through one state machine: authenticate (before accept),
accept with a subprotocol, register with the hub (events queue up), send the
snapshot, start the sender, then serve client messages one at a time until
the socket closes; on the way out it always unregisters, even when
cancelled. The handler catches everything, logs once and closes with 1011:
one bad socket never takes the process down. A `Role` says what differs
between the two endpoints (``presence/ws/agent.py``, ``supervisor.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.exceptions import OutOfMemoryError, RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from presence import protocol
from presence.auth import AuthError, Claims, bearer, verify
from presence.context import Context, Workspaces
from presence.protocol import Close, ErrorCode, ProtocolError
from presence.schema.messages import ClientMessage, Ping, SnapshotGet
from presence.store import ScriptError, ref_key, retry_key
from presence.ws.hub import Conn, Hub
from presence.ws.wire import WIRE, Wire

log = logging.getLogger("presence.ws")


# A handler takes the Struct of its message type (`presence.schema.messages`).
Handler = Callable[[Context, Conn, Any], Awaitable[dict[str, Any] | None]]


def _pick_subprotocol(ws: WebSocket) -> str:
    offered: list[str] = ws.scope.get("subprotocols") or []
    for p in offered:
        if p in protocol.SUBPROTOCOLS:
            return p
    # no subprotocol asked for (wscat, curl): JSON, the readable one
    return protocol.JSON


async def _authenticate(ws: WebSocket, centers: Workspaces, role: str) -> tuple[Claims, str, Context] | None:
    """Check origin and token before accepting; refuse with a close code.

    The token is verified before the handshake is accepted. Browsers cannot
    read the HTTP status of a refused handshake, so a refusal is sent as an
    accept followed at once by a close with a 44xx code they can see. The
    socket serves the token's center (and a center that does not exist is
    refused as an invalid token).
    """
    sub = _pick_subprotocol(ws)
    origin = ws.headers.get("origin")
    allowed = centers.default.allowed_origins
    if allowed and origin is not None and origin not in allowed:
        await _refuse(ws, sub, Close.POLICY, "origin not allowed")
        return None
    token = bearer(ws.headers.get("authorization")) or ws.query_params.get("token")
    try:
        claims = verify(centers.default.secret, token)
    except AuthError as exc:
        await _refuse(ws, sub, Close.UNAUTHORIZED, str(exc))
        return None
    if claims.role != role:
        await _refuse(ws, sub, Close.FORBIDDEN, f"this endpoint needs a {role} token")
        return None
    ctx = await centers.resolve(claims.center)
    if ctx is None:
        await _refuse(ws, sub, Close.UNAUTHORIZED, f"the token's center {claims.center!r} does not exist")
        return None
    return claims, sub, ctx


async def _refuse(ws: WebSocket, sub: str, code: int, reason: str) -> None:
    offered = ws.scope.get("subprotocols") or []
    with contextlib.suppress(WebSocketDisconnect):  # it left already: refused all the same
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
    spec: protocol.Inbound,
    handlers: Mapping[type[ClientMessage], Handler],
    limit: RateLimit,
    expires: float = float("inf"),
) -> None:
    """The receive loop: one message at a time, every failure an `error`."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        conn.last_seen = time.monotonic()
        if ctx.store.clock() >= expires:
            # a token is good for its lifetime, not for the socket's: the
            # client must fetch a new one (clients ping, so this is prompt);
            # the store's clock, so that a test can drive it
            await ws.close(Close.UNAUTHORIZED, "the token has expired")
            return
        if not limit.allow():
            await ws.close(Close.POLICY, "message rate limit exceeded")
            return
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes") or b""
        ref = None
        # events for this socket meanwhile (its change's own, above all) go
        # out in the reply's write (`Conn.hold`)
        conn.hold()
        try:
            msg = protocol.decode(frame, conn.subprotocol, spec)
            if type(msg) is SnapshotGet:
                conn.hold(bounded=False)  # nothing may overtake the snapshot
            ref = msg.ref
            # An agent's action with a ref is remembered under it: a retry
            # (after `unavailable`, when Redis may have applied it anyway) is
            # answered with the first result instead of applying it again.
            if ref is not None and conn.role == "agent":
                with retry_key(ref_key(conn.subject, ref)):
                    reply = await handlers[type(msg)](ctx, conn, msg)
            else:
                # no key to set: the socket's task never has one outside this
                # block (a ping, a supervisor's message; no context manager)
                reply = await handlers[type(msg)](ctx, conn, msg)
        except ProtocolError as exc:
            reply = exc.to_message()
        except ScriptError as exc:
            reply = _script_error(exc, ref).to_message()
        except OutOfMemoryError as exc:
            # refused before any write: nothing was applied, a retry is safe
            log.warning("request refused, Redis is full: %s", exc)
            reply = protocol.error(
                ErrorCode.UNAVAILABLE,
                "the server's store is full (Redis maxmemory reached); nothing was changed, try again later",
                ref=ref,
            )
        except (RedisError, OSError) as exc:
            log.warning("request failed, Redis unavailable: %s", exc)
            reply = protocol.error(
                ErrorCode.UNAVAILABLE, "the server's store is unavailable; try again", ref=ref
            )
        # without a ref nobody waits for the `ok`: skip the frame (errors still go)
        if reply is not None and (ref is not None or reply["type"] != "ok"):
            await conn.send_message(reply)
        else:
            conn.release()


# -- what both roles share ---------------------------------------------------


async def ping(ctx: Context, conn: Conn, msg: Ping) -> dict[str, Any]:
    return protocol.pong(msg.ref, msg.ts, ctx.store.now_ms())


def with_ref(snapshot: dict[str, Any], msg: ClientMessage) -> dict[str, Any]:
    """A snapshot sent as the answer to `snapshot.get` carries its ref."""
    if msg.ref is not None:
        snapshot["ref"] = msg.ref
    return snapshot


class Refused(Exception):
    """The socket cannot be served after all; closed with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Role:
    """What differs between the agent and the supervisor socket."""

    endpoint: protocol.Endpoint
    # by message Struct: every type of `endpoint.inbound`, no other
    handlers: Mapping[type[ClientMessage], Handler]
    # register with the hub, then return the first snapshot (may raise Refused)
    start: Callable[[Context, Hub, Conn], Awaitable[dict[str, Any]]]
    resync: Callable[[Context, Conn], Awaitable[None]]
    # unregister from the hub and release what `start` took
    finish: Callable[[Context, Hub, Conn], Awaitable[None]]

    @property
    def name(self) -> str:
        return self.endpoint.role


async def _failed(ws: WebSocket, role: Role, conn: Conn) -> None:
    """A socket the server failed on (called while handling the exception):
    logged once with its traceback, closed 1011."""
    log.exception("%s socket of %s failed", role.name, conn.subject)
    with contextlib.suppress(Exception):
        await ws.close(Close.INTERNAL, "internal error")


async def run(ws: WebSocket, role: Role) -> None:
    """One socket's life: authenticate, accept, start (register + snapshot),
    serve messages, and always finish, even when cancelled."""
    auth = await _authenticate(ws, ws.app.state.centers, role.name)
    if auth is None:
        return
    claims, sub, ctx = auth
    # the hub of the token's center: its sockets hear only that center's events
    hub: Hub = ws.app.state.hubs[ctx.center.id]
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol=sub if sub in offered else None)
    # the socket's own transport, when served by `Wire` (frames written at once)
    wire = (ws.scope.get("extensions") or {}).get(WIRE)
    if not isinstance(wire, Wire):
        wire = None
    conn = Conn(ws.send, sub, role.name, claims.sub, wire)
    # one budget for the socket's messages and its control frames (pings,
    # pongs), which the server's websocket layer charges (`presence.ws.wire`)
    limit = RateLimit(ctx.rate_per_second, ctx.rate_burst)
    if wire is not None:
        wire.budget.allow = limit.allow
    try:
        async with ctx.starts:
            first = await role.start(ctx, hub, conn)
        await conn.send_message(first)
        conn.snapshot_sent = True
        conn.sender = asyncio.create_task(conn.run_sender(lambda c: role.resync(ctx, c)))
        await _serve(ws, conn, ctx, role.endpoint.inbound, role.handlers, limit, claims.exp)
    except Refused as exc:
        with contextlib.suppress(WebSocketDisconnect):
            await ws.close(exc.code, exc.reason[:120])
    except WebSocketDisconnect:
        # The client left while we were sending (a closed tab, a load test
        # stopping, a socket this server closed for abuse): ordinary,
        # nothing an operator has to act on, so no ERROR and no traceback.
        log.debug("%s socket of %s: the client left while the server was sending", role.name, conn.subject)
    except (RedisError, OSError) as exc:
        log.warning("%s socket of %s ended, Redis unavailable: %s", role.name, conn.subject, exc)
        with contextlib.suppress(Exception):
            await ws.close(Close.TRY_AGAIN, "store unavailable")
    except RuntimeError as exc:
        if ws.application_state is WebSocketState.DISCONNECTED:
            # the sender task found the client gone first, and starlette
            # refuses every send after that: the same ordinary end
            log.debug("%s socket of %s: the client left (%s)", role.name, conn.subject, exc)
        else:
            await _failed(ws, role, conn)
    except Exception:
        await _failed(ws, role, conn)
    finally:
        _stop_sender(conn)
        await role.finish(ctx, hub, conn)
