"""Reply templates in the panel: the reply box and the notes offer the
templates for the item's channel, queue and the customer's language, and
fill their placeholders from the item in hand."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.support import open_agent, service_post, set_status, shot
from tests.harness import ServerProcess, token

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process

SUP = {"Authorization": f"Bearer {token('supervisor', 'sue')}"}


def put(server: ServerProcess, path: str, body: dict[str, Any]) -> None:
    r = httpx.put(f"{server.http}{path}", json=body, headers=SUP, timeout=10)
    assert r.status_code in (200, 201), r.text


def test_templates_are_offered_filtered_and_filled(context: Any, server: ServerProcess) -> None:
    for tid, body in (
        (
            "greet-ja",
            {
                "name": "ご挨拶",
                "text": "{customer.name} 様\n担当の{agent.name}です（受付番号 {case.id}）。",
                "kind": "reply",
                "language": "ja",
            },
        ),
        (
            "greet-en",
            {"name": "Greeting", "text": "Dear {customer.name},", "kind": "reply", "language": "en"},
        ),
        (
            "status-link",
            {
                "name": "Status link",
                "text": "Follow it here: {case.status_url}",
                "kind": "reply",
                "channels": ["chat"],
            },
        ),
        ("email-only", {"name": "Email sign-off", "text": "Regards", "kind": "reply", "channels": ["email"]}),
        ("billing", {"name": "Billing only", "text": "x", "queues": ["billing"]}),
        (
            "vip-note",
            {"name": "VIP note", "text": "VIP {customer.company} — handled by {agent.id}", "kind": "note"},
        ),
    ):
        put(server, f"/api/v1/templates/{tid}", body)
    put(
        server,
        "/api/v1/customers/c-42",
        {"name": "田中 健二", "company": "田中商事", "language": "ja", "emails": ["kenji@example.jp"]},
    )
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    body = {
        "conversation_id": "t-1",
        "from": {"id": "u1", "email": "kenji@example.jp"},
        "text": "請求書について",
    }
    wid = str(service_post(server, "/api/v1/channels/chat/messages", body, 201)["id"])
    page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()

    reply = page.locator("#reply-template")
    # a Japanese-speaking customer on chat in support: the Japanese greeting only
    expect(reply.locator("option")).to_have_text(["Insert a template…", "Status link", "ご挨拶"])
    reply.select_option(label="Status link")
    link = page.locator("#reply-text").input_value()
    assert link.startswith(f"Follow it here: {server.http}/status/{wid}.0."), link
    page.fill("#reply-text", "")
    reply.select_option(label="ご挨拶")
    expect(page.locator("#reply-text")).to_have_value(
        f"田中 健二 様\n担当のAlice Andersenです（受付番号 {wid}）。"
    )
    note = page.locator("#note-template")
    expect(note.locator("option")).to_have_text(["Insert a template…", "VIP note"])
    note.select_option(label="VIP note")
    expect(page.locator("#note-text")).to_have_value("VIP 田中商事 — handled by alice")
    shot(page, "agent-templates")
    page.select_option("#lang", "ja")
    expect(page.locator("#reply-template option").first).to_have_text("テンプレートを挿入…")
    # what was filled in survives the change of language
    expect(page.locator("#note-text")).to_have_value("VIP 田中商事 — handled by alice")
    page.click("#reply-send")
    expect(page.locator("#conversation .convo-reply")).to_contain_text("田中 健二 様")
    page.click("#complete-btn")
