"""A center's event channel, read through sharded pub/sub.

The scripts publish every change with ``SPUBLISH`` on the center's channel
(``presence:{<center>}:events``, in the center's slot), so on a cluster an
event travels only inside the shard that holds the center, and a process
listens on that shard's primary. A standalone Redis takes the same commands
(Redis 7.0+, Valkey 7.2+): one code path.

`Feed` hides the one difference between the two clients (redis-py's cluster
pub/sub reads per node) and turns everything that may have lost events into
something the listener can act on:

* `ChannelMoved`: the server dropped the subscription (``sunsubscribe``
  sent by Redis when the channel's slot left the node: a resharding, a
  failover that demoted it). The listener opens the feed again, on the
  node that holds the slot now.
* `get` returning None: redis-py subscribed again by itself (after it
  reconnected, or moved the subscription to a slot's new owner); events
  published meanwhile are gone.
* any other `RedisError`/`OSError`: the node went away.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.exceptions import RedisError

from presence.store.client import Client, refresh_topology

# How long a cluster read waits before looking again at where the channel
# lives (redis-py may have moved it to another node's connection).
_POLL = 1.0


class ChannelMoved(RedisError):
    """The server ended our subscription: the channel's slot has moved."""


class Feed:
    """One subscription to one shard channel."""

    def __init__(self, redis: Client, channel: str) -> None:
        self._redis = redis
        self.channel = channel
        self._pubsub: PubSub | ClusterPubSub | None = None

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
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=False)
        await self._pubsub.ssubscribe(self.channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            msg = await self._next(min(_POLL, max(0.01, deadline - loop.time())))
            if msg is not None and msg["type"] in ("ssubscribe", b"ssubscribe"):
                return
        raise ChannelMoved(f"no confirmation of SSUBSCRIBE {self.channel} within {timeout:.0f}s")

    async def _next(self, timeout: float | None) -> dict[str, Any] | None:
        ps = self._pubsub
        assert ps is not None, "Feed.open first"
        if isinstance(ps, ClusterPubSub):
            if not ps.node_pubsub_mapping:
                # redis-py dropped the node's connection and found no new owner
                raise ChannelMoved(f"{self.channel} is subscribed on no node")
            msg: dict[str, Any] | None = await ps.get_sharded_message(timeout=timeout or _POLL)
            return msg
        return await ps.get_message(timeout=timeout)  # type: ignore[no-any-return]

    async def get(self) -> bytes | None:
        """The next published message; None when the subscription was made
        again meanwhile (events may be lost); raises `ChannelMoved`."""
        cluster = isinstance(self._pubsub, ClusterPubSub)
        while True:
            # standalone: block until a message (None); cluster: look again every _POLL
            msg = await self._next(_POLL if cluster else None)
            if msg is None:
                continue
            kind = msg["type"]
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind == "smessage":
                return msg["data"]  # type: ignore[no-any-return]
            if kind == "ssubscribe":
                return None
            if kind == "sunsubscribe":
                raise ChannelMoved(f"the server ended the subscription to {self.channel} (its slot moved)")

    async def close(self) -> None:
        ps, self._pubsub = self._pubsub, None
        if ps is not None:
            with contextlib.suppress(Exception):
                await ps.aclose()  # type: ignore[no-untyped-call]
