"""An agent's connect is one script call: `conn_open.lua` registers the socket
and reads the snapshot in the same atomic call (Store.conn_open_snapshot), and
`agent_snapshot.lua` reads it alone (snapshot.get, resync). Both must give
exactly what the separate reads (`views`, `agent_items`) give; a further socket
of an agent who is already connected changes nothing and tells nobody."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis

from presence.center import load_center
from presence.store import ScriptError, Store, new_work_id
from tests.harness import write_center

CENTER = """
[[queues]]
name = "support"

[[agents]]
id = "ann"
queues = ["support"]
capacity = 100
"""


@pytest.fixture
async def store(redis_server: str, tmp_path: Path) -> AsyncIterator[Store]:
    config, cid = write_center(tmp_path / "center.toml", CENTER)
    redis = Redis.from_url(redis_server)
    s = Store(redis, cid)
    await s.sync_center(load_center(config))
    yield s
    pattern = s.keys.prefix.replace("{", "\\{").replace("}", "\\}") + "*"
    keys = [k async for k in redis.scan_iter(match=pattern)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _events(store: Store, during: Any) -> list[dict[str, Any]]:
    """The pub/sub events published while awaiting `during` (headers only)."""
    pubsub = store.redis.pubsub()
    await pubsub.ssubscribe(store.keys.events_channel)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    await during
    out: list[dict[str, Any]] = []
    while (m := await pubsub.get_message(timeout=0.2)) is not None:
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(m["data"])
        frame = next(unpacker)
        out.append(frame[0] if isinstance(frame, list) else frame)
    await pubsub.aclose()
    return out


async def _held_and_offered(store: Store) -> tuple[str, str]:
    """ann holds one item (with customer data) and has another offered."""
    await store.conn_open("ann", "c0", 3600)
    await store.set_status("ann", "Available", "", "ann")
    data = {"subject": "Refund — é", "customer": {"name": "Zoë"}, "payload": {"n": [1, 2]}}
    held = (await store.intake_work(new_work_id(), "support", "chat", 0, data, {})).work_id
    await store.route(["support"])
    await store.accept("ann", held)
    offered = (await store.intake_work(new_work_id(), "support", "email", 3, {"subject": "hi"}, {})).work_id
    await store.route(["support"])
    return held, offered


async def test_connect_snapshot_equals_the_separate_reads(store: Store) -> None:
    held, offered = await _held_and_offered(store)
    woke, (agent, offers, work) = await store.conn_open_snapshot("ann", "c1", 3600)
    assert woke == []
    views = await store.views(["ann"])
    assert agent == views[0]
    assert (offers, work) == await store.agent_items("ann")
    assert [o["work_id"] for o in offers] == [offered] and [w["work_id"] for w in work] == [held]
    assert work[0]["customer"] == {"name": "Zoë"} and work[0]["subject"] == "Refund — é"
    assert agent["connected"] is True and agent["by_channel"] == {"chat": 1, "email": 1}
    # the read-only script (snapshot.get, resync) reads the same
    assert await store.agent_snapshot("ann") == (agent, offers, work)


async def test_snapshot_of_an_agent_without_a_record(store: Store) -> None:
    assert await store.agent_snapshot("nobody") == ({"agent_id": "nobody"}, [], [])
    with pytest.raises(ScriptError) as exc:
        await store.conn_open_snapshot("nobody", "c0", 3600)
    assert (exc.value.code, exc.value.field) == ("not_found", "agent_id")


async def test_first_socket_reports_connected_further_ones_change_nothing(store: Store) -> None:
    first = await _events(store, store.conn_open_snapshot("ann", "c0", 3600))
    assert [(e["type"], e["status"], e["connected"]) for e in first if e.get("agent_id") == "ann"] == [
        ("status", "Away", True)
    ]
    await store.set_status("ann", "Available", "", "ann")
    ver = (await store.views(["ann"]))[0]["ver"]
    ready = store.keys.queue_ready("support")
    assert await store.redis.zscore(ready, "ann") is not None

    async def second() -> None:
        woke, (agent, _, _) = await store.conn_open_snapshot("ann", "c1", 3600)
        assert woke == [] and agent["ver"] == ver and agent["connected"] is True

    assert await _events(store, second()) == []
    assert await _events(store, store.conn_close("ann", "c1", 30)) == []
    assert (await store.views(["ann"]))[0]["ver"] == ver
    # the last socket going still tells everyone, and the agent leaves the index
    last = await _events(store, store.conn_close("ann", "c0", 30))
    assert [(e["type"], e["connected"]) for e in last] == [("status", False)]
    assert await store.redis.zscore(ready, "ann") is None
    # back within grace: reported again and re-indexed
    back = await _events(store, store.conn_open_snapshot("ann", "c2", 3600))
    assert [(e["type"], e["status"], e["connected"]) for e in back] == [("status", "Available", True)]
    assert await store.redis.zscore(ready, "ann") is not None
