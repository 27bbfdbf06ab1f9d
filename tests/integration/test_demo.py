"""Demo mode's sample data against a real Redis: what a team trying the demo
first sees on the screen pop and the wallboard's charts."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from presence.center import parse_center
from presence.demo import CUSTOMERS, TEMPLATES, Demo
from presence.kpi import history
from presence.router.dispatcher import Dispatcher
from presence.schema.templates import TemplateInput
from presence.store import Store, templates
from presence.store.cases import find_customer, get_customer, put_customer


@pytest.fixture
async def store(redis_server: str) -> AsyncIterator[Store]:
    client = Redis.from_url(redis_server)
    s = Store(client, f"demo{uuid.uuid4().hex[:8]}")
    await s.sync_center(parse_center({}))
    yield s
    keys = [k async for k in client.scan_iter(match=f"{s.keys.prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def demo(store: Store) -> Demo:
    return Demo(store, Dispatcher(store), secret="s" * 32, lease=30, grace=5, base_url="http://x", seed=1)


async def test_the_demo_s_callers_are_in_the_directory(store: Store) -> None:
    # a demo call is looked up by the caller's phone: its customer pops with
    # their id and past cases, not as a "new contact"
    edited = {"name": "Emma (edited)", "phones": [], "emails": [], "attributes": {}}
    await put_customer(store, "C-1001", edited)
    await demo(store).seed()
    for c in CUSTOMERS[1:]:
        found = await find_customer(store, phone=c["phone"])
        assert found is not None and found["id"] == c["id"] and found["name"] == c["name"], (c, found)
        assert (await find_customer(store, email=c["email"].upper()) or {}).get("id") == c["id"]
    # one already in the directory is left as it is
    assert (await get_customer(store, "C-1001") or {}).get("name") == "Emma (edited)"


async def test_a_demo_item_s_source_is_its_channel(store: Store) -> None:
    # the wallboard's "cases by source" chart names channels, not "demo"
    d = demo(store)
    await d.seed()
    d.rng = random.Random(7)
    for _ in range(12):
        await d._customer()  # voice goes to the demo's phone system over HTTP: refused here, skipped
    posted = [wid for wid, _, call_id in d.posted if not call_id]
    assert posted
    attrs = await history.attributes(store, posted)
    channels = {wid: (await store.get_work(wid, history=False) or {})["channel"] for wid in posted}
    assert {wid: a["source"] for wid, a in attrs.items()} == channels
    await d.phone.close()


async def test_the_demo_offers_reply_and_note_templates(store: Store) -> None:
    # the panel's "Insert a template" had nothing to offer on a demo item
    await templates.put(store, "demo-greeting", {"name": "Ours", "text": "x", "kind": "any"})
    await demo(store).seed()
    saved = {t["id"]: t for t in await templates.all_of(store)}
    assert set(saved) == {tid for tid, _ in TEMPLATES}
    assert saved["demo-greeting"]["name"] == "Ours"  # one already there is theirs
    for tid, body in TEMPLATES:
        # what the admin API would accept: known placeholders only
        msgspec.convert(body, TemplateInput)
        if tid != "demo-greeting":
            assert saved[tid]["text"] == body["text"] and saved[tid]["kind"] == body["kind"]
    assert (await find_customer(store, phone="+81 3-1234-5678") or {}).get("language") == "ja"
