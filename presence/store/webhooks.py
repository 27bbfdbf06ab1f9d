"""The webhooks' streams in Redis: claim, settle and count deliveries.

The Lua script that makes a change appends its event to the stream
``webhook:<name>`` of every webhook subscribed to it, in the same atomic
call. Deliveries are claimed through one consumer group per stream, so with
several processes each event goes to one of them: ``XREADGROUP >`` hands
new entries to exactly one consumer; a failed entry stays in that
consumer's pending list until it retries; entries pending on a consumer
that has been silent too long (its process died) are taken over with
``XAUTOCLAIM``. A delivered entry is acknowledged and deleted (``XACK`` +
``XDEL``). The delivery itself (HTTP, signing, backoff) is
``presence/services/webhooks.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.exceptions import ResponseError

from presence.store import Store

GROUP = "delivery"

Entry = tuple[bytes, dict[Any, Any] | None]


async def ensure_group(store: Store, stream: str) -> None:
    """Create the stream's consumer group (and the stream) unless it exists."""
    try:
        await store.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def claim(store: Store, stream: str, consumer: str, *, stale_ms: int, count: int) -> list[Entry]:
    """Up to `count` entries for `consumer`, oldest first: its own retries,
    then what a dead consumer left pending, then new events."""
    r = store.redis
    entries: list[Entry] = []
    # 1. retries: what this consumer already holds
    own: Any = await r.xreadgroup(GROUP, consumer, {stream: "0"}, count=count)
    for _, got in own or []:
        entries.extend(got)
    # 2. what a dead process left pending
    if len(entries) < count:
        claimed = await r.xautoclaim(
            stream,
            GROUP,
            consumer,
            min_idle_time=stale_ms,
            start_id="0-0",
            count=count - len(entries),
        )
        entries.extend(claimed[1] if len(claimed) > 1 else [])
    # 3. new events
    if len(entries) < count:
        new: Any = await r.xreadgroup(GROUP, consumer, {stream: ">"}, count=count - len(entries))
        for _, got in new or []:
            entries.extend(got)
    seen: set[bytes] = set()
    out = []
    for eid, fields in sorted(entries, key=lambda e: tuple(int(x) for x in e[0].split(b"-"))):
        if eid not in seen:
            seen.add(eid)
            out.append((eid, fields))
    return out


async def settle(store: Store, stream: str, eid: bytes) -> None:
    """A delivered (or vanished) entry: acknowledged and deleted, in one transaction."""
    pipe = store.redis.pipeline(transaction=True)
    pipe.xack(stream, GROUP, eid)
    pipe.xdel(stream, eid)
    await pipe.execute()


async def backlog(store: Store, names: Iterable[str]) -> list[int]:
    """Each webhook's events not yet acknowledged, in the order of `names`."""
    pipe = store.redis.pipeline(transaction=False)
    for name in names:
        pipe.xlen(store.keys.webhook_stream(name))
    return [int(n) for n in await pipe.execute()]
