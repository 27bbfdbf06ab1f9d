"""The end-to-end path every other test builds on: connect, go available,
receive an offer for a posted item, accept, complete."""

from __future__ import annotations

import pytest

from tests.harness import ServerProcess, agent, available, post_work, supervisor

pytestmark = pytest.mark.in_process


async def test_offer_accept_complete(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    assert alice.snapshot["agent"]["status"] == "Away"
    await available(alice)
    r = post_work(server, subject="こんにちは", customer={"name": "山田 花子"})
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    offer = await alice.expect("offer")
    assert offer["work_id"] == wid
    assert offer["subject"] == "こんにちは"
    assert offer["customer"] == {"name": "山田 花子"}
    assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    assigned = await alice.expect("work.assigned")
    assert assigned["work_id"] == wid
    assert (await alice.request({"type": "work.complete", "work_id": wid, "disposition": "ok"}))[
        "type"
    ] == "ok"
    done = await alice.expect("work.updated")
    assert done["state"] == "completed"
    await alice.close()


async def test_supervisor_sees_status(server: ServerProcess) -> None:
    sup = await supervisor(server)
    ids = {a["agent_id"] for a in sup.snapshot["agents"]}
    assert ids == {"alice", "bob"}
    alice = await agent(server, "alice")
    await available(alice)
    delta = await sup.expect(
        lambda m: (
            m["type"] == "agents"
            and any(a["agent_id"] == "alice" and a["status"] == "Available" for a in m["agents"])
        )
    )
    assert delta
