"""The customer's side: the contact form's thank-you page links to the
case's status page, which shows the status and the replies and takes a new
message that reaches the agent holding the case."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import open_agent, set_status, shot
from tests.harness import ServerProcess

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process


def test_contact_form_to_status_page_and_back_to_the_agent(context: Any, server: ServerProcess) -> None:
    agent = open_agent(context, server, "alice")
    set_status(agent, "Available")

    customer = context.new_page()
    customer.goto(f"{server.http}/contact")
    customer.fill("#name", "鈴木 一郎")
    customer.fill("#email", "ichiro@example.jp")
    customer.fill("#message", "注文をキャンセルしたいです")
    customer.select_option("#lang", "ja")
    customer.click("button[type=submit]")
    expect(customer.locator("h1")).to_have_text("ありがとうございます")

    offer = agent.locator(".offer")
    expect(offer).to_have_count(1)
    wid = offer.get_attribute("data-id")
    offer.locator(".btn.accept").click()
    agent.locator(f'.work-row[data-id="{wid}"] .work-open').click()
    agent.fill("#reply-text", "キャンセルを承りました。")
    agent.click("#reply-send")
    expect(agent.locator("#conversation .convo-reply")).to_have_count(1)

    customer.click("#status-link")
    expect(customer.locator("h1")).to_have_text("お問い合わせの状況")
    # the default case status in the customer's language, not "In progress"
    expect(customer.locator("#status")).to_have_text("対応中")
    expect(customer.locator("#conversation li.you")).to_have_text(
        "お客様のメッセージ注文をキャンセルしたいです"
    )
    expect(customer.locator("#conversation li.us")).to_contain_text("キャンセルを承りました。")
    customer.fill("#text", "よろしくお願いします")
    customer.click("button[type=submit]")
    expect(customer.locator(".sent")).to_be_visible()
    expect(customer.locator("#conversation li.you")).to_have_count(2)
    shot(customer, "customer-status-page-ja")

    # the message joined the case: the agent sees it in the conversation at once
    expect(agent.locator("#conversation .convo-in")).to_have_count(2)
    expect(agent.locator("#conversation .convo-in").nth(1)).to_contain_text("よろしくお願いします")
    agent.click("#complete-btn")
