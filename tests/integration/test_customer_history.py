"""A customer's history: every case opened for a customer of the directory,
newest first, paged by a cursor, with who handled each."""

from __future__ import annotations

from tests.harness import ServerProcess, agent, available, token
from tests.integration import channels_http

SVC = {"Authorization": f"Bearer {token('service', 'crm')}"}
ALICE = {"Authorization": f"Bearer {token('agent', 'alice')}"}


def chat(server: ServerProcess, conv: str, text: str, email: str) -> str:
    r = channels_http.post(
        f"{server.http}/api/v1/channels/chat/messages",
        json={"conversation_id": conv, "from": {"id": conv, "email": email}, "text": text},
        headers=SVC,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_customer_history_is_paged_newest_first(server: ServerProcess) -> None:
    r = channels_http.put(
        f"{server.http}/api/v1/customers/c-9",
        json={"name": "Mia", "emails": ["mia@example.com"]},
        headers=SVC,
    )
    assert r.status_code == 201, r.text
    alice = await agent(server, "alice")
    await available(alice)
    first = chat(server, "h-1", "first question", "mia@example.com")
    await alice.expect("offer")
    await alice.request({"type": "offer.accept", "work_id": first})
    await alice.request({"type": "work.complete", "work_id": first})
    ids = [first] + [chat(server, f"h-{i}", f"question {i}", "mia@example.com") for i in range(2, 5)]
    chat(server, "other", "not Mia", "zoe@example.com")

    url = f"{server.http}/api/v1/customers/c-9/cases"
    page = channels_http.get(f"{url}?limit=3", headers=ALICE).json()
    assert [c["work_id"] for c in page["cases"]] == ids[::-1][:3]
    assert page["cases"][0]["subject"] == "question 4" and page["cases"][0]["channel"] == "chat"
    assert page["next"] is not None
    rest = channels_http.get(f"{url}?limit=3&before={page['next']}", headers=ALICE).json()
    assert [c["work_id"] for c in rest["cases"]] == [first] and rest["next"] is None
    handled = rest["cases"][0]
    assert (
        handled["owner"] == "alice"
        and handled["owner_name"] == "alice"
        and handled["status"] == "In progress"
    )
    assert handled["created"] > 0
    # bad paging is refused naming the parameter; an unknown customer is 404
    for q, field in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("before=-5", "before"),
    ):
        r = channels_http.get(f"{url}?{q}", headers=ALICE)
        assert r.status_code == 422 and r.json()["field"] == field, (q, r.text)
    assert channels_http.get(f"{server.http}/api/v1/customers/nobody/cases", headers=ALICE).status_code == 404
    for wid in ids[1:]:
        await alice.expect(lambda m, wid=wid: m["type"] == "offer" and m["work_id"] == wid)
        await alice.request({"type": "offer.accept", "work_id": wid})
        await alice.request({"type": "work.complete", "work_id": wid})
