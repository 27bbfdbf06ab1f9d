"""The wallboard's numbers mean what their labels say, and agree with each other."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Servers
from tests.browser.support import (
    CENTER,
    hang_up,
    open_agent,
    open_wallboard,
    post_call,
    service_post,
    set_status,
    shot,
)
from tests.harness import ServerProcess, post_work

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process

TWO_QUEUES = (
    CENTER
    + """
[[queues]]
name = "billing"
title = "Billing"
service_level_seconds = 30
"""
)


def needed(wall: Any) -> tuple[str, dict[str, str]]:
    """The center's 'Agents needed' and each queue tile's."""
    center = wall.locator('.kpi[data-key="staffing_needed"] .kpi-value').inner_text()
    tiles = {
        q: wall.locator(f'.queue-tile[data-queue="{q}"] dd[data-key="staffing_needed"]').inner_text()
        for q in ("support", "billing")
    }
    return center, tiles


def test_agents_needed_on_the_center_is_the_queues_sum(browser: Any, servers: Servers) -> None:
    servers.use_center(TWO_QUEUES)
    server = servers.start()
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    try:
        wall = open_wallboard(ctx, server)
        label = wall.locator('.kpi[data-key="staffing_needed"] .kpi-label')
        expect(label).to_have_text("Agents needed")
        # no traffic anywhere: nobody needed, everywhere
        billing = wall.locator('.queue-tile[data-queue="billing"] dd[data-key="staffing_needed"]')
        expect(billing).to_have_text("0")
        assert needed(wall) == ("0", {"support": "0", "billing": "0"}), needed(wall)

        # an arrival in support, none handled yet: no handle time, no estimate, for
        # support and so for the center (billing, with no traffic, still needs 0)
        wid = post_work(server, channel="chat", subject="first").json()["id"]
        support = wall.locator('.queue-tile[data-queue="support"] dd[data-key="staffing_needed"]')
        expect(support).to_have_text("—", timeout=10_000)
        expect(wall.locator('.kpi[data-key="staffing_needed"] .kpi-value')).to_have_text("—")
        assert needed(wall) == ("—", {"support": "—", "billing": "0"}), needed(wall)
        shot(wall, "wallboard-agents-needed-unknown")

        # handled: support has an estimate, the center shows the sum
        page = open_agent(ctx, server, "alice")
        set_status(page, "Available")
        page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
        page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
        page.click("#complete-btn")
        expect(support).to_have_text("1", timeout=10_000)
        expect(wall.locator('.kpi[data-key="staffing_needed"] .kpi-value')).to_have_text("1")
        assert needed(wall) == ("1", {"support": "1", "billing": "0"}), needed(wall)

        wall.select_option("#lang", "ja")
        expect(label).to_have_text("必要人数")
        expect(wall.locator('.queue-tile[data-queue="support"] .q-kpis')).to_contain_text("必要人数")
        wall.select_option("#lang", "en")
    finally:
        ctx.close()


def cancel(server: ServerProcess, wid: str) -> None:
    service_post(server, f"/api/v1/work/{wid}/cancel", {"reason": "customer left"})


def test_abandoned_counts_contacts_and_says_on_which_channels(context: Any, server: ServerProcess) -> None:
    # nobody signed in: everything waits, and the customers give up
    wall = open_wallboard(context, server)
    post_call(server, "call-gone")
    assert hang_up(server, "call-gone") == "abandoned"
    for subject in ("chat one", "chat two"):
        cancel(server, post_work(server, channel="chat", subject=subject).json()["id"])
    tile = wall.locator('.kpi[data-key="abandoned"]')
    expect(tile.locator(".kpi-value")).to_have_text("3", timeout=10_000)
    # every channel counts, so the label says contacts, and which channels they left from
    expect(tile.locator(".kpi-label")).to_have_text("Abandoned contacts")
    expect(tile.locator(".kpi-sub")).to_have_text("Chat 2 · Voice 1")
    expect(wall.locator('.kpi[data-key="abandonment_rate"] .kpi-label')).to_have_text("Abandonment rate")
    shot(wall, "wallboard-abandoned")
    wall.select_option("#lang", "ja")
    expect(tile.locator(".kpi-label")).to_have_text("放棄件数")
    expect(tile.locator(".kpi-sub")).to_have_text("チャット 2 · 電話 1")
    expect(wall.locator('.kpi[data-key="abandonment_rate"] .kpi-label')).to_have_text("放棄率")
    wall.select_option("#lang", "en")


RED = "rgb(180, 35, 24)"  # --bad: the alarm colour
GREEN = "rgb(23, 128, 61)"  # --ok: room for more work
BLUE = "rgb(29, 78, 216)"  # --busy: full, working


def colour(loc: Any) -> str:
    return str(loc.evaluate("(el) => getComputedStyle(el).backgroundColor"))


def test_one_call_fills_the_load_bar_without_an_alarm(context: Any, server: ServerProcess) -> None:
    wall = open_wallboard(context, server)
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    gauge, text = page.locator("#cap-fill"), page.locator("#cap-text")
    mini = wall.locator('#grid-body tr[data-id="alice"] .minibar-fill')
    cell = wall.locator('#grid-body tr[data-id="alice"] .c-load')

    # one call weighs the whole capacity: full, which is normal, so blue and not red
    wid = post_call(server, "call-load")
    page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    expect(text).to_contain_text("100 of 100 units in use")
    expect(wall.locator('#grid-body tr[data-id="alice"] .load-text')).to_have_text("100 / 100")
    assert colour(gauge) != RED and colour(mini) != RED, (colour(gauge), colour(mini))
    assert colour(gauge) == BLUE and colour(mini) == BLUE, (colour(gauge), colour(mini))
    expect(text).to_have_text("100 of 100 units in use: full, no room for more work")
    expect(cell).to_have_attribute("title", "Blue: full, no room for more work (normal on a call)")
    shot(wall, "wallboard-load-full")
    page.select_option("#lang", "ja")
    wall.select_option("#lang", "ja")
    expect(text).to_have_text("100 単位中 100 単位を使用中：満杯のため、これ以上の案件は届きません")
    full_ja = "青：満杯で、これ以上の案件は受けられません（通話中は通常の状態です）"
    expect(cell).to_have_attribute("title", full_ja)
    page.select_option("#lang", "en")
    wall.select_option("#lang", "en")
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
    hang_up(server, "call-load")  # a call is completed once it is over
    page.click("#complete-btn")

    # a chat: room left, green
    chat = post_work(server, channel="chat", subject="hi").json()["id"]
    page.locator(f'.offer[data-id="{chat}"] .btn.accept').click()
    expect(wall.locator('#grid-body tr[data-id="alice"] .load-text')).not_to_have_text(
        re.compile(r"^(0|100) / 100$")
    )
    expect(text).not_to_contain_text("full")
    assert colour(gauge) == GREEN and colour(mini) == GREEN, (colour(gauge), colour(mini))
    expect(cell).to_have_attribute("title", "Green: room for more work")


def pills(loc: Any) -> list[tuple[str, str]]:
    """(background colour, words) of each visible status pill."""
    return [
        (str(c), str(t))
        for c, t in loc.evaluate_all(
            """(els) => els.filter((e) => e.getClientRects().length).map((e) =>
                 [getComputedStyle(e).backgroundColor, e.querySelector(".st-name").textContent])"""
        )
    ]


def one_colour_one_meaning(seen: list[tuple[str, str]]) -> None:
    by_colour: dict[str, set[str]] = {}
    by_words: dict[str, set[str]] = {}
    for c, words in seen:
        by_colour.setdefault(c, set()).add(words)
        by_words.setdefault(words, set()).add(c)
    assert all(len(w) == 1 for w in by_colour.values()), by_colour
    assert all(len(c) == 1 for c in by_words.values()), by_words


def test_each_colour_of_available_has_its_own_words_and_a_legend(context: Any, server: ServerProcess) -> None:
    wall = open_wallboard(context, server)
    alice = open_agent(context, server, "alice")
    hanako = open_agent(context, server, "hanako")
    set_status(hanako, "Available")
    expect(wall.locator('#grid-body tr[data-id="hanako"] .c-status')).to_contain_text("Available")
    set_status(alice, "Available")
    wid = post_work(server, channel="chat", subject="hi").json()["id"]
    alice.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    grid = wall.locator("#grid-body .status-pill")
    summary = wall.locator("#status-summary .status-pill")
    for lang, idle, busy in (("en", "Available", "Available · busy"), ("ja", "受付可", "受付可 · 対応中")):
        wall.select_option("#lang", lang)
        alice.select_option("#lang", lang)
        expect(wall.locator('#grid-body tr[data-id="alice"] .st-name')).to_have_text(busy)
        expect(wall.locator('#grid-body tr[data-id="hanako"] .st-name')).to_have_text(idle)
        expect(alice.locator("#status-pill .st-name")).to_have_text(busy)
        # the summary is the legend: one pill per colour the grid shows, with the same words
        expect(summary).to_have_count(2)
        shown = pills(grid)
        one_colour_one_meaning(shown + pills(alice.locator("#status-pill")))
        legend = {(c, w.rsplit(" ", 1)[0]) for c, w in pills(summary)}
        assert set(shown) == legend, (shown, legend)
    shot(wall, "wallboard-available-legend")
    wall.select_option("#lang", "en")
    alice.select_option("#lang", "en")
