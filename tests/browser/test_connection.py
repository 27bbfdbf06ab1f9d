"""The connection indicator tells the truth, in the page's language.

A link can die without closing: the server is frozen with SIGSTOP, so every
socket stays open at the TCP level and simply goes silent (closing the
browser's network would close the sockets, which the pages already notice).
Real time here, not the fake clock: the real socket's silence is the thing
under test.
"""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Servers
from tests.browser.support import open_agent, open_wallboard, shot
from tests.harness import ServerProcess

STALE = re.compile(r"\bstale\b")


def test_a_silent_link_shows_reconnecting_within_seconds(context: Any, servers: Servers) -> None:
    server = servers.start()
    pages = {"agent": open_agent(context, server), "wallboard": open_wallboard(context, server)}
    for page in pages.values():
        expect(page.locator("#conn .conn-text")).to_have_text("Connected")

    server.pause()
    try:
        frozen = time.monotonic()
        for name, page in pages.items():
            # pings every 4 s, 4 s to answer: a dead link shows within 8 s (not a minute)
            expect(page.locator("#conn"), name).not_to_have_attribute("data-state", "open", timeout=10_000)
            expect(page.locator("#conn .conn-text"), name).to_have_text(re.compile(r"^Reconnecting"))
            expect(page.locator("#app"), name).to_have_class(STALE)
        noticed = time.monotonic() - frozen
        shot(pages["agent"], "agent-silent-link")
        assert noticed < 10, noticed
        # and it keeps saying so while the server stays silent (its attempts stall too)
        time.sleep(3)
        for name, page in pages.items():
            expect(page.locator("#conn .conn-text"), name).to_have_text(re.compile(r"^Reconnecting"))
    finally:
        server.resume()

    for name, page in pages.items():
        expect(page.locator("#conn"), name).to_have_attribute("data-state", "open", timeout=20_000)
        expect(page.locator("#conn .conn-text"), name).to_have_text("Connected")
        expect(page.locator("#app"), name).not_to_have_class(STALE)


def test_the_indicator_speaks_the_language_chosen_after_connecting(
    context: Any, server: ServerProcess
) -> None:
    for page in (open_agent(context, server), open_wallboard(context, server)):
        text = page.locator("#conn .conn-text")
        expect(text).to_have_text("Connected")
        page.select_option("#lang", "ja")
        expect(page.locator("#signout")).to_have_text("サインアウト")
        expect(text).to_have_text("接続中")
        page.select_option("#lang", "en")
        expect(text).to_have_text("Connected")
        # signed out: "Disconnected" follows the language too
        page.click("#signout")
        expect(text).to_have_text("Disconnected")
        page.select_option("#lang", "ja")
        expect(text).to_have_text("切断")
        page.select_option("#lang", "en")
        page.close()


def test_the_reason_disconnected_is_translated(browser: Any, servers: Servers) -> None:
    # a short grace: an agent whose last socket went away is Offline after 1 s
    server = servers.start(env={"PRESENCE_GRACE_SECONDS": "1"})
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ja-JP")
    try:
        wall = open_wallboard(ctx, server)
        agent = open_agent(ctx, server, "alice")
        row = wall.locator('#grid-body tr[data-id="alice"]')
        expect(row.locator(".c-status")).to_contain_text("離席")
        agent.close()
        expect(row.locator(".c-status")).to_contain_text("オフライン", timeout=10_000)
        expect(row.locator(".c-reason")).to_have_text("接続切れ")
        shot(wall, "wallboard-ja-disconnected")
        wall.select_option("#lang", "en")
        expect(row.locator(".c-reason")).to_have_text("Disconnected")
    finally:
        ctx.close()
