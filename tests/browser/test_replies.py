"""Replying from the panel: the conversation shows the customer's messages
with their replies; typing marks the case "being answered by" the agent on
the wallboard; a second reply to the same message asks first (二重返信防止)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import open_agent, open_wallboard, service_post, set_status, shot
from tests.harness import ServerProcess

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process


def chat(server: ServerProcess, conv: str, text: str, mid: str) -> str:
    body = {
        "conversation_id": conv,
        "message_id": mid,
        "from": {"id": "u7", "name": "田中 健二"},
        "text": text,
    }
    reply = service_post(server, "/api/v1/channels/chat/messages", body, 201 if mid == "m1" else 200)
    return str(reply["id"])


def test_reply_from_the_panel_never_twice_by_mistake(context: Any, server: ServerProcess) -> None:
    board = open_wallboard(context, server)
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    wid = chat(server, "c-77", "荷物はいつ届きますか？", "m1")
    page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()

    convo = page.locator("#conversation")
    expect(convo.locator(".convo-in")).to_have_text(re.compile("荷物はいつ届きますか？"))
    # typing: the wallboard shows the case being answered by alice, in her row
    page.fill("#reply-text", "本日発送しました。")
    page.locator("#reply-text").press("End")
    row = board.locator('tr[data-id="alice"] .composing')
    expect(row).to_have_text("Answering: 荷物はいつ届きますか？")
    shot(board, "wallboard-answering")
    # a wallboard opened while she types shows it from its snapshot, not at the next renewal
    late = open_wallboard(context, server)
    expect(late.locator('tr[data-id="alice"] .composing')).to_have_text("Answering: 荷物はいつ届きますか？")
    late.close()
    page.click("#reply-send")
    expect(convo.locator(".convo-reply")).to_have_count(1)
    expect(convo.locator(".convo-reply")).to_contain_text("本日発送しました。")
    expect(page.locator("#reply-text")).to_have_value("")
    # the reply ended the mark
    expect(row).to_have_count(0)

    # the same message again: the panel asks, naming who answered
    page.fill("#reply-text", "本日発送しました！")
    page.click("#reply-send")
    ask = page.locator("#reply-confirm")
    expect(ask).to_be_visible()
    expect(ask).to_contain_text("already answered by alice")
    expect(convo.locator(".convo-reply")).to_have_count(1)
    shot(page, "agent-reply-confirm")
    page.select_option("#lang", "ja")
    page.click("#reply-send")
    expect(ask).to_contain_text("alice が")
    page.click("#reply-confirm-btn")
    expect(convo.locator(".convo-reply")).to_have_count(2)
    expect(convo.locator(".convo-reply .again")).to_have_text("2回目の返信")
    expect(ask).to_be_hidden()
    page.select_option("#lang", "en")

    # the customer writes again: it shows at once, and may be answered once more without a question
    chat(server, "c-77", "ありがとうございます", "m2")
    expect(convo.locator(".convo-in")).to_have_count(2)
    page.fill("#reply-text", "どういたしまして")
    page.click("#reply-send")
    expect(convo.locator(".convo-reply")).to_have_count(3)
    expect(ask).to_be_hidden()
    shot(page, "agent-conversation")
    page.click("#complete-btn")
