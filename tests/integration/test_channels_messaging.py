"""Chat, SMS and social: the first message of a conversation opens a case,
later ones join it and go to the agent holding it; a closed conversation
that starts again is a new case; bad input stores nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.harness import ServerProcess, agent, available, get_work, token
from tests.helpers import http
from tests.integration import channels_http

pytestmark = pytest.mark.in_process

SVC = {"Authorization": f"Bearer {token('service', 'chatgw')}"}


def send(server: ServerProcess, channel: str, **body: Any) -> httpx.Response:
    return http().post(
        f"{server.http}/api/v1/channels/{channel}/messages", json=body, headers=SVC, timeout=10
    )


async def test_conversation_sticks_to_its_agent(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    await available(alice)
    r = send(
        server, "chat", conversation_id="conv-1", message_id="m1", text="hi", **{"from": {"name": "Mia"}}
    )
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    offer = await alice.expect("offer")
    assert offer["work_id"] == wid and offer["channel"] == "chat" and offer["subject"] == "hi"
    assert offer["customer"] == {"name": "Mia", "lead": True}
    await alice.request({"type": "offer.accept", "work_id": wid})
    bob = await agent(server, "bob")
    await available(bob)
    r = send(server, "chat", conversation_id="conv-1", message_id="m2", text="are you there?")
    assert r.status_code == 200 and r.json() == {
        **r.json(),
        "id": wid,
        "outcome": "joined",
        "agent_id": "alice",
    }
    msg = await alice.expect("work.message")
    assert msg["message"]["text"] == "are you there?" and msg["message"]["conversation_id"] == "conv-1"
    # the gateway retries m2: ignored
    r = send(server, "chat", conversation_id="conv-1", message_id="m2", text="are you there?")
    assert r.json()["outcome"] == "duplicate"
    assert len(get_work(server, wid)["case"]["messages"]) == 2
    assert not [m for m in await bob.quiet(0.3) if m["type"] in ("offer", "work.message")]
    # an SMS conversation with the same id is another thread
    other = send(server, "sms", conversation_id="conv-1", text="sms hello", **{"from": {"phone": "+4470000"}})
    assert other.status_code == 201 and other.json()["id"] != wid
    # closed: the next message of the conversation opens a new case
    await alice.request({"type": "work.complete", "work_id": wid})
    r = channels_http.post(f"{server.http}/api/v1/work/{wid}/status", json={"status": "Closed"}, headers=SVC)
    assert r.status_code == 200, r.text
    r = send(server, "chat", conversation_id="conv-1", text="one more thing")
    assert r.status_code == 201 and r.json()["id"] not in (wid, other.json()["id"])


async def test_finished_but_open_conversation_routes_back(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    await available(alice)
    wid = send(server, "social", conversation_id="tw-9", text="@brand help").json()["id"]
    await alice.expect("offer")
    await alice.request({"type": "offer.accept", "work_id": wid})
    await alice.request({"type": "work.complete", "work_id": wid})
    r = send(server, "social", conversation_id="tw-9", text="still broken")
    assert r.json()["outcome"] == "reopened" and r.json()["agent_id"] == "alice"
    offer = await alice.expect("offer")
    assert offer["work_id"] == wid
    await alice.request({"type": "offer.decline", "work_id": wid})


async def test_malformed_messages_store_nothing(server: ServerProcess) -> None:
    bad = [
        ("chat", {"text": "x"}, "conversation_id"),
        ("chat", {"conversation_id": "a b", "text": "x"}, "conversation_id"),
        ("chat", {"conversation_id": "c", "text": ""}, "text"),
        ("chat", {"conversation_id": "c", "text": "x", "from": 5}, "from"),
        ("chat", {"conversation_id": "c", "text": "x", "from": {"name": 5}}, "from.name"),
        ("chat", {"conversation_id": "c", "text": "x", "mood": "sad"}, "mood"),
        ("sms", {"conversation_id": "c", "text": "x" * 70000}, "text"),
    ]
    for channel, body, field in bad:
        r = send(server, channel, **body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
    r = send(server, "fax", conversation_id="c", text="x")
    assert r.status_code == 404 and r.json()["field"] == "channel"
    r = send(server, "chat", conversation_id="c", text="x")
    assert r.status_code == 201 and r.json()["outcome"] == "created"
