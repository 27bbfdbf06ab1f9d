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
than the command's own write and read at the rates the hot path runs.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, RedisError, SlotNotCoveredError
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


class Pool(BlockingConnectionPool):
    """redis-py's blocking pool, plus a lean path for the hot commands.

    `execute` runs one command (the script calls of the hot path, many times
    a second) on a connection of its own lanes, kept apart from the pool's
    connections and closed with them. It is what `Redis.execute_command`
    does without what costs there and buys nothing here: the pool's
    condition and its timeout on every take, a task per command for the
    write's timeout (`asyncio.wait_for`), the check that a connection taken
    back has no unread data, the instrumentation hooks. It keeps what
    matters: one deadline of `socket_timeout` over the write and the read
    (a timeout raises redis-py's `TimeoutError` and is never retried), the
    health check of an idle connection, and the retries of the connection's
    own `Retry`, which `redis_client` limits to a connection that failed.
    """

    # lanes kept open; a command that finds them all busy waits for one of
    # the pool's connections, as every command did before
    LANES = 32

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._idle_lanes: list[AbstractConnection] = []
        self._lanes: set[AbstractConnection] = set()

    async def execute(self, *args: Any) -> Any:
        """Run one command and return its raw reply (a Redis error reply raises)."""
        if self._idle_lanes:
            conn = self._idle_lanes.pop()
        elif len(self._lanes) < self.LANES:
            conn = self.make_connection()  # type: ignore[no-untyped-call]
            self._lanes.add(conn)
        else:
            pooled = await self.get_connection()  # type: ignore[no-untyped-call]
            try:
                return await self._run(pooled, args)
            finally:
                await self.release(pooled)
        try:
            return await self._run(conn, args)
        finally:
            # an interrupted call left the connection closed (`_once`): the
            # next one on this lane reconnects (a lane is never dropped)
            self._idle_lanes.append(conn)

    async def _run(self, conn: AbstractConnection, args: tuple[Any, ...]) -> Any:
        packed = _pack(args) or conn.pack_command(*args)
        return await conn.retry.call_with_retry(
            lambda: self._once(conn, packed),
            lambda error: conn.disconnect(error=error),
        )

    async def _once(self, conn: AbstractConnection, packed: list[bytes]) -> Any:
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
        await asyncio.gather(*(conn.disconnect() for conn in lanes), return_exceptions=True)


def _pack(args: tuple[Any, ...]) -> list[bytes] | None:
    """`args` as one RESP command, as redis-py packs it (its encoder with the
    pool's defaults: UTF-8, strict), in a third of the time; None for what
    only redis-py knows how to pack or refuse (a bool, a memoryview, a
    command name of two words)."""
    if not isinstance(args[0], str) or " " in args[0]:
        return None
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = type(arg)
        if kind is str:
            data = arg.encode()
        elif kind is bytes:
            data = arg
        elif kind is int or kind is float:
            data = repr(arg).encode()
        else:
            return None
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return [b"".join(out)]


async def execute(redis: Client, *args: Any) -> Any:
    """Run one command on `redis`: the lean path of `Pool` when the client has
    one (a standalone Redis opened by `redis_client`), else redis-py's own."""
    pool = getattr(redis, "connection_pool", None)
    if isinstance(pool, Pool):
        return await pool.execute(*args)
    return await redis.execute_command(*args)


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


async def warm(redis: Client, connections: int) -> None:
    """Open `connections` pooled connections now, at start-up.

    In a reconnect storm the event loop is saturated by handshakes; a pool
    that must grow then opens its connections on that loop, and their
    connect timeouts fire before the loop gets back to them ("Timeout
    connecting to server": 1013 for the sockets waiting on them). Opened
    while the loop is idle, the storm's socket starts (at most
    `context.STARTS_AT_ONCE` at once) and the background tasks find them
    ready. Concurrent pings: each holds a connection of its own.
    """
    if isinstance(redis, RedisCluster):
        # a pool per node, opened as the slots are reached
        return
    await asyncio.gather(*(redis.ping() for _ in range(connections)))
