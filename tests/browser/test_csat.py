"""Satisfaction: once the case is completed, the customer's status page
offers the survey; the answer (1-5 and a comment, once) shows as CSAT on the
wallboard: the KPI strip, the queue's tile and the agent's row."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.support import open_agent, open_wallboard, service_post, set_status, shot
from tests.harness import ServerProcess

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process


def test_survey_after_completion_shows_on_the_wallboard(context: Any, server: ServerProcess) -> None:
    board = open_wallboard(context, server)
    agent = open_agent(context, server, "alice")
    set_status(agent, "Available")
    body = {"conversation_id": "cs-1", "from": {"id": "u1", "name": "Mei"}, "text": "パスワードを忘れました"}
    answer = service_post(server, "/api/v1/channels/chat/messages", body, 201)
    wid, status_url = answer["id"], answer["status_url"]
    agent.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    agent.locator(f'.work-row[data-id="{wid}"] .work-open').click()

    customer = context.new_page()
    customer.goto(f"{status_url}?lang=ja")
    expect(customer.locator("#survey-link")).to_have_count(0)  # not completed yet
    agent.fill("#dispo", "resolved")
    agent.click("#complete-btn")
    expect(agent.locator(f'.work-row[data-id="{wid}"]')).to_have_count(0)
    customer.reload()
    customer.click("#survey-link")
    expect(customer.locator("h1")).to_have_text("ご対応はいかがでしたか？")
    customer.locator('input[name="score"][value="4"]').check()
    customer.fill("#comment", "早く解決しました")
    shot(customer, "customer-survey-ja")
    customer.click("button[type=submit]")
    expect(customer.locator("#thanks")).to_have_text("ご回答ありがとうございました。")
    # once per case: the link now says so, and the status page no longer offers it
    customer.go_back()
    customer.reload()
    expect(customer.locator("#thanks")).to_have_text("このアンケートは回答済みです。ありがとうございました。")
    r = httpx.get(status_url, headers={"Accept": "application/json"}, timeout=10).json()
    assert r["csat"] == 4 and "survey_path" not in r

    expect(board.locator('.kpi[data-key="csat"] .kpi-value')).to_have_text("4", timeout=15_000)
    expect(board.locator('.kpi[data-key="csat"] .kpi-label')).to_have_text("CSAT (1-5)")
    expect(board.locator('.queue-tile[data-queue="support"] dd[data-key="csat"]')).to_have_text("4")
    expect(board.locator('tr[data-id="alice"] .a-csat')).to_have_text("CSAT 4 (1)", timeout=15_000)
    board.select_option("#lang", "ja")
    expect(board.locator('tr[data-id="alice"] .a-csat')).to_have_text("満足度 4（1件）", timeout=15_000)
    shot(board, "wallboard-csat-ja")
