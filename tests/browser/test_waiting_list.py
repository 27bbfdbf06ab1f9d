"""The wallboard's waiting list: each waiting item with its age coloured against
its queue's service level, channel, priority and customer; a supervisor
pushes, pulls and reassigns work by choosing from lists, never typing an id."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Servers
from tests.browser.support import CENTER, open_agent, open_wallboard, set_status, shot
from tests.harness import post_work

# "quick" has a 2-second service level: its item turns amber, then red, while the test watches
TWO_QUEUES = (
    CENTER
    + """
[[queues]]
name = "quick"
title = "Quick"
service_level_seconds = 2
overflow_to = "support"
overflow_after = 1
"""
)


def waiting_row(wall: Any, wid: str) -> Any:
    return wall.locator(f'#waiting-body tr[data-id="{wid}"]')


def grid_row(wall: Any, aid: str) -> Any:
    return wall.locator(f'#grid-body tr[data-id="{aid}"]')


def test_waiting_list_ages_by_service_level_and_push_pull_reassign(browser: Any, servers: Servers) -> None:
    servers.use_center(TWO_QUEUES)
    server = servers.start(in_process=True)  # served from the test process
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    try:
        wall = open_wallboard(ctx, server)
        expect(wall.locator("#waiting-empty")).to_have_text("Nothing is waiting.")
        yamada = {"name": "山田 太郎"}
        low = post_work(server, channel="email", subject="請求書の再発行", customer=yamada).json()["id"]
        urgent = {"channel": "voice", "priority": 5, "subject": "line down", "customer": {"id": "c-9"}}
        high = post_work(server, **urgent).json()["id"]
        quick = post_work(server, channel="chat", queue="quick", subject="quick one").json()["id"]

        rows = wall.locator("#waiting-body tr")
        expect(rows).to_have_count(3, timeout=10_000)
        expect(wall.locator("#waiting-count")).to_have_text("3")
        # routing order within a queue: priority first
        ids = [rows.nth(i).get_attribute("data-id") for i in range(3)]
        assert ids.index(high) < ids.index(low), ids
        first = waiting_row(wall, low)
        expect(first.locator(".w-customer")).to_have_text("山田 太郎")
        expect(first.locator(".w-subject")).to_have_text("請求書の再発行")
        expect(first.locator(".w-channel")).to_contain_text("Email")
        expect(waiting_row(wall, high).locator(".w-priority")).to_have_text("5")
        expect(waiting_row(wall, high).locator(".w-customer")).to_have_text("c-9")
        # the age against each queue's own service level: support (20 s) green, quick (2 s) red
        expect(waiting_row(wall, quick).locator(".w-age")).to_have_class("w-age lvl-over", timeout=6000)
        expect(waiting_row(wall, quick).locator(".w-level-text")).to_have_text("over the service-level limit")
        # after a second it overflows: support's agents may take it too, and the row says so
        expect(waiting_row(wall, quick).locator(".w-flag")).to_have_text("also Support")
        expect(first.locator(".w-age")).to_have_class("w-age lvl-ok")
        expect(first.locator(".w-time")).to_have_text(re.compile(r"^0:\d\d$"))
        shot(wall, "wallboard-waiting")

        # a queue tile filters the list too
        wall.locator('.queue-tile[data-queue="quick"]').click()
        expect(rows).to_have_count(1)
        wall.select_option("#f-queue", "")
        expect(rows).to_have_count(3)

        # alice and hanako are signed in but Away: nothing is routed to them by itself
        alice = open_agent(ctx, server, "alice")
        hanako = open_agent(ctx, server, "hanako")
        set_status(alice, "Away")
        set_status(hanako, "Away")
        expect(grid_row(wall, "hanako").locator(".c-status")).to_contain_text("Away")

        # push: from the item's row, choose the agent from a list
        waiting_row(wall, high).locator(".w-push").click()
        dialog = wall.locator("#actions")
        expect(dialog).to_be_visible()
        expect(dialog.locator(".w-summary")).to_contain_text("line down")
        options = dialog.locator("#push-agent option")
        expect(options).to_have_count(2)
        expect(dialog.locator('#push-agent optgroup[label="In this queue"]')).to_have_count(1)
        expect(dialog.locator('#push-agent option[value="alice"]')).to_contain_text(
            "Alice Andersen · Away · 0/100"
        )
        wall.select_option("#push-agent", "alice")
        shot(wall, "wallboard-push")
        wall.click("#push-apply")
        expect(dialog.locator(".action-result")).to_have_text("Offered to the agent.")
        expect(alice.locator(f'.offer[data-id="{high}"]')).to_be_visible()
        wall.keyboard.press("Escape")
        expect(waiting_row(wall, high)).to_have_count(0)

        # reassign: alice's own items, chosen from a list, moved to hanako
        grid_row(wall, "alice").locator(".col-actions button").click()
        held = dialog.locator("#held-id")
        expect(held).to_be_enabled()
        expect(held.locator(f'option[value="{high}"]')).to_contain_text("line down")
        expect(held.locator(f'option[value="{high}"]')).to_contain_text("offered")
        expect(dialog.locator('#reassign-to option[value="alice"]')).to_have_count(0)
        wall.select_option("#reassign-to", "hanako")
        wall.fill("#reassign-note", "日本語で対応")
        # push from the agent's dialog lists what waits in the agent's queues
        expect(dialog.locator(f'#push-id option[value="{low}"]')).to_contain_text("山田 太郎")
        shot(wall, "wallboard-agent-actions")
        wall.click("#reassign-apply")
        expect(dialog.locator(".action-result")).to_have_text("Done.")
        offer = hanako.locator(f'.offer[data-id="{high}"]')
        expect(offer).to_be_visible()
        expect(offer).to_contain_text("日本語で対応")
        expect(alice.locator(f'.offer[data-id="{high}"]')).to_have_count(0)
        expect(held.locator("option")).to_have_text(["No offer and nothing in hand"])
        wall.keyboard.press("Escape")

        # pull: hanako accepted it; the supervisor takes it back to its queue
        offer.locator(".btn.accept").click()
        expect(hanako.locator(f'.work-row[data-id="{high}"]')).to_be_visible()
        grid_row(wall, "hanako").locator(".col-actions button").click()
        expect(held.locator(f'option[value="{high}"]')).to_contain_text("in hand")
        wall.click("#pull-apply")
        expect(dialog.locator(".action-result")).to_have_text("Done.")
        expect(hanako.locator(f'.work-row[data-id="{high}"]')).to_have_count(0)
        expect(hanako.locator("#toasts")).to_contain_text("A supervisor took the item back to its queue.")
        wall.keyboard.press("Escape")
        expect(waiting_row(wall, high)).to_be_visible()

        # in Japanese
        wall.select_option("#lang", "ja")
        expect(wall.locator("#waiting-title")).to_contain_text("待ち呼一覧")
        expect(waiting_row(wall, high).locator(".w-push")).to_have_text("割り当て…")
        expect(waiting_row(wall, quick).locator(".w-level-text")).to_contain_text("サービスレベル")
        shot(wall, "wallboard-waiting-ja")
        wall.select_option("#lang", "en")
    finally:
        ctx.close()
