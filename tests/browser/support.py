"""Helpers shared by the browser tests (no fixtures here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.harness import ServerProcess, token
from tests.helpers import http

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


def service_post(server: ServerProcess, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """POST as a service (the telephony system, a CRM); the reply's body."""
    r = http().post(
        f"{server.http}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token('service', 'pbx')}"},
        timeout=10,
    )
    assert r.status_code == status, r.text
    reply: dict[str, Any] = r.json()
    return reply


def post_call(server: ServerProcess, call_id: str, caller: str = "+81 3-1234-5678", **extra: Any) -> str:
    """A call arrives from the telephony system (the CTI endpoint); its work id."""
    body = {"call_id": call_id, "from": caller, **extra}
    return str(service_post(server, "/api/v1/channels/voice/calls", body, 201)["id"])


def hang_up(server: ServerProcess, call_id: str, reason: str = "caller hung up") -> str:
    """The telephony system reports the end of a call; the outcome."""
    path = f"/api/v1/channels/voice/calls/{call_id}/hangup"
    return str(service_post(server, path, {"reason": reason})["outcome"])


def set_status(page: Any, status: str, reason: str = "") -> None:
    page.select_option("#status-select", status)
    if reason:
        page.select_option("#reason-select", reason)
    page.click("#status-apply")
