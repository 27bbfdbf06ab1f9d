"""Helpers shared by the browser tests (no fixtures here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
