"""The call box: a phone call in hand offers what can be done with it now.

Accepting a call answers it (the telephony system connects it on
work.assigned): the box reads Connected and offers Hold, Mute, Transfer and
Hang up, never Answer. Once the call ended (the telephony system reported
the hang-up) and in wrap-up, nothing is left to control. In demo mode the
simulated phone system answers like a real one: demo calls are real calls,
and an agent's Hang up or Transfer ends the call and starts the wrap-up.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Servers
from tests.browser.support import hang_up, open_agent, open_wallboard, post_call, set_status, shot
from tests.harness import ServerProcess

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process


def buttons(page: Any) -> list[str]:
    return [b.strip() for b in page.locator("#call button").all_inner_texts()]


def open_item(page: Any, wid: str) -> Any:
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
    call = page.locator("#call")
    expect(call).to_be_visible()
    return call


def test_the_call_box_follows_the_call(context: Any, server: ServerProcess) -> None:
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    wid = post_call(server, "call-box-1", caller_name="伊藤 美咲")
    offer = page.locator(f'.offer[data-id="{wid}"]')
    expect(offer).to_be_visible()
    offer.locator(".btn.accept").click()
    call = open_item(page, wid)

    # accepted is answered: connected, no Answer, and the call is ended by hanging up
    expect(call.locator(".call-state")).to_have_text("Connected")
    assert buttons(page) == ["Hold", "Mute", "Hang up", "Transfer call"], buttons(page)
    expect(page.locator("#wrapup-btn")).to_have_count(0)
    # nor completed under the caller: that ended the item with the call still
    # on the line, and the next call rang at once
    expect(page.locator("#complete-btn")).to_be_disabled()
    expect(page.locator(".hangup-first")).to_have_text("Hang up the call to complete it.")
    page.locator("#dispo").press("Enter")  # the form's submit: refused as well
    expect(page.locator("#detail-state")).to_have_text("In progress")

    call.get_by_role("button", name="Hold").click()
    expect(call.locator(".call-state")).to_have_text("On hold")
    assert buttons(page) == ["Resume", "Mute", "Hang up", "Transfer call"], buttons(page)
    page.select_option("#lang", "ja")
    expect(call.locator(".call-state")).to_have_text("保留中")
    assert buttons(page) == ["保留解除", "ミュート", "切断", "通話を転送"], buttons(page)
    expect(page.locator(".hangup-first")).to_have_text("完了するには通話を切ってください。")
    call.get_by_role("button", name="保留解除").click()
    expect(call.locator(".call-state")).to_have_text("通話中")
    page.select_option("#lang", "en")
    expect(call.locator(".call-state")).to_have_text("Connected")
    shot(page, "agent-call-connected")

    # the caller hangs up: the telephony system says so, the item is in wrap-up
    assert hang_up(server, "call-box-1") == "ended"
    expect(page.locator("#detail-state")).to_have_text("Wrap-up")
    expect(call.locator(".call-state")).to_have_text("Ended")
    expect(call.locator("button")).to_have_count(0)
    expect(call.locator(".call-over")).to_have_text("The call has ended; wrap-up is under way.")
    expect(page.locator("#complete-btn")).to_be_enabled()
    expect(page.locator(".hangup-first")).to_have_count(0)
    expect(call.locator(".call-timer")).to_have_text(re.compile(r"^\d+:\d\d$"))
    # the length of the call, no longer ticking (no data-since for the page's timer)
    expect(call.locator(".call-timer")).not_to_have_attribute("data-since", re.compile(".*"))
    shot(page, "agent-call-ended")

    # the same after a reload: the snapshot carries the call's state
    page.reload()
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    call = open_item(page, wid)
    expect(call.locator(".call-state")).to_have_text("Ended")
    expect(call.locator("button")).to_have_count(0)
    page.select_option("#lang", "ja")
    expect(call.locator(".call-state")).to_have_text("終了")
    expect(call.locator(".call-over")).to_have_text("通話は終了しました。後処理中です。")
    page.select_option("#lang", "en")
    page.fill("#dispo", "resolved")
    page.click("#complete-btn")
    expect(page.locator(".work-row")).to_have_count(0)


def test_an_item_that_is_not_a_call_has_no_call_controls(context: Any, server: ServerProcess) -> None:
    # a voice item posted as plain work (no call id): there is no call to control
    from tests.harness import post_work

    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    wid = post_work(server, channel="voice", subject="call me back").json()["id"]
    page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#call")).to_have_count(0)
    expect(page.locator("#wrapup-btn")).to_be_visible()


def test_a_call_s_details_are_labelled_in_the_page_s_words(context: Any, server: ServerProcess) -> None:
    # the CTI endpoint posts call_id, from, to and digits: the item's details
    # name them as the screen pop names its fields, in the page's language
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    wid = post_call(server, "call-labels-1", to="+1 800 555 0100", digits="2")
    page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    open_item(page, wid)
    details = page.locator("#detail dl.screenpop").last

    def labels() -> list[str]:
        return [x.strip() for x in details.locator("dt").all_inner_texts()]

    expect(details.locator('dd[data-field="digits"]')).to_have_text("2")
    assert labels() == ["Call id", "From", "To", "IVR keys"], labels()
    page.select_option("#lang", "ja")
    expect(details.locator("dt").first).to_have_text("通話ID")
    assert labels() == ["通話ID", "発信元", "宛先", "IVR入力"], labels()


# Every demo call rings alice: the IVR sends every key to her queue, and she
# is its only member (the demo's simulated agents work the demo's queues).
DEMO_CENTER = """
[[queues]]
name = "vip"
title = "VIP line"
push_timeout = 60
wrapup_seconds = 120

