"""Small helpers shared by the test suite (no fixtures here)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import httpx
import msgpack
import pytest
import redis
from redis.cluster import RedisCluster

from presence.center import parse_center
from presence.store import Store, new_work_id
from presence.store import cases as case_store

if TYPE_CHECKING:
    from tests.cluster import LocalCluster


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    # The developer's own Redis may live there; never hand it out.
    return port if port != 6379 else free_port()


class Clock:
    """A clock that stands still until a test moves `t` (seconds)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


_http: httpx.Client | None = None


def http() -> httpx.Client:
    """The suite's one HTTP client (keep-alive, plain http to 127.0.0.1).

    Not ``httpx.get(...)`` per call: each of those builds a client, and with
    it an SSL context loaded with the CA bundle (20-30 ms on an idle core,
    over 0.2 s on a busy 2-core box), on every readiness poll and every
    posted item. The same defaults as ``httpx.get``; the server sets no
    cookies, so none are carried from one test to the next.
    """
    global _http
    if _http is None or _http.is_closed:
        # a pooled connection is dropped after 2 s idle, well before uvicorn's
        # 5 s keep-alive timeout: otherwise a post on a connection the server
        # is closing at that moment fails with "Server disconnected without
        # sending a response" (seen in CI on a slow host, test_replies)
        _http = httpx.Client(timeout=5.0, limits=httpx.Limits(keepalive_expiry=2.0))
    return _http


def close_http() -> None:
    if _http is not None:
        _http.close()


class _Cluster(RedisCluster):
    def close(self) -> None:
        super().close()
        # redis-py 8.1 leaves pooled connections of the nodes open (a
        # ResourceWarning, an error under pytest)
        nm = self.nodes_manager
        for node in [*nm.startup_nodes.values(), *nm.nodes_cache.values()]:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


def redis_sync(url: str, **kw: Any) -> redis.Redis | RedisCluster:
    """A synchronous client of the Redis at `url`, standalone or any node of a
    cluster (then redis-py's `RedisCluster`, which follows MOVED): tests
    read and write keys the same way on both."""
    with redis.Redis.from_url(url, socket_timeout=5) as probe:
        clustered = int(probe.info("cluster").get("cluster_enabled", 0))
    if clustered:
        # static startup nodes: the one it first asked stays in the list,
        # and close() reaches its connection
        return _Cluster.from_url(url, dynamic_startup_nodes=False, **kw)
    return redis.Redis.from_url(url, **kw)


# The two kinds of Redis a test parametrized with `redis_of` runs against.
REDIS_MODES = ["standalone", pytest.param("cluster", marks=pytest.mark.cluster)]


def redis_of(request: pytest.FixtureRequest, standalone: str) -> str:
    """The URL for `request.param` of REDIS_MODES: the session's standalone
    Redis (`standalone`), or one node of the session's cluster (emptied first: a cluster
    test starts from a clean cluster, its functions still loaded)."""
    if request.param == "standalone":
        return standalone
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")  # tests/conftest.py
    cluster.wait_ok()
    cluster.flush()
    return cluster.url


async def open_case(
    store: Store,
    queue: str,
    channel: str = "chat",
    *,
    work_id: str = "",
    message: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    case: dict[str, Any] | None = None,
    thread: str = "",
) -> case_store.Intake:
    """A case through `presence.store.cases.intake` with what a test leaves
    out empty: a new one in `queue`, or, given `thread` (looked up and
    registered), the thread's case joined or reopened."""
    refs = [thread] if thread else []
    return await case_store.intake(
        store,
        work_id=work_id or new_work_id(),
        queue=queue,
        channel=channel,
        priority=0,
        data=data or {},
        skills={},
        case=case or {},
        message=message,
        dedupe="",
        lookup=refs,
        register=refs,
    )


async def kpi_center(store: Store, agents: list[str]) -> None:
    """The center of the KPI replay tests: three queues every agent serves
    (one never pushes, so its items wait) and the cases' statuses, so that
    transfers, re-opens and closes all leave their events."""
    await store.sync_center(
        parse_center(
            {
                "queues": [
                    {"name": "support"},
                    {"name": "billing"},
                    {"name": "backoffice", "push_timeout": 0},
                ],
                "agents": [{"id": a, "queues": ["support", "billing", "backoffice"]} for a in agents],
            }
        )
    )
    await store.redis.hset(
        store.keys.case_config,
        mapping={"statuses": msgpack.packb(["New", "Open", "Closed"]), "initial": "New",
                 "closed": "Closed", "reopen": "Open"},
    )  # fmt: skip


async def ids_from_ts(store: Store) -> None:
    """Both streams written again with each entry's id its ``ts`` (the
    order kept): Redis's clock and the test's agree, so a range anywhere in
    the history is read by id, and trimmed by id, as in production."""
    for key in (store.keys.event_stream, store.keys.status_stream):
        entries = await store.redis.xrange(key)
        pipe = store.redis.pipeline(transaction=False)
        tmp = key + ":re-id"
        for _, fields in sorted(entries, key=lambda e: int(float(e[1][b"ts"]))):
            pipe.xadd(tmp, fields, id=f"{int(float(fields[b'ts']))}-*")
        pipe.rename(tmp, key)
        await pipe.execute()
