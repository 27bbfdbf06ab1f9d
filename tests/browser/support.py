"""Helpers shared by the browser tests (no fixtures here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.harness import ServerProcess, token

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

CENTER = """
[[queues]]
name = "support"
title = "Support"
push_timeout = 30
service_level_seconds = 20
wrapup_seconds = 60

[[agents]]
id = "alice"
name = "Alice Andersen"
queues = ["support"]
skills = {english = 5}

[[agents]]
id = "hanako"
name = "山田 花子"
queues = ["support"]
skills = {japanese = 9}
"""


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def agent_url(server: ServerProcess, agent_id: str) -> str:
    return f"{server.http}/agent#token={token('agent', agent_id)}"


def wallboard_url(server: ServerProcess) -> str:
    return f"{server.http}/wallboard#token={token('supervisor', 'sue')}"


def open_agent(context: Any, server: ServerProcess, agent_id: str = "alice") -> Any:
    page = context.new_page()
    page.goto(agent_url(server, agent_id))
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    return page


def open_wallboard(context: Any, server: ServerProcess) -> Any:
    page = context.new_page()
    page.goto(wallboard_url(server))
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    return page


def post_call(server: ServerProcess, call_id: str, caller: str = "+81 3-1234-5678", **extra: Any) -> str:
    """A call arrives from the telephony system (the CTI endpoint); its work id."""
    r = httpx.post(
        f"{server.http}/api/v1/channels/voice/calls",
        json={"call_id": call_id, "from": caller, **extra},
        headers={"Authorization": f"Bearer {token('service', 'pbx')}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def hang_up(server: ServerProcess, call_id: str, reason: str = "caller hung up") -> str:
    """The telephony system reports the end of a call; the outcome."""
    r = httpx.post(
        f"{server.http}/api/v1/channels/voice/calls/{call_id}/hangup",
        json={"reason": reason},
        headers={"Authorization": f"Bearer {token('service', 'pbx')}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["outcome"])


def set_status(page: Any, status: str, reason: str = "") -> None:
    page.select_option("#status-select", status)
    if reason:
        page.select_option("#reason-select", reason)
    page.click("#status-apply")
