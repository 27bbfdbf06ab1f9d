"""Web-to-case: a plain form post opens a case in its category's queue,
known customers are recognised and others flagged as leads, the honeypot
and the per-IP rate limit keep spam out, bad forms store nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import ServerProcess, get_work, token
from tests.helpers import http
from tests.integration import channels_http
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.in_process

CENTER = """
[[queues]]
name = "support"

[[queues]]
name = "billing"

[intake.forms]
queue = "support"
categories = { support = "support", billing = "billing" }
rate_limit = 6
rate_window = 60
"""

JSON = {"Accept": "application/json"}


def form(server: ServerProcess, headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    data = {"name": "Aiko", "email": "aiko@example.jp", "message": "ログインできません", **fields}
    return http().post(f"{server.http}/forms/case", data=data, headers=headers, timeout=10)


async def test_form_opens_case_and_thanks(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    page = channels_http.get(f"{server.http}/contact")
    assert page.status_code == 200 and 'action="/forms/case"' in page.text and "お問い合わせ" in page.text
    r = form(server, category="billing", subject="Invoice", lang="ja")
    assert r.status_code == 201 and r.headers["content-type"].startswith("text/html"), r.text
    assert "ありがとうございます" in r.text
    r = form(server, JSON, category="billing")
    assert r.status_code == 201 and r.json()["queue"] == "billing"
    assert "lead" not in r.json()  # the public reply does not tell who is a known customer
    item = get_work(server, r.json()["id"])
    assert item["channel"] == "web" and item["queue"] == "billing"
    assert item["case"]["source"] == "form" and item["case"]["category"] == "billing"
    assert item["case"]["lead"] is True and item["customer"]["lead"] is True
    assert item["case"]["messages"][0]["text"] == "ログインできません"
    # a known customer is recognised by email
    svc = {"Authorization": f"Bearer {token('service', 'crm')}"}
    channels_http.put(
        f"{server.http}/api/v1/customers/c7",
        json={"name": "Aiko Ito", "emails": ["Aiko@Example.jp"]},
        headers=svc,
        timeout=10,
    ).raise_for_status()
    r = form(server, JSON)
    item = get_work(server, r.json()["id"])
    assert item["case"]["lead"] is False and item["case"]["customer_id"] == "c7"
    assert item["customer"]["name"] == "Aiko Ito" and item["queue"] == "support"


async def test_spam_and_bad_forms_store_nothing(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    r = form(server, website="http://spam.example")
    assert r.status_code == 200 and "Thank you" in r.text and "reference" not in r.text
    assert form(server, JSON, website="x").json() == {"id": None, "outcome": "ignored"}
    for fields, field in (
        ({"message": ""}, "message"),
        ({"email": "", "phone": ""}, "email"),
        ({"email": "nope"}, "email"),
        ({"category": "lottery"}, "category"),
    ):
        r = form(server, JSON, **fields)
        assert r.status_code == 422 and r.json()["field"] == field, (fields, r.text)
    r = channels_http.post(f"{server.http}/forms/case", json={"message": "x"})
    assert r.status_code == 415
    # 6 posts per minute from one address (the 6 above counted): the rest are refused
    r = form(server, JSON)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert r.headers["content-type"] == "application/problem+json"
    svc = {"Authorization": f"Bearer {token('service', 'crm')}"}
    queues = channels_http.get(f"{server.http}/api/v1/queues", headers=svc).json()
    assert queues
    stats = channels_http.get(f"{server.http}/api/v1/webhooks", headers=svc)
    assert stats.status_code == 200


def test_form_without_a_length_is_refused(server_factory: ServerFactory) -> None:
    # a public route must not buffer a body of unknown size
    server = server_factory(CENTER)

    def chunks() -> Iterator[bytes]:
        yield b"name=A&email=a%40example.jp&message=hi"

    r = http().post(
        f"{server.http}/forms/case",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        timeout=10,
    )
    assert r.status_code == 411, r.text
    assert r.headers["content-type"] == "application/problem+json"
