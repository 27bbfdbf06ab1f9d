"""The customer's self-service status link: signed and unguessable, in every
intake answer and the form's thank-you page; it shows the status, the
customer's messages and the replies (never notes); a message added there
joins the case and is routed like any message."""

from __future__ import annotations

import re

import pytest

from tests.harness import ServerProcess, agent, available, token
from tests.helpers import REDIS_MODES, redis_of
from tests.integration import channels_http


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


SVC = {"Authorization": f"Bearer {token('service', 'gw')}"}


def email(server: ServerProcess, mid: str, text: str) -> dict:
    r = channels_http.post(
        f"{server.http}/api/v1/channels/email/inbound",
        json={
            "message_id": mid,
            "from": "Ken <ken@example.com>",
            "to": "support@example.com",
            "subject": "Broken kettle",
            "text": text,
        },
        headers=SVC,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_status_link_shows_the_case_and_takes_a_message(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    await available(alice)
    answer = email(server, "<k1@example.com>", "It does not heat.")
    wid, url = answer["id"], answer["status_url"]
    assert url.startswith(server.http + "/status/" + wid + ".0."), url
    await alice.expect("offer")
    await alice.request({"type": "offer.accept", "work_id": wid})
    await alice.request({"type": "work.note", "work_id": wid, "text": "INTERNAL: warranty expired"})
    await alice.request({"type": "work.reply", "work_id": wid, "text": "Please send us a photo."})

    staff = channels_http.get(f"{server.http}/api/v1/work/{wid}", headers=SVC).json()
    assert server.http + staff["status_path"] == url
    token_part = url.rsplit("/", 1)[1]
    api = f"{server.http}/status/{token_part}"
    view = channels_http.get(api, headers={"Accept": "application/json"}).json()
    assert view["status"] == "In progress" and view["subject"] == "Broken kettle"
    assert [m["text"] for m in view["messages"]] == ["It does not heat."]
    assert [r["text"] for r in view["replies"]] == ["Please send us a photo."]
    assert "INTERNAL" not in str(view) and "alice" not in str(view)
    page = channels_http.get(url, headers={"Accept-Language": "ja"})
    assert (
        page.status_code == 200
        and "お問い合わせの状況" in page.text
        and "Please send us a photo." in page.text
    )
    assert page.headers["cache-control"] == "no-store"

    # the customer adds a message from the page: it joins the case and reaches the holder
    r = channels_http.post(
        url, data={"text": "Photo attached <b>here</b>", "lang": "en"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?sent=1&lang=en"), r.text
    got = await alice.expect("work.message")
    assert got["work_id"] == wid and got["message"]["text"] == "Photo attached <b>here</b>"
    again = channels_http.get(f"{url}?sent=1")
    assert "&lt;b&gt;here&lt;/b&gt;" in again.text and "<b>here</b>" not in again.text
    r = channels_http.post(f"{api}/messages", json={"text": "and the receipt"})
    assert r.status_code == 201 and r.json() == {"id": wid, "outcome": "joined"}, r.text
    await alice.expect("work.message")
    r = channels_http.post(f"{api}/messages", json={"text": "   "})
    assert r.status_code == 422 and r.json()["field"] == "text", r.text

    # after completion, a message from the page routes the case again (its last owner first)
    await alice.request({"type": "work.complete", "work_id": wid})
    r = channels_http.post(f"{api}/messages", json={"text": "it broke again"})
    assert r.status_code == 201 and r.json()["outcome"] == "reopened", r.text
    offer = await alice.expect("offer")
    assert offer["work_id"] == wid and offer["reopened"] is True
    await alice.request({"type": "offer.accept", "work_id": wid})
    await alice.request({"type": "work.complete", "work_id": wid})

    # forged, altered or moved to another case: 404, telling nothing
    other = email(server, "<k2@example.com>", "another one")["id"]
    wid_, exp, sig = token_part.split(".")
    for bad in (f"{other}.{exp}.{sig}", f"{wid_}.1.{sig}", f"{wid_}.{exp}.{'A' * len(sig)}", "nope.0.x"):
        r = channels_http.get(f"{server.http}/status/{bad}", headers={"Accept": "application/json"})
        assert r.status_code == 404 and "no such status link" in r.text, (bad, r.text)
    assert channels_http.get(f"{server.http}/status/not-a-token").status_code == 422
    await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == other)
    await alice.request({"type": "offer.accept", "work_id": other})
    await alice.request({"type": "work.complete", "work_id": other})


async def test_the_form_s_thank_you_page_carries_the_link(server: ServerProcess) -> None:
    r = channels_http.post(
        f"{server.http}/forms/case",
        data={"name": "Aiko", "email": "aiko@example.jp", "message": "予約を変更したい", "lang": "ja"},
    )
    assert r.status_code == 201, r.text
    link = re.search(r'id="status-link" href="([^"]+)"', r.text)
    assert link and "お問い合わせの状況の確認" in r.text, r.text
    page = channels_http.get(link.group(1).replace("&amp;", "&"))
    assert page.status_code == 200 and "予約を変更したい" in page.text and 'lang="ja"' in page.text
    j = channels_http.post(
        f"{server.http}/forms/case",
        data={"email": "aiko@example.jp", "message": "json please"},
        headers={"Accept": "application/json"},
    ).json()
    assert j["status_url"].startswith(server.http + "/status/" + j["id"] + ".")
