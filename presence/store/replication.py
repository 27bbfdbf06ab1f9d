"""Acknowledge a change only once a replica has it (``WAIT``).

Redis replicates asynchronously: a primary killed right after it answered a
script call can take the change with it, and its replica, promoted, never
saw it. Where the center's shard has replicas, every script call that
changes state is therefore sent together with ``WAIT <n> <timeout>`` on the
same connection (one pipeline, one round trip; ``WAIT`` counts the
replicas that have everything *this connection* wrote), and the caller gets
its answer (HTTP 201, a websocket ``ok``) only after `n` replicas
acknowledged it. Past the timeout the call raises `NotReplicated`, a
`RedisError`: a 503 problem on HTTP, ``unavailable`` on a websocket; the
change itself is applied on the primary, and a retry (an idempotent intake,
an accept of the same offer) finds it there.

``PRESENCE_REDIS_WAIT_REPLICAS``: ``auto`` (the default) waits for one
replica where the shard has at least one, and for none where it has none
(a standalone Redis without replicas pays nothing); a number waits for
that many, always.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisError

from presence.store.client import Client, is_cluster, shard_of

log = logging.getLogger("presence.store")

# How long a shard's replica count is trusted before it is asked again.
REPLICAS_TTL = 5.0


class NotReplicated(RedisError):
    """Fewer replicas than required acknowledged a change within the timeout."""


class Replication:
    """How many replicas a change must reach, per shard, and the check."""

    def __init__(self, redis: Client, replicas: int | None = None, timeout: float = 1.0) -> None:
        self._redis = redis
        self.fixed = replicas  # None: auto
        self.timeout_ms = max(1, int(timeout * 1000))
        self._known: dict[str, tuple[float, int]] = {}  # shard -> (when, replicas)
        # a standalone Redis is one shard, "": told once, not per call (the
        # isinstance of redis-py's cluster client goes through typing's
        # protocol check, a few microseconds of every script call)
        self._standalone = not is_cluster(redis)

    def _shard(self, prefix: str) -> tuple[str, ClusterNode | None]:
        if self._standalone:
            return "", None
        node = shard_of(self._redis, prefix)
        return (node.name if node is not None else ""), node

    def known(self, prefix: str) -> int | None:
        """`wanted` without a read: the replicas a change of the center at
        `prefix` must reach while the count is trusted, None when it must
        be asked (`wanted`). Every script call asks: no coroutine here."""
        if self.fixed is not None:
            return self.fixed
        known = self._known.get(self._shard(prefix)[0])
        if known is None or time.monotonic() - known[0] >= REPLICAS_TTL:
            return None
        return min(1, known[1])

    async def _replicas(self, prefix: str, *, fresh: bool = False) -> int:
        shard, node = self._shard(prefix)
        known = self._known.get(shard)
        now = time.monotonic()
        if known is not None and not fresh and now - known[0] < REPLICAS_TTL:
            return known[1]
        if node is None:
            info = await self._redis.info("replication")
        else:
            info = await self._redis.info("replication", target_nodes=node)
        count = int(info.get("connected_slaves", 0) or 0)
        self._known[shard] = (now, count)
        return count

    async def wanted(self, prefix: str) -> int:
        """The replicas a change of the center at `prefix` must reach (0: no WAIT)."""
        if self.fixed is not None:
            return self.fixed
        return min(1, await self._replicas(prefix))

    async def short(self, prefix: str, wanted: int, acked: int) -> None:
        """WAIT answered `acked` < `wanted`: raise, unless (auto) the shard
        has no replica left to wait for (it lost it since we counted)."""
        if self.fixed is None and await self._replicas(prefix, fresh=True) == 0:
            log.warning("the shard of %s has no replica left: changes go unreplicated", prefix)
            return
        raise NotReplicated(
            f"only {acked} of {wanted} replica(s) acknowledged the change within {self.timeout_ms} ms "
            "(PRESENCE_REDIS_WAIT_REPLICAS, PRESENCE_REDIS_WAIT_TIMEOUT)"
        )
