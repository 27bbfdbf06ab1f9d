"""A center's event channel, read through sharded pub/sub.

The scripts publish every change with ``SPUBLISH`` on the center's channel
(``presence:{<center>}:events``, in the center's slot), so on a cluster an
event travels only inside the shard that holds the center, and a process
listens on that shard's primary. A standalone Redis takes the same commands
(Redis 7.0+, Valkey 7.2+): one code path.

`Feed` reads the subscription on a plain connection of its own (`_Direct`),
to the standalone Redis or to the primary of the channel's slot, and turns
everything that may have lost events into something the listener can act
on (redis-py's `PubSub` or `ClusterPubSub` only where that connection cannot
be plain TCP: TLS, a credential provider):

* `ChannelMoved`: the server dropped the subscription (``sunsubscribe``
  sent by Redis when the channel's slot left the node: a resharding, a
  failover that demoted it). The listener opens the feed again, on the
  node that holds the slot now.
* `get` returning None: redis-py subscribed again by itself (after it
  reconnected, or moved the subscription to a slot's new owner); events
  published meanwhile are gone. (Only with redis-py's pub/sub: `_Direct`
  is not reopened by itself, a lost connection is the `RedisError` below.)
* `FeedSilent`: the connection stopped delivering without failing (a
  half-open TCP connection: a partition, a NAT or firewall that forgot the
  flow, a peer gone without FIN or RST). After `PING_AFTER` seconds without
  anything on it the feed sends ``PING`` on the subscribed connection
  (allowed in subscribed mode; the answer is a ``pong`` message on the same
  stream); if nothing at all arrives within `SILENT_LIMIT` seconds of the
  last thing heard, the connection is declared dead. Events flowing are
  proof enough: a busy feed sends no PING.
* any other `RedisError`/`OSError`: the node went away (or, on a cluster,
  answered the SSUBSCRIBE with MOVED: the slot map was stale).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from presence.store.client import Client, _pack, open_plain, refresh_topology, reply_reader

# How long a cluster read waits before looking again at where the channel
# lives (redis-py may have moved it to another node's connection).
_POLL = 1.0
# Silence after which the feed pings its connection, and the silence after
# which it gives the connection up (`FeedSilent`): a half-open connection is
# found within SILENT_LIMIT + _POLL seconds.
PING_AFTER = 1.0
SILENT_LIMIT = 4.0
_PING_TOKEN = b"presence-feed"


class ChannelMoved(RedisError):
    """The server ended our subscription: the channel's slot has moved."""


class FeedSilent(RedisError):
    """The subscribed connection answered nothing, not even a PING."""


