"""The Redis connection: one client per process, built for failing fast.

Every process (the server, ``presence check``, the load tests) connects
through `open_redis`, the one place a client is built, so a Redis outage
looks the same everywhere: a clear error within seconds, never a hang.

`open_redis` also finds out what it was pointed at. ``REDIS_URL`` may name
a standalone Redis or **any node of a cluster-mode Redis 7+ / Valkey 7.2+**
(``PRESENCE_REDIS_MODE=auto``, the default, asks the node ``INFO cluster``);
a cluster gets redis-py's own asyncio `RedisCluster`, which follows
``MOVED``/``ASK`` and the topology by itself. Every key of a center carries
the center's hash tag (``presence:{<center>}:``, store/keys.py), so each
script call, pipeline and subscription of a center lies in one slot; the
rest of the store does not care which client it holds.

A standalone client's pool (`Pool`) also has the lean path the script
calls take (`execute`): what redis-py does around one command costs more
than the command's own write and read at the rates the hot path runs. On a
cluster the same lanes run to the primary of the call's slot, as redis-py's
slot map names it (`Cluster.lean`); redis-py keeps the topology and takes
every call a lane cannot settle.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar, cast

import hiredis
from redis._parsers import BaseParser
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    InvalidResponse,
    MasterDownError,
    MovedError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from presence.connlost import closed_transport as closed_transport

# Either client: the store calls only what both have.
Client: TypeAlias = Redis | RedisCluster

MODES = ("auto", "standalone", "cluster")

# Short timeouts: a Redis outage must turn into a clear error within seconds,
# never a hang (readyz, websocket errors).
_TIMEOUTS = {"socket_timeout": 3.0, "socket_connect_timeout": 2.0, "health_check_interval": 10}


class Cluster(RedisCluster):
    """redis-py's cluster client, retrying only what cannot apply a change twice.

    redis-py retries a command after a connection error, a timeout, a
    cluster that is down or a slot not covered (each after refreshing the
    topology). Not after a timeout: the script may be running on a slow or
    paused primary, and a second run of a non-idempotent change (create,
    accept) would apply it twice. A refused or reset connection is retried,
    as the standalone client does (docs/RELIABILITY.md).
    """

    ERRORS_ALLOW_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]

    # how long a primary whose lean lane failed (lost, timed out) is reached
    # through redis-py alone: its own handling of the failure (a re-read
    # slot map, a promoted replica) decides where the calls go meanwhile
    SHUN = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean_pools: dict[str, Pool] = {}
        self._shunned: dict[str, float] = {}  # node name -> loop time it is used again
        self._lean_ok: bool | None = None  # whether the nodes' connections allow lean lanes

    def _lean_pool(self, node: ClusterNode) -> Pool | None:
        """The lean pool of primary `node` (None: redis-py's path for it)."""
        pool = self._lean_pools.get(node.name)
        if pool is not None:
            return pool
        if self._lean_ok is False:
            return None
        kw = self.connection_kwargs
        pool = Pool(
            host=node.host,
            port=node.port,
            username=kw.get("username"),
            password=kw.get("password"),
            credential_provider=kw.get("credential_provider"),
            protocol=kw.get("protocol") or 2,
            client_name=kw.get("client_name"),
            socket_timeout=kw.get("socket_timeout"),
            socket_connect_timeout=kw.get("socket_connect_timeout"),
            socket_keepalive=kw.get("socket_keepalive"),
            socket_keepalive_options=kw.get("socket_keepalive_options"),
            health_check_interval=kw.get("health_check_interval") or 0,
            # no retry of its own: a lost lane hands the call to redis-py,
            # which retries it with the topology read again
            retry=Retry(ExponentialBackoff(), 0, supported_errors=(RedisConnectionError,)),
            max_connections=Pool.LANES,
            timeout=5.0,
        )
        pool._settings()
        # TLS, a credential provider, RESP3: redis-py's connections only
        self._lean_ok = pool._lean and kw.get("connection_class", Connection) is Connection
        if not self._lean_ok:
            return None
        self._lean_pools[node.name] = pool
        return pool

    async def lean(self, slot: int, args: tuple[Any, ...]) -> Any:
        """Run one command of `slot` on a lean lane to the slot's primary as
        redis-py's slot map knows it, or through redis-py itself: while that
        primary is shunned, and for a call the lane could not settle (MOVED,
        ASK, TRYAGAIN, CLUSTERDOWN: it did not run; a lost connection:
        retried as redis-py retries one). redis-py then follows the
        redirection and corrects its map, which the next call reads."""
        found = self._lane_to(slot)
        if found is None:
            return await self.execute_command(*args)
        node, pool = found
        try:
            return await pool.execute(*args)
        except _REDIRECTED:
            pass  # refused before it ran: redis-py follows it
        except RedisTimeoutError:
            self._shun(node)
            raise
        except RedisConnectionError:
            await self._lost(node, pool)  # the lane is let go: redis-py retries it
        return await self.execute_command(*args)

    async def _lost(self, node: ClusterNode, pool: Pool) -> None:
        """A lane to `node` failed: its lanes go, and the node is shunned for
        a while (`_shun`). A timeout is raised by the caller, never run again
        (the script may be running on a slow or paused primary, as the
        cluster client itself does not retry it); a lost connection hands the
        call to redis-py. (Plain `except` clauses, not a context manager: it
        is on every call of the hot path.)"""
        self._shun(node)
        await pool.disconnect()

    async def lean_many(self, slot: int, commands: list[tuple[Any, ...]]) -> list[Any] | None:
        """`lean` for a pipeline of commands in one write (``FCALL`` then
        ``WAIT``): their replies, or None for the caller's own pipeline
        through redis-py (the first one redirected, the lane lost)."""
        found = self._lane_to(slot)
        if found is None:
            return None
        node, pool = found
        try:
            replies = await pool.execute_many(commands)
        except RedisTimeoutError:
            self._shun(node)
            raise
        except RedisConnectionError:
            await self._lost(node, pool)
            return None
        if replies is None or isinstance(replies[0], _REDIRECTED):
            return None
        return replies

    def _lane_to(self, slot: int) -> tuple[ClusterNode, Pool] | None:
        """The primary of `slot` in redis-py's map and its lean pool (None:
        not known, shunned, or no lean lanes for this cluster's connections)."""
        try:
            node = self.nodes_manager.get_node_from_slot(slot)
        except (SlotNotCoveredError, KeyError):
            return None
        shunned = self._shunned.get(node.name)
        if shunned is not None:
            if asyncio.get_running_loop().time() < shunned:
                return None
            del self._shunned[node.name]
        pool = self._lean_pool(node)
        return None if pool is None else (node, pool)

    def _shun(self, node: ClusterNode) -> None:
        self._shunned[node.name] = asyncio.get_running_loop().time() + self.SHUN

    async def aclose(self) -> None:
        pools, self._lean_pools = list(self._lean_pools.values()), {}
        for pool in pools:
            await pool.disconnect()
        await super().aclose()

    async def _determine_slot(self, command: str, *args: Any) -> int:
        # FCALL's keys are where EVAL's are (name, numkeys, keys...), but
        # redis-py 8.1 parses only EVAL's itself: for FCALL it asks the
        # default node ``COMMAND GETKEYS`` with the whole call, twice per call
        # (once to pick the policy, once the node), i.e. two round trips
        # carrying a batch's arguments before each script call. The keys are
        # read here instead, for calls alone, in a pipeline and after MOVED
        # alike. Passing ``target_nodes=`` would skip this too, but it also
        # turns off redis-py's retry after a lost node or a cluster that is
        # down (docs/scaling.md). Anything else: redis-py's own way. Pinned
        # by tests/integration/test_cluster_client.py (no GETKEYS).
        if command in ("FCALL", "FCALL_RO") and len(args) > 2:
            keys = args[2 : 2 + int(args[1])]
            slots = {self.keyslot(key) for key in keys}
            if len(slots) == 1:
                return slots.pop()
        return await super()._determine_slot(command, *args)


# replies of a cluster that say the command did not run where it was sent
_REDIRECTED = (MovedError, AskError, TryAgainError, ClusterDownError, MasterDownError)


class _Lane(asyncio.Protocol):
    """One connection of the lean path: a plain TCP connection to a
    standalone Redis, one command in flight, its reply parsed by hiredis as
    it arrives and handed straight to the call that waits for it.

    redis-py reads a reply through its stream reader, its connection's
    `read_response` and its parser, each a coroutine resumed in turn when the
    reply lands: at the rates a center runs, with the loop idle between
    calls, that chain costs more than the wake-up itself. Error replies are
    redis-py's exceptions (its parser's `parse_error`), so callers see the
    same `ResponseError`, `OutOfMemoryError` or `BusyLoadingError`."""

    def __init__(self) -> None:
        self._reader = reply_reader()
        self._waiter: asyncio.Future[Any] | None = None
        # replies the waiter wants: 1 (the reply itself), more (their list,
        # gathered in `_got`: a pipeline of commands sent in one write)
        self._want = 1
        self._got: list[Any] = []
        self.transport: asyncio.Transport | None = None
        self.lost: RedisConnectionError | None = None
        # loop time after which an idle lane is PINGed before it is used
        self.next_check = 0.0

    @property
    def is_connected(self) -> bool:
        return self.lost is None and self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._want == 1:
                reply = self._reader.gets()
                if reply is not False:
                    waiter.set_result(reply)
                return
            got = self._got
            while len(got) < self._want:
                reply = self._reader.gets()
                if reply is False:
                    return
                got.append(reply)
            waiter.set_result(got)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"Connection to Redis lost: {exc or 'closed by the server'}")
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.lost)

    async def call(
        self, packed: bytes, deadlines: _Deadlines, loop: asyncio.AbstractEventLoop, replies: int = 1
    ) -> Any:
        """Send one packed command and wait for its reply; `TimeoutError`
        once `deadlines` says its time is up. `loop` is the running loop,
        asked for once per command by the caller (on Python 3.11 each
        `asyncio.get_running_loop()` is a getpid system call)."""
        transport = self.transport
        if self.lost is not None:
            raise self.lost
        if transport is None or transport.is_closing():
            raise RedisConnectionError("the connection to Redis is closed")
        waiter = self._waiter = loop.create_future()
        self._want, self._got = replies, []
        try:
            transport.write(packed)
            deadlines.watch(waiter)
            return await waiter
        finally:
            self._waiter, self._want = None, 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Deadlines:
    """One deadline of `timeout` seconds per call, kept by one timer for all.

    `asyncio.timeout` arms and cancels a timer of the loop per call (uvloop:
    a timer handle made and closed, ~4 us of CPU), for a deadline that is
    almost never reached. Every call of a pool waits the same `timeout`, so
    the deadlines come due in the order the calls were made: they are kept
    in that order, and one timer, armed for the oldest call still waiting,
    fails the calls whose time is up with `TimeoutError` (their waiter's
    exception, not a cancellation: nothing else of the task is touched).
    Calls answered in time are dropped from the front as new ones come."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._waiting: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, waiter: asyncio.Future[Any]) -> None:
        if self.timeout is None:
            return
        waiting = self._waiting
        loop = waiter.get_loop()  # the running one, without asking (`_Lane.call`)
        if self._loop is not loop:
            # a pool used again on another loop (a test's): the calls and
            # the timer of the loop that ended are gone with it
            self._loop, self._timer = loop, None
            waiting.clear()
        while waiting and waiting[0][1].done():
            waiting.popleft()
        when = loop.time() + self.timeout
        waiting.append((when, waiter))
        if self._timer is None:
            self._timer = loop.call_at(when, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        waiting = self._waiting
        while waiting and (waiting[0][1].done() or waiting[0][0] <= now):
            _, waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_exception(TimeoutError())
        if waiting:
            self._timer = loop.call_at(waiting[0][0], self._expire, loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting.clear()


def reply_reader() -> hiredis.Reader:
    """A RESP2 reader whose error replies are redis-py's exceptions (its
    parser's `parse_error`: `ResponseError`, `AuthenticationError`, ...)."""
    return hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)