[[agents]]
id = "alice"
name = "Alice Andersen"
queues = ["vip"]
extension = "sip:2100@demo.pbx"

[intake.voice]
queue = "vip"
ivr = { "1" = "vip", "2" = "vip", "3" = "vip" }
"""


def test_demo_calls_take_call_controls(context: Any, servers: Servers) -> None:
    servers.use_center(DEMO_CENTER)
    server = servers.start(env={"PRESENCE_DEMO": "1"})
    page = open_agent(context, server, "alice")
    set_status(page, "Available")

    # a call of the demo's own callers (one arrives every few seconds on some channel)
    offer = page.locator(".offer").first
    expect(offer).to_be_visible(timeout=90_000)
    wid = offer.get_attribute("data-id")
    offer.locator(".btn.accept").click()
    call = open_item(page, wid)
    expect(call.locator(".call-state")).to_have_text("Connected")
    # the demo's callers are in its directory: the screen pop knows them
    pop = page.locator("#detail .screenpop-box").first
    expect(pop.locator('dd[data-field="id"]')).to_have_text(re.compile(r"^C-10\d\d$"))
    expect(pop).not_to_contain_text("New contact")
    # and the demo's templates are offered: a note for calls
    expect(page.locator("#note-template option")).to_contain_text(["Call summary"])
    call.get_by_role("button", name="Hold").click()
    expect(call.locator(".call-state")).to_have_text("On hold")
    call.get_by_role("button", name="Resume").click()
    expect(call.locator(".call-state")).to_have_text("Connected")
    call.get_by_role("button", name="Mute").click()
    expect(call.locator(".call-state")).to_have_text("Muted")
    expect(page.locator("#toasts .toast.error")).to_have_count(0)

    # Hang up: the demo's phone system ends the call, which starts the wrap-up
    call.get_by_role("button", name="Hang up").click()
    expect(page.locator("#detail-state")).to_have_text("Wrap-up", timeout=5000)
    expect(call.locator(".call-state")).to_have_text("Ended")
    expect(call.locator("button")).to_have_count(0)
    shot(page, "agent-demo-call-ended")

    # the next demo call: the agent transfers it, and it leaves the agent's line the same way
    page.click("#complete-btn")
    expect(page.locator(f'.work-row[data-id="{wid}"]')).to_have_count(0)
    offer = page.locator(".offer").first
    expect(offer).to_be_visible(timeout=90_000)
    wid = offer.get_attribute("data-id")
    offer.locator(".btn.accept").click()
    call = open_item(page, wid)
    page.fill("#call-target", "sip:2999@demo.pbx")
    call.get_by_role("button", name="Transfer call").click()
    expect(page.locator("#detail-state")).to_have_text("Wrap-up", timeout=5000)
    expect(call.locator(".call-state")).to_have_text("Ended")
    expect(page.locator("#toasts .toast.error")).to_have_count(0)


def test_demo_agents_each_have_their_own_extension(context: Any, servers: Servers) -> None:
    servers.use_center(DEMO_CENTER)
    server = servers.start(env={"PRESENCE_DEMO": "1"})
    wall = open_wallboard(context, server)
    expect(wall.locator("#grid-body tr")).to_have_count(12, timeout=10_000)
    exts = wall.locator("#grid-body tr .a-ext")
    # each row's extension comes with the agents' profiles, read after the snapshot
    expect(exts).to_have_text([re.compile(r"\S")] * 12)
    seen = exts.all_inner_texts()
    assert all(seen) and len(set(seen)) == 12, seen
    # and the agent sees its own
    page = open_agent(context, server, "alice")
    expect(page.locator("#who-ext")).to_have_text("Ext. 2100")
    page.select_option("#lang", "ja")
    expect(page.locator("#who-ext")).to_have_text("内線 2100")
    page.select_option("#lang", "en")
