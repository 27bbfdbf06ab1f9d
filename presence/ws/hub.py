"""This process's sockets and its one pub/sub listener.

Every state change is published by the Lua script that made it, on one
sharded channel per center (in the center's slot: on a cluster, on the
center's shard; store/events.py). Each process subscribes once and fans
each event out to its own sockets: an agent's events to that agent's
sockets (all tabs, on any process), agent views to supervisors. Each event
is decoded once and encoded once per subprotocol, never once per socket.

Supervisors get agent views coalesced: the hub keeps the newest view of
each changed agent (by its ``ver``) and flushes them every
``supervisor_flush`` seconds as one ``agents`` message, so a burst of
changes costs a wallboard one frame, and a slow wallboard (whose send queue
backs up) is skipped and later resynchronised with a fresh snapshot instead
of slowing anyone else; one that has stopped reading altogether (its queue
full, nothing taken for ``SUPERVISOR_STALL`` seconds) is dropped with
``Close.TOO_SLOW`` and counted.

The hub holds no state that is not also in Redis: its maps are only which
sockets live here. After losing the pub/sub connection, or when the
channel moved to another node (a failover, a resharding), it may have
missed events, so it sends every socket a fresh snapshot once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.exceptions import RedisError
from starlette.types import Send
from starlette.websockets import WebSocketDisconnect

from presence import protocol
from presence.config import Settings
from presence.store import Store
from presence.store.client import closed_transport
from presence.tasks import stop_tasks
from presence.ws.wire import Wire, framed

log = logging.getLogger("presence.hub")

# Frames queued for one agent socket before it counts as hopelessly slow.
AGENT_QUEUE_MAX = 2000
# Frames queued for a supervisor before deltas are skipped (then resync).
SUPERVISOR_QUEUE_MAX = 32
# A supervisor whose queue is full and that has taken no frame for this long
# has stopped reading (a hung tab, a client that only pings): it is dropped
# with Close.TOO_SLOW and counted (`presence_websocket_dropped_total`).
SUPERVISOR_STALL = 5.0
# agent sockets whose leases one script call renews (Hub._renew_leases)
LEASE_CHUNK = 250
# Frames up to this size are written at once when a socket is idle
# (`Conn.push`); a larger one (the live KPIs with every agent's row, ~100 KB
# for 500 agents) goes through each socket's sender task, so that 100
# wallboards' copies are written in 100 steps with the loop running between
# them, not in one callback that holds every socket of the process.
WRITE_AT_ONCE_MAX = 32 * 1024
# The longest a frame for a socket waits for the reply to that socket's
# request in flight, to go out in the reply's write (`Conn.hold`).
HOLD_MAX = 0.005

_ids = itertools.count(1)
_PROCESS = f"{os.getpid():x}{int(time.time()) % 100000:05d}"


class Conn:
    """One accepted websocket and its outgoing queue.

    Frames are sent by one sender task per socket, so a slow socket never
    blocks the listener that fans events out. While that task has nothing
    to do (its queue empty, no snapshot being read) and the socket's buffer
    has room, a frame is written at once instead (`Wire.write_framed`),
    already serialized by `fanout` for every socket: no task wake-up and no
    ASGI send per frame, and the order is the queue's, since the queue was
    empty. A socket that backs up (a slow reader) goes through the queue.
    """

    __slots__ = (
        "_closed",
        "_held",
        "_holding",
        "_holding_bounded",
        "_idle",
        "_loop",
        "_queue",
        "_release_at",
        "_wake",
        "id",
        "last_seen",
        "registered",
        "resync",
        "role",
        "send",
        "sender",
        "sent_at",
        "snapshot_sent",
        "subject",
        "subprotocol",
        "wire",
    )

    def __init__(
        self, send: Send, subprotocol: str, role: str, subject: str, wire: Wire | None = None
    ) -> None:
        self.send = send
        # the socket's transport, for frames written at once (None: always queued)
        self.wire = wire
        self.subprotocol = subprotocol
        self.role = role
        self.subject = subject
        self.id = f"{_PROCESS}-{next(_ids)}"
        self.last_seen = time.monotonic()
        # when the sender last handed a frame over (a stalled reader's stops)
        self.sent_at = self.last_seen
        self.resync = False
        # the socket is registered in Redis (conn_open) and must be released
        self.registered = False
        self.snapshot_sent = False
        self.sender: asyncio.Task[None] | None = None
        self._queue: deque[str | bytes] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        # the sender waits for work with nothing in hand (False until it runs)
        self._idle = False
        # a request of this socket is in flight (`hold`): frames written at
        # once wait in `_held` for its reply, at most HOLD_MAX seconds
        self._holding = False
        self._holding_bounded = True
        self._held: list[tuple[str | bytes, bytes]] | None = None  # made when needed: idle sockets are many
        self._release_at: asyncio.TimerHandle | None = None
        # kept once known: on Python 3.11 each asyncio.get_running_loop() is
        # a getpid system call, and `push` arms a timer for most changes
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def backlog(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, frame: str | bytes, wired: bytes | None = None) -> bool:
        """Send `frame` after the frames queued before it; `wired` is the
        frame serialized by `framed`, when the caller made it already."""
        if self._closed:
            return False
        if (
            self._idle
            and not self._queue
            and not self.resync
            and self.wire is not None
            and len(frame) <= WRITE_AT_ONCE_MAX
        ):
            wired = wired if wired is not None else framed(frame)
            if self._holding:
                if self._held is None:
                    self._held = [(frame, wired)]
                else:
                    self._held.append((frame, wired))
                if self._release_at is None and self._holding_bounded:
                    loop = self._loop
                    if loop is None:
                        loop = self._loop = asyncio.get_running_loop()
                    self._release_at = loop.call_later(HOLD_MAX, self.release)
                return True
            if self.wire.write_framed(wired):
                self.sent_at = time.monotonic()
                return True
        self._unhold()
        self._queue.append(frame)
        self._wake.set()
        return True

    def push_all(self, frames: list[tuple[str | bytes, bytes | None]], whole: bytes | None) -> bool:
        """`push` each of `frames` in order; `whole`, their frames made by
        `framed` end to end (None when one is too large to go at once), is
        one write when the socket can take it now."""
        if (
            whole is not None
            and not self._closed
            and self._idle
            and not self._queue
            and not self.resync
            and not self._holding
            and self.wire is not None
            and self.wire.write_framed(whole)
        ):
            self.sent_at = time.monotonic()
            return True
        for frame, wired in frames:
            self.push(frame, wired)
        return not self._closed

    def hold(self, bounded: bool = True) -> None:
        """A request of this socket is in flight: frames that would be written
        at once (its own change's event, above all) go out with its reply, in
        one write instead of one each, unless the reply takes longer than
        HOLD_MAX. `release` ends it.

        Not `bounded`: held until the reply, however long it takes. For a
        request answered with a snapshot: an event let go after HOLD_MAX
        reached the client before the snapshot read earlier, which then
        replaced the event's newer view with its older one."""
        self._holding = True
        self._holding_bounded = bounded

    def release(self, reply: bytes = b"") -> bool:
        """End `hold`: write `reply` (a frame made by `framed`) and the frames
        held meanwhile, in one write; False when the socket could not take
        it at once (then nothing was written, the held frames are queued)."""
        self._holding = False
        self._stop_release_timer()
        if not self._held:
            if reply and self.wire is not None and self.wire.write_framed(reply):
                self.sent_at = time.monotonic()
                return True
            return False
        held, self._held = self._held, None
        if self.wire is not None and self.wire.write_framed(reply + b"".join(w for _, w in held)):
            self.sent_at = time.monotonic()
            return True
        # the socket cannot take them now: in order, before anything later
        self._queue.extendleft(f for f, _ in reversed(held))
        self._wake.set()
        return False

    def _stop_release_timer(self) -> None:
        if self._release_at is not None:
            self._release_at.cancel()
            self._release_at = None

    def _unhold(self) -> None:
        """Frames held for a reply go before a frame queued after them."""
        if self._held:
            held, self._held = self._held, None
            self._queue.extend(f for f, _ in held)

    async def send_frame(self, frame: str | bytes) -> None:
        if isinstance(frame, str):
            await self.send({"type": "websocket.send", "text": frame})
        else:
            await self.send({"type": "websocket.send", "bytes": frame})

    async def send_message(self, msg: dict[str, Any]) -> None:
        """Send `msg` now (a reply, a snapshot), past the queue, with the
        frames held for it (`hold`), which end the hold."""
        frame = protocol.encode(msg, self.subprotocol)
        if not self.release(framed(frame)):
            await self.send_frame(frame)

    async def send_close(self, code: int, reason: str) -> None:
        """Send the close frame; a peer already gone is closed all the same."""
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def run_sender(self, on_drained: Callable[[Conn], Awaitable[None]] | None = None) -> None:
        try:
            while not self._closed:
                self._idle = True
                await self._wake.wait()
                self._idle = False
                self._wake.clear()
                while self._queue:
                    await self.send_frame(self._queue.popleft())
                    self.sent_at = time.monotonic()
                if self.resync and on_drained is not None:
                    self.resync = False
                    try:
                        await on_drained(self)
                    except (OSError, RuntimeError, WebSocketDisconnect):
                        raise
                    except Exception as exc:
                        # A restarted Redis takes SUBSCRIBE while it still loads
                        # its AOF (reads answer LOADING), a moving slot refuses
                        # the read: try the snapshot again shortly. Anything
                        # else too: a sender that died here left its socket
                        # open and never resynchronised (offers it never heard
                        # of, a wallboard without a snapshot).
                        if isinstance(exc, RedisError):
                            log.warning("snapshot for a %s socket failed (%s); retrying", self.role, exc)
                        else:
                            log.exception("snapshot for a %s socket failed; retrying", self.role)
                        self.resync = True
                        await asyncio.sleep(0.5)
                        self._wake.set()
        except (OSError, RuntimeError, WebSocketDisconnect):
            # the peer went away while we were sending; the receive loop ends it
            self._closed = True
        finally:
            # stopped (cancelled at the socket's end): frames are queued again
            self._idle = False

    def close(self) -> None:
        self._closed = True
        self._held = None
        self._stop_release_timer()
        self._queue.clear()
        self._wake.set()


def _frame(msg: dict[str, Any], subprotocol: str) -> tuple[str | bytes, bytes | None]:
    payload = protocol.encode(msg, subprotocol)
    return payload, framed(payload) if len(payload) <= WRITE_AT_ONCE_MAX else None


def _batch(
    msgs: tuple[dict[str, Any], ...], subprotocol: str
) -> tuple[list[tuple[str | bytes, bytes | None]], bytes | None]:
    """`msgs` encoded and framed for one subprotocol, and their frames end
    to end (None when one is too large to be written at once)."""
    each = [_frame(m, subprotocol) for m in msgs]
    if len(each) == 1:
        return each, each[0][1]
    whole = None if any(w is None for _, w in each) else b"".join(w for _, w in each if w is not None)
    return each, whole


def fanout(conns: Iterable[Conn], *msgs: dict[str, Any]) -> int:
    """Send messages, in order, to many sockets, encoded and framed once per
    subprotocol; several are written to each socket in one write."""
    batches: dict[str, tuple[list[tuple[str | bytes, bytes | None]], bytes | None]] = {}
    n = 0
    for c in conns:
        batch = batches.get(c.subprotocol)
        if batch is None:
            batch = batches[c.subprotocol] = _batch(msgs, c.subprotocol)
        c.push_all(*batch)
        n += 1
    return n


class Hub:
    """Sockets of this process, fed by one pub/sub listener."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.agents: dict[str, set[Conn]] = {}
        self.supervisors: set[Conn] = set()
        self.listening = asyncio.Event()
        # set while this process has a supervisor socket of the center
        self._watched = asyncio.Event()
        self._dirty: dict[str, dict[str, Any]] = {}
        # periodic figures (`protocol.PERIODIC_TYPES`) for the next flush
        self._periodic: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._resync: Callable[[Conn], Awaitable[None]] | None = None
        self._last_queues: list[dict[str, Any]] | None = None
        # Set by the app to the dispatcher's wake: sockets registered again
        # after an outage make their agents routable.
        self.wake: Callable[[list[str]], None] = lambda queues: None
        # Per-event hooks for the metrics and tests (called with the message).
        self.on_event: list[Callable[[dict[str, Any]], None]] = []

    # -- lifecycle -----------------------------------------------------------

    def start(self, resync: Callable[[Conn], Awaitable[None]]) -> None:
        self._resync = resync
        self._tasks = [
            asyncio.create_task(self._listen(), name="hub-listen"),
            asyncio.create_task(self._flush_supervisors(), name="hub-flush"),
            asyncio.create_task(self._renew_leases(), name="hub-leases"),
            asyncio.create_task(self._reap(), name="hub-reap"),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    async def close_all(self, reason: str = "center removed") -> None:
        """Close every socket of this hub (4404): its center is gone."""
        for c in self.all_conns():
            await c.send_close(protocol.Close.UNKNOWN_AGENT, reason)
            c.close()
            # the receive loop sees the disconnect and cleans up

    # -- registration --------------------------------------------------------

    def add_agent(self, conn: Conn) -> None:
        self.agents.setdefault(conn.subject, set()).add(conn)

    def remove_agent(self, conn: Conn) -> None:
        conns = self.agents.get(conn.subject)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.agents[conn.subject]
        conn.close()

    def add_supervisor(self, conn: Conn) -> None:
        self.supervisors.add(conn)
        self._watched.set()

    def remove_supervisor(self, conn: Conn) -> None:
        self.supervisors.discard(conn)
        if not self.supervisors:
            self._watched.clear()
        conn.close()

    def agent_conns(self) -> list[Conn]:
        return [c for cs in self.agents.values() for c in cs]

    def all_conns(self) -> list[Conn]:
        return self.agent_conns() + list(self.supervisors)

    @property
    def connection_count(self) -> dict[str, int]:
        return {
            "agent": sum(len(c) for c in self.agents.values()),
            "supervisor": len(self.supervisors),
        }

    # -- events --------------------------------------------------------------

    def deliver(self, raw: bytes) -> None:
        """Fan one published message (one event or a batch) out to this
        process's sockets. A bad event is logged and skipped, never fatal."""
        try:
            events = protocol.decode_events(raw)
        except Exception:
            log.exception("could not decode a published message; skipped")
            return
        for event in events:
            try:
                self._deliver(event)
            except Exception:
                log.exception("could not deliver an event; skipped")

    def _deliver(self, event: protocol.Event) -> None:
        msg = event.message
        if event.to is not None:
            conns = self.agents.get(event.to)
            if conns:
                fanout(conns, msg)
                if msg["type"] == "agent.removed":
                    for c in list(conns):
                        task = asyncio.create_task(self._close_removed(c))
                        self._closing.add(task)
                        task.add_done_callback(self._closing.discard)
        if event.supervisors and self.supervisors:
            # an item event that changed the agent's load carries its view:
            # supervisors get only that view, coalesced like a `load`
            view = msg.get(protocol.VIEW_FIELD) if event.to is not None else None
            if isinstance(view, dict) or msg["type"] in protocol.AGENT_VIEW_TYPES:
                if not isinstance(view, dict):
                    view = msg
                aid = view["agent_id"]
                prev = self._dirty.get(aid)
                if prev is None or prev.get("ver", 0) <= view.get("ver", 0):
                    self._dirty[aid] = view
            elif msg["type"] in protocol.PERIODIC_TYPES:
                # figures computed once a second or so: they go with the next
                # flush's deltas, in the same write to each wallboard
                self._periodic.append(msg)
            else:
                fanout(self.supervisors, msg)
        for hook in self.on_event:
            hook(msg)

    async def _close_removed(self, conn: Conn) -> None:
        """Close a deleted agent's socket (4404) once it has sent `agent.removed`."""
        for _ in range(100):  # the sender drains the queue first, at most ~1 s
            if not conn.backlog:
                break
            await asyncio.sleep(0.01)
        await conn.send_close(protocol.Close.UNKNOWN_AGENT, "agent removed")
        # the receive loop sees the disconnect and cleans up

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while True:
            feed = self.store.events()
            try:
                # after a loss, read the cluster's slots again: the channel
                # may live on another node now (a failover, a resharding)
                await feed.open(refresh=not first)
                self.listening.set()
                if not first:
                    log.warning(
                        "pub/sub listener subscribed again on %s; resynchronising %d sockets",
                        feed.node,
                        len(self.all_conns()),
                    )
                    await self._resync_all()
                first = False
                backoff = 0.1
                while True:
                    raw = await feed.get()
                    if raw is None:
                        # redis-py subscribed again by itself (it reconnected,
                        # or followed the channel to its slot's new owner):
                        # events published meanwhile are gone
                        log.warning(
                            "pub/sub subscription re-established; resynchronising %d sockets",
                            len(self.all_conns()),
                        )
                        await self._resync_all()
                        continue
                    self.deliver(raw)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                if isinstance(exc, (RedisError, OSError)) or closed_transport(exc):
                    log.warning("pub/sub listener lost Redis (%s); retrying in %.1fs", exc, backoff)
                else:
                    # a bug of its own must not end the process's only
                    # listener (every socket here would stop hearing events,
                    # silently): logged once with its traceback, subscribed again
                    log.exception("pub/sub listener failed; subscribing again in %.1fs", backoff)
            finally:
                await feed.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _resync_all(self) -> None:
        conns = self.all_conns()
        for conn in conns:
            # the `resync` goes through the queue: the sender then sends a fresh snapshot
            conn.resync = True
        fanout(conns, {"type": "resync"})

    # -- periodic work -------------------------------------------------------

    async def _flush_supervisors(self) -> None:
        every = self.settings.supervisor_flush
        queue_every = max(1, round(1.0 / every))
        for tick in itertools.count():
            if not self.supervisors:
                # no wallboard here: nothing to flush until one connects
                # (a center with none costs no wake-ups)
                self._forget_unflushed()
                await self._watched.wait()
            await asyncio.sleep(every)
            try:
                await self._flush_once(tick % queue_every == 0)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("queue figures unavailable: %s", exc)
            except Exception:
                # never let one bad tick end every wallboard's updates here
                log.exception("supervisor flush failed; retrying")

    def _forget_unflushed(self) -> None:
        """Drop the views and figures gathered for a flush: nobody is left to send them to."""
        self._dirty.clear()
        self._periodic.clear()

    async def _flush_once(self, with_queues: bool) -> None:
        """One flush: the periodic figures received since the last one, the
        views changed since, and (`with_queues`) the queue figures when they
        changed, in that order and in one write to each wallboard."""
        if not self.supervisors:
            self._forget_unflushed()
            return
        queues = None
        if with_queues:
            try:
                stats = await self.store.queue_stats(protocol.WAITING_LISTED)
            except RedisError as exc:
                # the views and figures go all the same
                log.warning("queue figures unavailable: %s", exc)
            else:
                if stats != self._last_queues:
                    self._last_queues = stats
                    queues = protocol.queues_delta(stats, self.store.now_ms())
        msgs, self._periodic = self._periodic, []
        if self._dirty:
            # read after the queue figures' call: views changed meanwhile go too
            views = list(self._dirty.values())
            self._dirty = {}
            msgs.append(protocol.agents_delta(views))
        if queues is not None:
            msgs.append(queues)
        if msgs:
            self.push_supervisors(*msgs)

    def push_supervisors(self, *msgs: dict[str, Any]) -> int:
        """Send messages (deltas, ``kpis``), in order, to every supervisor
        socket of this process that keeps up, encoded once per subprotocol
        and in one write to each; returns how many got them."""
        live = []
        now = time.monotonic()
        for c in self.supervisors:
            # A socket still reading its snapshot gets the delta queued too: its
            # sender starts after the snapshot, and a change flushed between the
            # snapshot's read and its send would otherwise be lost for it (the
            # client keeps the view with the higher `ver`).
            if c.closed:
                continue
            if c.backlog < SUPERVISOR_QUEUE_MAX:
                live.append(c)
            elif now - c.sent_at >= SUPERVISOR_STALL:
                self._drop(c)
            else:
                # too slow to keep up: skip, and send a fresh snapshot once drained
                c.resync = True
        return fanout(live, *msgs)

    def _drop(self, conn: Conn) -> None:
        """Close a supervisor socket that stopped reading (Close.TOO_SLOW).

        Its queue is let go at once; the close frame goes past the full send
        buffer (`presence.ws.wire`), and the receive loop then sees the
        disconnect and unregisters it.
        """
        log.info("dropping a %s socket of %s: it stopped reading", conn.role, conn.subject)
        conn.close()
        task = asyncio.create_task(self._close_slow(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_slow(self, conn: Conn) -> None:
        await conn.send_close(protocol.Close.TOO_SLOW, "not reading")
        try:
            await self.store.count_dropped(conn.role, "slow")
        except RedisError as exc:
            log.warning("could not count a dropped socket: %s", exc)

    async def _renew_leases(self) -> None:
        """Push back the lease of every agent socket of this process once per
        lease/3, a chunk of LEASE_CHUNK sockets at a time spread evenly over
        the period: renewing 10,000 leases in one burst held Redis for ~50 ms
        every 5 s, and every offer waited behind it (docs/PERFORMANCE.md)."""
        every = self.settings.lease_seconds / 3
        while True:
            conns = self.agent_conns()
            if not conns:
                await asyncio.sleep(every)
                continue
            gap = every / -(-len(conns) // LEASE_CHUNK)
            for i in range(0, len(conns), LEASE_CHUNK):
                await asyncio.sleep(gap)
                await self._renew_chunk({f"{c.subject}|{c.id}": c for c in conns[i : i + LEASE_CHUNK]})

    async def _renew_chunk(self, conns: dict[str, Conn]) -> None:
        try:
            gone = await self.store.renew_leases(conns, self.settings.lease_seconds)
            for member in gone:
                c = conns[member]
                # still open now: its lease was swept during an outage,
                # so register it again; closed meanwhile: leave it gone
                if c in self.agents.get(c.subject, ()):
                    self.wake(await self.store.conn_open(c.subject, c.id, self.settings.lease_seconds))
        except RedisError as exc:
            log.warning("could not renew socket leases: %s", exc)
        except Exception:
            log.exception("socket lease renewal failed; retrying")

    async def _reap(self) -> None:
        """Close sockets that stopped answering (no frame, not even a ping)."""
        timeout = self.settings.heartbeat_timeout
        while True:
            await asyncio.sleep(min(5.0, timeout / 2))
            limit = time.monotonic() - timeout
            for c in self.all_conns():
                if c.last_seen < limit:
                    log.info("closing a silent %s socket of %s", c.role, c.subject)
                    await c.send_close(protocol.Close.NORMAL, "heartbeat timeout")
                    c.close()
                    # the receive loop sees the disconnect and cleans up