P = TypeVar("P", bound=asyncio.BaseProtocol)


async def open_plain(
    model: Connection, factory: Callable[[], P], ask: Callable[[P, bytes], Awaitable[Any]], what: str = ""
) -> P:
    """A plain TCP connection to the standalone Redis that `model` (a
    redis-py connection never opened) describes, set up as redis-py sets up
    its own: connected within its connect timeout, keepalive as asked, then
    AUTH, CLIENT SETNAME and SELECT as the URL asks, each sent by `ask` (its
    reply, an error reply as its exception; `TimeoutError` when none came in
    time). `what` names the connection in the errors. Closed on any failure."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(model.socket_connect_timeout):
            transport, conn = await loop.create_connection(factory, model.host, int(model.port))
    except TimeoutError:
        raise RedisTimeoutError(f"Timeout connecting to server{what}") from None
    except OSError as exc:
        raise RedisConnectionError(f"Error connecting to {model._host_error()}{what}: {exc}") from exc
    try:
        sock = transport.get_extra_info("socket")
        if sock is not None and model.socket_keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for k, v in cast(dict[int, Any], model.socket_keepalive_options).items():
                sock.setsockopt(socket.SOL_TCP, k, v)
        hello: list[tuple[Any, ...]] = []
        if model.password is not None:
            hello.append(("AUTH", *((model.username,) if model.username else ()), model.password))
        if model.client_name:
            hello.append(("CLIENT", "SETNAME", model.client_name))
        if int(model.db or 0):
            hello.append(("SELECT", int(model.db)))
        for command in hello:
            try:
                reply = await ask(conn, b"".join(model.pack_command(*command)))
            except TimeoutError:
                # redis-py's, as every other timeout of a call: a caller
                # catching RedisError must not miss a Redis that accepts
                # connections and answers nothing (paused, or its host)
                raise RedisTimeoutError(f"Timeout reading from {model._host_error()}{what}") from None
            if isinstance(reply, Exception):
                raise reply
    except BaseException:
        transport.close()
        raise
    return conn


class Pool(BlockingConnectionPool):
    """redis-py's blocking pool, plus a lean path for the hot commands.

    `execute` runs one command (the script calls of the hot path, many times
    a second) on a lane (`_Lane`) of its own, kept apart from the pool's
    connections and closed with them. It is what `Redis.execute_command`
    does without what costs there and buys nothing here: the pool's
    condition and its timeout on every take, a task per command for the
    write's timeout (`asyncio.wait_for`), the check that a connection taken
    back has no unread data, the instrumentation hooks, the stream reader's
    chain of coroutines per reply. It keeps what matters: one deadline of
    `socket_timeout` over the write and the read (a timeout raises redis-py's
    `TimeoutError` and is never retried), the PING of a connection idle for
    `health_check_interval`, and the retries of the pool's `Retry`, which
    `redis_client` limits to a connection that failed. A pool whose
    connections are not plain TCP with a password at most (a unix socket,
    TLS, a credential provider, RESP3) runs every command on redis-py's
    connections, through the same deadline and retries.
    """

    # lanes kept open; a command that finds them all busy waits for one of
    # the pool's connections, as every command did before
    LANES = 32

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._idle_lanes: list[_Lane] = []
        self._lanes: set[_Lane] = set()
        self._busy = 0  # lanes in use
        # the connection settings, read from a connection that is never opened
        self._model: AbstractConnection | None = None
        self._lean = False
        self._deadlines = _Deadlines(None)

    def _settings(self) -> AbstractConnection:
        if self._model is None:
            model = self._model = self.connection_class(**self.connection_kwargs)
            self._deadlines = _Deadlines(model.socket_timeout)
            kw = self.connection_kwargs
            self._lean = (
                type(model) is Connection
                and kw.get("credential_provider") is None
                and str(kw.get("protocol") or 2) == "2"
            )
        return self._model

    async def execute(self, *args: Any) -> Any:
        """Run one command and return its raw reply (a Redis error reply raises)."""
        model = self._model or self._settings()
        if self._idle_lanes:
            lane: _Lane | None = self._idle_lanes.pop()
        elif self._lean and self._busy + len(self._idle_lanes) < self.LANES:
            lane = None  # a new lane, opened by this call
        else:
            pooled = await self.get_connection()  # type: ignore[no-untyped-call]
            try:
                return await self._run_pooled(pooled, args)
            finally:
                await self.release(pooled)
        return await self._on_lane(lane, model, [args])

    async def execute_many(self, commands: list[tuple[Any, ...]]) -> list[Any] | None:
        """Run `commands` in one write on one lane (a pipeline: ``FCALL`` then
        ``WAIT``, which counts what its own connection wrote) and return
        their raw replies, an error reply as its exception in its place;
        None when no lane is free (the caller's pipeline runs them)."""
        model = self._model or self._settings()
        if self._idle_lanes:
            lane: _Lane | None = self._idle_lanes.pop()
        elif self._lean and self._busy + len(self._idle_lanes) < self.LANES:
            lane = None
        else:
            return None
        return cast(list[Any], await self._on_lane(lane, model, commands))

    async def _on_lane(
        self, lane: _Lane | None, model: AbstractConnection, commands: list[tuple[Any, ...]]
    ) -> Any:
        held = [lane]
        self._busy += 1
        try:
            # packed once, not on every try (inside: a refused argument
            # still gives the lane back)
            data = b"".join(_packed(model, args) for args in commands)
            return await model.retry.call_with_retry(
                lambda: self._once(held, data, len(commands)),
                lambda error: self._drop(held),
            )
        finally:
            self._busy -= 1
            kept = held[0]
            if kept is not None:
                if kept.is_connected:
                    self._idle_lanes.append(kept)
                else:
                    self._lanes.discard(kept)

    async def _drop(self, held: list[_Lane | None]) -> None:
        lane, held[0] = held[0], None
        if lane is not None:
            lane.close()
            self._lanes.discard(lane)

    async def _once(self, held: list[_Lane | None], packed: bytes, replies: int = 1) -> Any:
        model = self._settings()
        loop = asyncio.get_running_loop()
        lane = held[0]
        if lane is None or not lane.is_connected:
            # connect (its own timeout) and the idle lane's PING come before
            # the command's deadline, as in redis-py
            await self._drop(held)
            lane = held[0] = await self._connect(model, loop)
        every = model.health_check_interval
        if every and loop.time() > lane.next_check:
            await self._ping(lane, model, loop)
        done = False
        try:
            reply = await lane.call(packed, self._deadlines, loop, replies)
            # what redis-py's parser raises rather than returns: a lost or
            # loading Redis (retried, on a new connection)
            for one in reply if replies > 1 else (reply,):
                if isinstance(one, RedisConnectionError):
                    raise one
                if isinstance(one, list) and one and isinstance(one[0], RedisConnectionError):
                    raise one[0]
            done = True
        except TimeoutError:
            raise RedisTimeoutError(f"Timeout reading from {model._host_error()}") from None
        finally:
            if not done:
                # a command cut short (timeout, cancellation, a lost
                # connection) may have left its reply unread: never reuse it
                await self._drop(held)
        if every:
            lane.next_check = loop.time() + every
        if replies == 1 and isinstance(reply, ResponseError):
            raise reply
        return reply

    async def _ping(self, lane: _Lane, model: AbstractConnection, loop: asyncio.AbstractEventLoop) -> None:
        try:
            pong = await lane.call(b"*1\r\n$4\r\nPING\r\n", self._deadlines, loop)
        except TimeoutError:
            raise RedisTimeoutError(f"Timeout reading from {model._host_error()}") from None
        if pong != b"PONG":
            raise RedisConnectionError("Bad response from PING health check")

    async def _connect(self, model: AbstractConnection, loop: asyncio.AbstractEventLoop) -> _Lane:
        """A new lane: connected, authenticated, on the URL's database."""
        assert isinstance(model, Connection)
        lane = await open_plain(model, _Lane, lambda lane, packed: lane.call(packed, self._deadlines, loop))
        lane.next_check = loop.time() + (model.health_check_interval or 0)
        self._lanes.add(lane)
        return lane

    async def _run_pooled(self, conn: AbstractConnection, args: tuple[Any, ...]) -> Any:
        packed = _pack(args) or conn.pack_command(*args)
        return await conn.retry.call_with_retry(
            lambda: self._once_pooled(conn, packed),
            lambda error: conn.disconnect(error=error),
        )

    async def _once_pooled(self, conn: AbstractConnection, packed: list[bytes]) -> Any:
        # connect (its own retries and timeouts) and the idle connection's
        # PING come before the command's deadline, as in redis-py
        if not conn.is_connected:
            await conn.connect()  # type: ignore[no-untyped-call]
        await conn.check_health()  # type: ignore[no-untyped-call]
        writer = conn._writer
        if writer is None:
            raise RedisConnectionError("the connection to Redis closed while it was being opened")
        done = False
        try:
            async with asyncio.timeout(conn.socket_timeout):
                try:
                    writer.writelines(packed)
                    await writer.drain()
                except OSError as exc:
                    raise RedisConnectionError(f"Error while writing to Redis: {exc}") from exc
                except RuntimeError as exc:
                    # a connection uvloop closed under it (a reset while
                    # idle): lost before the command left, so retried
                    if not closed_transport(exc):
                        raise
                    raise RedisConnectionError(f"Error while writing to Redis: {exc}") from exc
                # math.inf: no deadline of its own, the one above holds
                reply = await conn.read_response(timeout=math.inf)
            done = True
            return reply
        except TimeoutError:
            raise RedisTimeoutError(f"Timeout reading from {conn._host_error()}") from None
        finally:
            if not done:
                # a command cut short (timeout, cancellation, a lost
                # connection) may have left its reply unread: never reuse it
                await conn.disconnect(nowait=True)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        lanes = self._lanes if inuse_connections else set(self._idle_lanes)
        for lane in lanes:
            lane.close()
        if inuse_connections:
            self._deadlines.close()


# the argument types `_pack` packs as redis-py does (exact types: an IntEnum
# or a str subclass is redis-py's to encode, by its repr or its own rules)
_PLAIN = frozenset((str, bytes, int, float))


def _packed(model: AbstractConnection, args: tuple[Any, ...]) -> bytes:
    packed = _pack(args)
    return packed[0] if packed else b"".join(model.pack_command(*args))


def _pack(args: tuple[Any, ...]) -> list[bytes] | None:
    """`args` as one RESP command, as redis-py packs it (its encoder with the
    pool's defaults: UTF-8, strict), by hiredis's packer in C, in half the
    time of a loop in Python; None for what only redis-py knows how to pack
    or refuse (a bool, a memoryview, a command name of two words)."""
    if not isinstance(args[0], str) or " " in args[0] or not _PLAIN.issuperset(map(type, args)):
        return None
    return [hiredis.pack_command(args)]


async def execute(redis: Client, *args: Any) -> Any:
    """Run one command on `redis`: the lean path of `Pool` when the client has
    one (a standalone Redis opened by `redis_client`), on a cluster a lean
    lane to the primary of the command's slot (`Cluster.lean`: a script call,
    by its first key's slot, or a command of `_KEYED`), else redis-py's own."""
    pool = getattr(redis, "connection_pool", None)
    if isinstance(pool, Pool):
        return await pool.execute(*args)
    if isinstance(redis, Cluster):
        slot = _slot(redis, args)
        if slot is not None:
            return await redis.lean(slot, args)
    return await redis.execute_command(*args)


async def execute_many(redis: Client, commands: list[tuple[Any, ...]]) -> list[Any] | None:
    """Run `commands` (the first one keyed) in one write on one connection,
    as `execute` runs one: their raw replies, an error reply as its exception
    in its place; None where the caller's own pipeline is to run them (no
    lane free, redis-py's client, a cluster call redirected or lost)."""
    pool = getattr(redis, "connection_pool", None)
    if isinstance(pool, Pool):
        return await pool.execute_many(commands)
    if isinstance(redis, Cluster):
        slot = _slot(redis, commands[0])
        if slot is not None:
            return await redis.lean_many(slot, commands)
    return None


async def run_many(redis: Client, commands: list[tuple[Any, ...]]) -> list[Any]:
    """`commands` (on one slot) as `execute_many` runs them where it can, else
    in redis-py's pipeline: their replies in order, the first error reply
    raised, as the pipeline raises it. For a batch of reads: redis-py packs
    each command in Python, ~20 µs each with the event loop held."""
    if not commands:
        return []
    got = await execute_many(redis, commands)
    if got is None:
        pipe = redis.pipeline(transaction=False)
        for c in commands:
            pipe.execute_command(*c)
        return list(await pipe.execute())
    for r in got:
        if isinstance(r, Exception):
            raise r
    return got


# commands whose one key is their first argument, run lean on a cluster
_KEYED = frozenset(("HGETALL",))


def _slot(redis: Cluster, args: tuple[Any, ...]) -> int | None:
    """The one slot of a command's keys (None: redis-py's to find)."""
    command = args[0]
    if command in ("FCALL", "FCALL_RO") and len(args) > 3 and int(args[2]):
        # the first key's slot, not every key's (a batch names hundreds): a
        # call whose keys span slots is refused by the primary before it
        # runs (CROSSSLOT, raised), as redis-py refuses it before sending
        return redis.keyslot(args[3])
    if command in _KEYED and len(args) == 2:
        return redis.keyslot(args[1])
    return None


def redis_client(url: str, max_connections: int = 256) -> Redis:
    """A client of a standalone Redis (what `open_redis` builds for one)."""
    # A blocking pool: a burst of more concurrent calls than connections
    # (a reconnect storm, a flood of intake) waits briefly for a free
    # connection instead of failing at once with "Too many connections".
    # The asyncio `Retry` (not `redis.retry.Retry`, whose synchronous loop
    # never sees the awaited error): after a Redis restart every pooled
    # connection is stale, and each must reconnect and retry, not fail.
    pool = Pool.from_url(
        url,
        decode_responses=False,
        # Retry only a connection that failed (stale after a restart, refused
        # while Redis comes back): the command did not reach Redis, except
        # if it crashed mid-command (RELIABILITY.md). Not a timeout: the
        # script may be running on a slow or paused Redis, and a second run
        # of a non-idempotent change (create, accept) would apply it twice.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
        max_connections=max_connections,
        timeout=5.0,
        **_TIMEOUTS,
    )
    client = Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


def cluster_client(url: str, max_connections: int = 256) -> Cluster:
    """A client of a cluster-mode Redis, from the URL of any of its nodes."""
    client = Cluster.from_url(
        url,
        decode_responses=False,
        # three tries in all, each after the topology was read again: long
        # enough to ride over a replica's promotion (a few seconds)
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 3),
        # never tear the whole client down on MOVED: by default every fifth
        # MOVED closes every connection of every node (`aclose`), those other
        # tasks are in the middle of using too (their next write finds the
        # writer gone: an AttributeError, not a RedisError). A slot held
        # marked after its keys moved bounces each call between its two
        # nodes (ASK, then MOVED back: redis-py sends ASKING on a pooled
        # connection of its own, seldom the one the call then takes), a
        # dozen MOVED a call. Each MOVED still corrects the slot's owner
        # (`move_slot`); a lost node still re-reads the whole map.
        reinitialize_steps=0,
        # per node; the node's pool does not block when full, it refuses
        max_connections=max_connections,
        **_TIMEOUTS,
    )
    assert isinstance(client, Cluster)
    return client


