"""The deployment's centers (workspaces) in Redis: which exist, and each
one's document.

A center's document is the content of a center file as JSON (the body of
``PUT /api/v1/centers/{center}``); the registry keeps it so that every
process can build the same `Center` from it, and a revision per center
that each apply bumps, so a process notices a change by reading one small
hash (``presence/workspaces.py``). The center's own state lives under its
own prefix (``presence:{<center>}:``), written by `Store.sync_center`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from presence.store import Store
from presence.store.client import Client
from presence.store.keys import CENTER_DOCS, CENTER_PROCESSES, CENTER_REVISIONS, scan_match

__all__ = [
    "delete",
    "document",
    "documents",
    "exists",
    "leave",
    "live_processes",
    "open_items",
    "purge",
    "put",
    "revision",
    "revisions",
]


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def exists(redis: Client, center: str) -> bool:
    return bool(await redis.hexists(CENTER_DOCS, center))


async def document(redis: Client, center: str) -> dict[str, Any] | None:
    raw = await redis.hget(CENTER_DOCS, center)
    if raw is None:
        return None
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


async def documents(redis: Client) -> dict[str, dict[str, Any]]:
    """Every center's document, in one read."""
    return {_s(k): orjson.loads(v) for k, v in (await redis.hgetall(CENTER_DOCS)).items()}


async def revision(redis: Client, center: str) -> int:
    return int(await redis.hget(CENTER_REVISIONS, center) or 0)


async def revisions(redis: Client) -> dict[str, int]:
    """Every center's revision: the one read a process makes to follow changes."""
    return {_s(k): int(v) for k, v in (await redis.hgetall(CENTER_REVISIONS)).items()}


async def put(redis: Client, center: str, doc: dict[str, Any], *, only_if_changed: bool = False) -> int:
    """Store the center's document and bump its revision; returns the revision
    (0: `only_if_changed` and the stored document is the same)."""
    raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    if only_if_changed and await redis.hget(CENTER_DOCS, center) == raw:
        return 0
    pipe = redis.pipeline(transaction=True)
    pipe.hset(CENTER_DOCS, center, raw)
    pipe.hincrby(CENTER_REVISIONS, center, 1)
    _, rev = await pipe.execute()
    return int(rev)


async def delete(redis: Client, center: str) -> bool:
    pipe = redis.pipeline(transaction=True)
    pipe.hdel(CENTER_DOCS, center)
    pipe.hdel(CENTER_REVISIONS, center)
    removed, _ = await pipe.execute()
    return bool(removed)


async def open_items(store: Store) -> int:
    """How many of the center's items are not final yet (a center with any is not removed)."""
    return int(await store.redis.zcard(store.keys.work_open))


async def purge(store: Store) -> int:
    """Delete every key of the center (after `delete`); returns how many."""
    n = 0
    batch: list[bytes] = []
    async for key in store.redis.scan_iter(match=scan_match(store.keys.prefix), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            n += await store.redis.unlink(*batch)
            batch = []
    if batch:
        n += await store.redis.unlink(*batch)
    return n


async def live_processes(redis: Client, me: str, *, stale_ms: int) -> list[str]:
    """Say this process is alive, and list the live ones (itself included),
    forgetting those silent for `stale_ms`: who may own a center's loops.
    (Hosts' clocks must agree to within a fraction of `stale_ms`.)"""
    now = int(time.time() * 1000)
    pipe = redis.pipeline(transaction=False)
    pipe.hset(CENTER_PROCESSES, me, now)
    pipe.hgetall(CENTER_PROCESSES)
    _, seen = await pipe.execute()
    live: list[str] = []
    gone: list[str] = []
    for proc, ts in seen.items():
        (live if now - int(ts) <= stale_ms else gone).append(_s(proc))
    if gone:
        await redis.hdel(CENTER_PROCESSES, *gone)
    return sorted(live)


async def leave(redis: Client, me: str) -> None:
    await redis.hdel(CENTER_PROCESSES, me)