class _Direct(asyncio.Protocol):
    """A subscription's own plain TCP connection to a standalone Redis: its
    replies parsed as they arrive (hiredis) and handed to `Feed` as they are.

    redis-py's `PubSub` reads each message through its stream reader, its
    parser, its retry wrapper and a dict per message: about 18 us of the
    server's CPU per message, as much as the wake-up and the read system
    call themselves (docs/PERFORMANCE.md, "A lean server"). A lost
    connection is not reopened here: the next read raises, and the hub's
    listener subscribes again and resynchronises its sockets, as after any
    other loss of Redis."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # kept, not asked for per read: on Python 3.11 every
        # asyncio.get_running_loop() (asyncio.timeout makes two) is a getpid
        # system call, several per published message on this path
        self._loop = loop
        self._reader = reply_reader()
        self._replies: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: Exception | None = None
        self.transport: asyncio.Transport | None = None
        self._due = 0.0  # loop time at which the wait in progress ends
        self._armed = 0.0  # loop time the timer is set for
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        had = len(self._replies)
        while (reply := self._reader.gets()) is not False:
            self._replies.append(reply)
        # a read may end inside a reply (a large message comes in pieces):
        # nothing to hand over until it is whole
        if len(self._replies) > had:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        why = exc or "closed"
        self._lost = RedisConnectionError(f"the subscription's connection to Redis was lost: {why}")
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def send(self, *args: Any) -> None:
        packed = _pack(args)
        assert packed is not None
        self._write(packed[0])

    def _write(self, packed: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("the subscription's connection to Redis is closed")
        self.transport.write(packed)

    async def ask(self, packed: bytes, timeout: float) -> Any:
        """One command's reply (before the subscription: `open_plain`);
        `TimeoutError` when none came within `timeout` seconds."""
        self._write(packed)
        reply = await self.next(timeout)
        if reply is None:
            raise TimeoutError
        return reply

    async def next(self, timeout: float) -> Any:
        """The next reply (a Redis error reply as its exception, not raised),
        or None when none came within `timeout` seconds."""
        if not self._replies and self._lost is None:
            loop = self._loop
            self._waiter = loop.create_future()
            # One timer for every wait, not one per wait (`asyncio.timeout`
            # arms and cancels a timer per message): it fires at the latest
            # wait's end, or finds a later end set meanwhile and waits for that.
            due = self._due = loop.time() + timeout
            if self._timer is None or due < self._armed:
                if self._timer is not None:
                    self._timer.cancel()
                self._arm(loop, due)
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._replies:
            return self._replies.popleft()
        if self._lost is not None:
            raise self._lost
        return None

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nobody waits: armed again by the next wait
        if loop.time() >= self._due:
            waiter.set_result(None)
        else:
            self._arm(loop, self._due)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._armed = when
        self._timer = loop.call_at(when, self._expire, loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()


async def _direct(redis: Client, channel: str) -> _Direct | None:
    """A connection of its own for the subscription to `channel`, over plain
    TCP: to a standalone Redis, or on a cluster to the primary of the
    channel's slot as redis-py's slot map names it (None otherwise, TLS or a
    credential provider: redis-py's PubSub or ClusterPubSub).

    On a cluster this is the lean lanes' rule (store/client.py): redis-py
    keeps the topology, the feed only reads the node from it. Everything a
    ClusterPubSub would follow by itself ends the feed instead, and the
    listener opens it again after reading the slots afresh: a MOVED reply to
    the SSUBSCRIBE (the map was stale), the server's ``sunsubscribe`` (the
    slot moved: `ChannelMoved`), a lost connection (a primary that died)."""
    if isinstance(redis, RedisCluster):
        try:
            node = redis.nodes_manager.get_node_from_slot(redis.keyslot(channel))
        except (RedisError, KeyError):
            return None
        if node.connection_class is not Connection:
            return None
        kw = node.connection_kwargs  # what redis-py opens to that node, host and port included
    elif isinstance(redis, Redis):
        pool = redis.connection_pool
        kw = pool.connection_kwargs
        if pool.connection_class is not Connection:
            return None
    else:
        return None
    if kw.get("credential_provider") is not None or str(kw.get("protocol") or 2) != "2":
        return None
    # the connection settings, read from a connection that is never opened
    model = Connection(**kw)
    loop = asyncio.get_running_loop()
    timeout = model.socket_timeout or 5.0
    return await open_plain(
        model,
        lambda: _Direct(loop),
        lambda direct, packed: direct.ask(packed, timeout),
        " for the event subscription",
    )


class Feed:
    """One subscription to one shard channel."""

    def __init__(
        self,
        redis: Client,
        channel: str,
        *,
        ping_after: float = PING_AFTER,
        silent_limit: float = SILENT_LIMIT,
    ) -> None:
        self._redis = redis
        self.channel = channel
        self._pubsub: PubSub | ClusterPubSub | None = None
        self.ping_after = ping_after
        self.silent_limit = max(silent_limit, ping_after)
        self._heard = 0.0  # loop time of the last thing read from the connection
        self._pinged = 0.0  # loop time of the last PING sent (0: none since _heard)
        self._direct: _Direct | None = None  # the subscription, on a standalone Redis
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of `open` (see _Direct)

    @property
    def node(self) -> str:
        """Where the feed listens (``host:port``), for the logs."""
        if isinstance(self._redis, RedisCluster):
            node = self._redis.get_node_from_key(self.channel)
            return node.name if node is not None else "?"
        kw = self._redis.connection_pool.connection_kwargs
        return f"{kw.get('host', kw.get('path', '?'))}:{kw.get('port', '')}".rstrip(":")

    async def open(self, *, refresh: bool = False, timeout: float = 5.0) -> None:
        """Subscribe; returns once the server confirmed it.

        `refresh` reads the cluster's slots again first: after a lost node
        or a moved channel the cached owner is stale."""
        if refresh:
            await refresh_topology(self._redis)
        loop = self._loop = asyncio.get_running_loop()
        self._direct = await _direct(self._redis, self.channel)
        if self._direct is not None:
            self._direct.send("SSUBSCRIBE", self.channel)
        else:
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=False)
            await self._pubsub.ssubscribe(self.channel)
        # either way the confirmation comes through `_next` (`_message` makes
        # the direct connection's reply redis-py's message, an error raised)
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            msg = await self._next(min(_POLL, max(0.01, deadline - loop.time())))
            if msg is not None and msg["type"] in ("ssubscribe", b"ssubscribe"):
                self._heard, self._pinged = loop.time(), 0.0
                return
        raise ChannelMoved(f"no confirmation of SSUBSCRIBE {self.channel} within {timeout:.0f}s")

    async def _next(self, timeout: float | None) -> dict[str, Any] | None:
        if self._direct is not None:
            return self._message(await self._direct.next(timeout or _POLL))
        ps = self._pubsub
        assert ps is not None, "Feed.open first"
        if isinstance(ps, ClusterPubSub):
            if not ps.node_pubsub_mapping:
                # redis-py dropped the node's connection and found no new owner
                raise ChannelMoved(f"{self.channel} is subscribed on no node")
            msg: dict[str, Any] | None = await ps.get_sharded_message(timeout=timeout or _POLL)
            return msg
        return await ps.get_message(timeout=timeout)  # type: ignore[no-any-return]

    def _message(self, reply: Any) -> dict[str, Any] | None:
        """A reply of the direct subscription as redis-py's message."""
        if reply is None:
            return None
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, list) and len(reply) == 3:
            return {"type": reply[0], "channel": reply[1], "data": reply[2]}
        if isinstance(reply, list) and len(reply) == 2 and reply[0] == b"pong":
            return {"type": b"pong", "channel": None, "data": reply[1]}
        return {"type": b"other", "channel": None, "data": reply}

    async def _ping(self) -> None:
        """PING every connection the subscription lives on."""
        if self._direct is not None:
            self._direct.send("PING", _PING_TOKEN)
            return
        ps = self._pubsub
        assert ps is not None, "Feed.open first"
        targets = list(ps.node_pubsub_mapping.values()) if isinstance(ps, ClusterPubSub) else [ps]
        for target in targets:
            # a send on a dead peer only fills the kernel's buffer; the
            # bound is for a full buffer
            await asyncio.wait_for(target.ping(_PING_TOKEN), timeout=self.ping_after + 1.0)

    async def get(self) -> bytes | None:
        """The next published message; None when the subscription was made
        again meanwhile (events may be lost); raises `ChannelMoved`, and
        `FeedSilent` when the connection stopped delivering."""
        loop = self._loop
        assert loop is not None, "Feed.open first"
        while True:
            # look again every _POLL: how long the connection has been silent
            if self._direct is not None:
                reply = await self._direct.next(min(_POLL, self.ping_after))
                if type(reply) is list and len(reply) == 3 and reply[0] == b"smessage":
                    self._heard, self._pinged = loop.time(), 0.0
                    data: bytes = reply[2]
                    return data
                msg = self._message(reply)
            else:
                msg = await self._next(min(_POLL, self.ping_after))
            now = loop.time()
            if msg is None:
                silent = now - self._heard
                if silent >= self.silent_limit:
                    raise FeedSilent(
                        f"nothing on the subscription to {self.channel} for {silent:.1f}s, not even a PONG"
                    )
                if silent >= self.ping_after and (not self._pinged or now - self._pinged >= self.ping_after):
                    self._pinged = now
                    await self._ping()
                continue
            self._heard, self._pinged = now, 0.0
            kind = msg["type"]
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind == "smessage":
                return msg["data"]  # type: ignore[no-any-return]
            if kind == "ssubscribe":
                return None
            if kind == "sunsubscribe":
                raise ChannelMoved(f"the server ended the subscription to {self.channel} (its slot moved)")

    async def close(self) -> None:
        direct, self._direct = self._direct, None
        if direct is not None:
            direct.close()
        ps, self._pubsub = self._pubsub, None
        if ps is not None:
            # bounded: closing a half-open connection must not hang the listener
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ps.aclose(), timeout=3.0)  # type: ignore[no-untyped-call]
