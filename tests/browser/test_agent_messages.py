"""What the agent panel says about the work, and where it says it.

An action that fails on an item says so once, in the item's own panel, next
to the action: it covers no control, a second failure replaces the first,
and it goes with the item. The empty "work in hand" line says what is true
now: an offer ringing, waiting for work, or how to get some.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import open_agent, set_status, shot
from tests.harness import ServerProcess, post_work

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process


def overlaps(page: Any, a: str, b: str) -> bool:
    return bool(
        page.evaluate(
            """([a, b]) => {
              const boxes = (sel) => [...document.querySelectorAll(sel)].map((e) => e.getBoundingClientRect())
                .filter((r) => r.width && r.height);
              const hit = (r, s) =>
                r.left < s.right && s.left < r.right && r.top < s.bottom && s.top < r.bottom;
              return boxes(a).some((r) => boxes(b).some((s) => hit(r, s)));
            }""",
            [a, b],
        )
    )


def test_an_action_s_errors_stay_by_the_action_and_go_with_the_item(
    context: Any, server: ServerProcess
) -> None:
    page = open_agent(context, server, "alice")
    # a small laptop screen: the panel's lower half is where toasts used to pile up
    page.set_viewport_size({"width": 1280, "height": 720})
    set_status(page, "Available")
    wid = post_work(server, channel="chat", subject="refund").json()["id"]
    page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()

    # a disposition over the schema's 200 characters: refused, every time
    page.fill("#dispo", "x" * 250)
    for _ in range(4):
        page.click("#complete-btn")
    # said once (not once per click), in the item's panel, over no control
    said = page.get_by_text(re.compile("disposition must be at most 200 characters"))
    expect(said).to_have_count(1)
    expect(said).to_be_visible()
    errors = page.locator("#detail-error")
    expect(errors).to_contain_text("Could not complete:")
    expect(page.locator("#toasts .toast")).to_have_count(0)
    assert not overlaps(page, "#toasts .toast, #detail-error", "#dispo, #complete-btn")
    shot(page, "agent-action-error")

    # in Japanese too
    page.select_option("#lang", "ja")
    expect(errors).to_contain_text("完了できませんでした:")
    page.click("#complete-btn")
    expect(errors).to_have_count(1)
    expect(page.locator("#toasts .toast")).to_have_count(0)
    page.select_option("#lang", "en")

    # the item goes: so does everything said about it
    page.fill("#dispo", "resolved")
    page.click("#complete-btn")
    expect(page.locator(f'.work-row[data-id="{wid}"]')).to_have_count(0)
    expect(said).to_have_count(0)
    expect(page.locator("#detail-error")).to_have_count(0)
    expect(page.locator("#toasts .toast")).to_have_count(0)


def test_a_message_repeated_shows_once(context: Any, server: ServerProcess) -> None:
    page = open_agent(context, server, "alice")
    # news that belongs to no control (here: the server's unsolicited errors) still
    # goes to a toast, but the same one again does not pile up a copy
    for _ in range(5):
        page.evaluate("""async () => (await import("/static/js/common.js")).toast("Store busy", "error")""")
    expect(page.locator("#toasts .toast")).to_have_count(1)
    for i in range(5):
        page.evaluate("""async (i) => (await import("/static/js/common.js")).toast(`news ${i}`, "info")""", i)
    expect(page.locator("#toasts .toast")).to_have_count(3)


def test_the_empty_work_line_says_what_is_true(browser: Any, server: ServerProcess) -> None:
    lines = {
        "en": (
            "Nothing in hand. Set yourself Available to receive work.",
            "Nothing in hand. You are Available: work is offered as soon as it arrives.",
            "Nothing in hand yet: accept the offer above to start on it.",
        ),
        "ja": (
            "対応中の案件はありません。受付可にすると案件が届きます。",
            "対応中の案件はありません。受付可なので、案件が届きしだいオファーされます。",
            "対応中の案件はまだありません。上のオファーに応答すると対応を始められます。",
        ),
    }
    for lang, agent_id in (("en", "alice"), ("ja", "hanako")):
        away, waiting, offered = lines[lang]
        ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale=f"{lang}-{lang.upper()}")
        try:
            page = open_agent(ctx, server, agent_id)
            empty = page.locator("#work-empty")
            expect(empty).to_have_text(away)
            set_status(page, "Available")
            expect(empty).to_have_text(waiting)
            wid = post_work(server, channel="chat", subject=f"hello {lang}").json()["id"]
            expect(page.locator(f'.offer[data-id="{wid}"]')).to_be_visible()
            expect(empty).to_have_text(offered)
            shot(page, f"agent-offer-ringing-{lang}")
            page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
            expect(empty).to_be_hidden()
            page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
            page.click("#complete-btn")
            expect(empty).to_have_text(waiting)
            set_status(page, "Break")
            expect(empty).to_have_text(away)
        finally:
            ctx.close()