def is_cluster(redis: Client) -> bool:
    return isinstance(redis, RedisCluster)


async def _cluster_enabled(redis: Redis) -> bool:
    info = await redis.info("cluster")
    return bool(int(info.get("cluster_enabled", 0) or 0))


async def open_redis(
    url: str, mode: str = "auto", patience: float = 15.0, *, max_connections: int = 256
) -> Client:
    """The process's client, once Redis answers (within `patience` seconds).

    `mode` is ``PRESENCE_REDIS_MODE``: ``auto`` asks the node whether it is
    part of a cluster; ``standalone`` and ``cluster`` say so and are checked.
    """
    if mode not in MODES:
        raise ValueError(f"PRESENCE_REDIS_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    probe = redis_client(url, max_connections)
    try:
        await wait_for_redis(probe, url, patience)
        clustered = await _cluster_enabled(probe)
    except BaseException:
        await probe.aclose()
        raise
    if mode == "standalone" and clustered:
        await probe.aclose()
        raise RuntimeError(
            f"PRESENCE_REDIS_MODE=standalone, but the Redis at REDIS_URL={url} is a cluster node "
            "(cluster_enabled:1); set PRESENCE_REDIS_MODE=cluster or auto"
        )
    if mode == "cluster" and not clustered:
        await probe.aclose()
        raise RuntimeError(
            f"PRESENCE_REDIS_MODE=cluster, but the Redis at REDIS_URL={url} is not in cluster mode "
            "(cluster_enabled:0); set PRESENCE_REDIS_MODE=standalone or auto"
        )
    if not clustered:
        return probe
    await probe.aclose()
    cluster = cluster_client(url, max_connections)
    try:
        await _initialize(cluster, url, patience)
    except BaseException:
        await cluster.aclose()
        raise
    return cluster


# A center's event feed (`Store.events`) holds one pub/sub connection for as
# long as the center is served here: out of the commands' pool (256), 200
# centers would leave 56 connections for every command. The feeds of the
# centers other than the default one take theirs from a client of their own,
# with room for any number of centers (a connection is opened only when used).
FEED_CONNECTIONS = 1_000_000


async def open_events(url: str, mode: str = "auto") -> Client:
    """The client of the event feeds of the centers other than the default one."""
    return await open_redis(url, mode, max_connections=FEED_CONNECTIONS)


async def _initialize(cluster: Cluster, url: str, patience: float) -> None:
    # A cluster that is still forming (slots not all covered yet) refuses
    # to initialise: wait for it like for a Redis that is starting.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            await cluster.initialize()
            await cluster.ping()
            return
        except RedisError as exc:
            if loop.time() > deadline:
                raise RuntimeError(f"the Redis cluster at REDIS_URL={url} is not ready: {exc}") from exc
            await asyncio.sleep(0.2)


async def wait_for_redis(redis: Client, url: str, patience: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            await redis.ping()
            return
        except RedisError as exc:
            if loop.time() > deadline:
                raise RuntimeError(
                    f"Redis at REDIS_URL={url} did not answer for {patience:.0f}s: {exc}"
                ) from exc
            await asyncio.sleep(0.2)


def shard_of(redis: Client, key: str) -> ClusterNode | None:
    """The primary that holds `key` (None on a standalone Redis)."""
    if isinstance(redis, RedisCluster):
        return redis.get_node_from_key(key)
    return None


async def refresh_topology(redis: Client) -> None:
    """Read the cluster's slots again (after a lost node or a moved slot)."""
    if isinstance(redis, RedisCluster):
        await redis.nodes_manager.initialize()


async def warm(redis: Client, connections: int) -> int:
    """Open `connections` pooled connections now, at start-up.

    In a reconnect storm the event loop is saturated by handshakes; a pool
    that must grow then opens its connections on that loop, and their
    connect timeouts fire before the loop gets back to them ("Timeout
    connecting to server": 1013 for the sockets waiting on them). Opened
    while the loop is idle, the storm's socket starts (at most
    `context.STARTS_AT_ONCE` at once) and the background tasks find them
    ready. Concurrent pings: each holds a connection of its own.

    Warming is an optimisation: on a loaded host some of the concurrent
    connects can miss the connect timeout, and that must not abort the
    start (the pool opens those later, on demand). Only if none connected
    is Redis itself unreachable, and the first error is raised. Returns how
    many connections were opened.
    """
    if isinstance(redis, RedisCluster):
        # a pool per node, opened as the slots are reached
        return 0
    results = await asyncio.gather(*(redis.ping() for _ in range(connections)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    for r in failed:
        if not isinstance(r, Exception):
            raise r  # a cancellation or exit is not a connect failure
    if failed and len(failed) == len(results):
        raise failed[0]
    if failed:
        logging.getLogger("presence.store").warning(
            "warm: %d of %d connections not opened at start-up (%r); the pool opens them on demand",
            len(failed),
            len(results),
            failed[0],
        )
    return len(results) - len(failed)
