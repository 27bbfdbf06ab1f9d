"""The screen pop: the customer's phones, emails and attributes as labelled
fields (never raw JSON), and their past cases, opened from the offer and
from the item in hand."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.support import open_agent, service_post, set_status, shot
from tests.harness import ServerProcess, token

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process

SVC = {"Authorization": f"Bearer {token('service', 'crm')}"}


def chat(server: ServerProcess, conv: str, text: str) -> str:
    body = {"conversation_id": conv, "from": {"id": conv, "phone": "+81 90-1234-5678"}, "text": text}
    return str(service_post(server, "/api/v1/channels/chat/messages", body, 201)["id"])


def test_screen_pop_fields_and_past_cases(context: Any, server: ServerProcess) -> None:
    r = httpx.put(
        f"{server.http}/api/v1/customers/c-7",
        json={
            "name": "佐藤 花子",
            "company": "佐藤商店",
            "tier": "Gold",
            "language": "ja",
            "phones": ["+81 90-1234-5678", "03-1111-2222"],
            "emails": ["hanako@example.jp", "shop@example.jp"],
            "attributes": {"plan": "Premium", "since": 2019, "vip": True, "contacts": {"sales": "Ito"}},
        },
        headers=SVC,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    old = chat(server, "p-1", "前回の問い合わせ")
    page.locator(f'.offer[data-id="{old}"] .btn.accept').click()
    page.locator(f'.work-row[data-id="{old}"] .work-open').click()
    page.fill("#dispo", "resolved")
    page.click("#complete-btn")
    expect(page.locator(f'.work-row[data-id="{old}"]')).to_have_count(0)

    wid = chat(server, "p-2", "また質問です")
    card = page.locator(f'.offer[data-id="{wid}"]')
    pop = card.locator("dl.screenpop")
    expect(pop.locator('dd[data-field="phones"]')).to_have_text("+819012345678, 0311112222")
    expect(pop.locator('dd[data-field="emails"]')).to_have_text("hanako@example.jp, shop@example.jp")
    expect(pop.locator('dd[data-field="company"]')).to_have_text("佐藤商店")
    expect(pop.locator('dd[data-field="plan"]')).to_have_text("Premium")
    expect(pop.locator('dd[data-field="vip"]')).to_have_text("Yes")
    expect(pop.locator('dd[data-field="contacts"]')).to_have_text("Sales: Ito")
    expect(pop).to_contain_text("Phones")
    assert "{" not in pop.inner_text() and "[" not in pop.inner_text()

    # the past cases, from the offer
    card.locator(".history-btn").click()
    past = card.locator(".customer-history li")
    expect(past).to_have_count(2)
    expect(past.nth(1)).to_contain_text("前回の問い合わせ")
    expect(past.nth(1)).to_contain_text("handled by Alice Andersen")
    shot(page, "agent-screen-pop-history")

    # and from the item in hand, in Japanese
    card.locator(".btn.accept").click()
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
    page.select_option("#lang", "ja")
    detail = page.locator("#detail-body")
    expect(detail.locator("dl.screenpop").first).to_contain_text("メールアドレス")
    detail.locator(".history-btn").click()
    expect(detail.locator(".customer-history li")).to_have_count(2)
    expect(detail.locator(".customer-history li").nth(1)).to_contain_text("担当: Alice Andersen")
    page.select_option("#lang", "en")
    page.click("#complete-btn")


def test_a_lead_is_labelled_not_shown_as_a_flag(context: Any, server: ServerProcess) -> None:
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    body = {"conversation_id": "l-1", "from": {"id": "l-1", "name": "New person"}, "text": "hi"}
    wid = str(service_post(server, "/api/v1/channels/chat/messages", body, 201)["id"])
    card = page.locator(f'.offer[data-id="{wid}"]')
    expect(card.locator(".badge.lead")).to_have_text("New contact (not in the directory)")
    expect(card.locator("dl.screenpop")).not_to_contain_text("true")
    expect(card.locator(".history-btn")).to_have_count(0)
    card.locator(".btn.accept").click()
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
    page.click("#complete-btn")
