"""The agent panel and the wallboard in a real Chromium, against a real server.

Plain ``def`` tests: Playwright's sync API must stay out of the asyncio loop.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from presence.auth import mint
from tests.browser.conftest import Servers
from tests.browser.support import (
    agent_url,
    hang_up,
    open_agent,
    open_wallboard,
    post_call,
    set_status,
    shot,
    wallboard_url,
)
from tests.harness import SECRET, ServerProcess, post_work, token

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process

SUBJECT_JA = "請求書の再発行をお願いします 🙏"
CUSTOMER_JA = {"id": "C-1002", "name": "伊藤 美咲", "phone": "+81 3-1234-5678", "note": "至急・折り返し希望"}


def row(wall: Any, agent_id: str) -> Any:
    return wall.locator(f'#grid-body tr[data-id="{agent_id}"]')


def tile(wall: Any, queue: str) -> Any:
    return wall.locator(f'.queue-tile[data-queue="{queue}"]')


def test_sign_in_offer_accept_wrapup_complete(context: Any, server: ServerProcess) -> None:
    wall = open_wallboard(context, server)

    # sign in by pasting the token (the link form is used by the other tests)
    page = context.new_page()
    page.goto(f"{server.http}/agent")
    page.fill("#token-input", token("agent", "alice"))
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    expect(page.locator("#conn")).to_contain_text("Connected")
    expect(page.locator("#status-pill")).to_contain_text("Away")
    expect(row(wall, "alice").locator(".c-status")).to_contain_text("Away")

    # an item waits while nobody is available: the wallboard counts it
    r = post_work(server, channel="chat", subject=SUBJECT_JA, customer=CUSTOMER_JA)
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    expect(tile(wall, "support").locator(".q-waiting")).to_have_text("1")
    shot(wall, "wallboard-waiting")

    # Available: the waiting item is offered at once, the queue empties
    set_status(page, "Available")
    expect(page.locator("#status-pill")).to_contain_text("Available")
    expect(row(wall, "alice").locator(".c-status")).to_contain_text("Available")
    offer = page.locator(f'.offer[data-id="{first}"]')
    expect(offer).to_be_visible(timeout=3000)
    expect(tile(wall, "support").locator(".q-waiting")).to_have_text("0")
    # customer text in any script, intact (screen pop)
    expect(offer.locator(".offer-subject")).to_have_text(SUBJECT_JA)
    expect(offer.locator(".screenpop")).to_contain_text("伊藤 美咲")
    expect(offer.locator(".screenpop")).to_contain_text("至急・折り返し希望")
    expect(offer.locator(".countdown")).to_have_text(re.compile(r"^0:[0-3]\d$"))

    # a new item posted over HTTP shows up as an offer within a second
    started = time.monotonic()
    r = post_work(server, channel="email", subject="Refund status?", customer={"name": "Emma Wilson"})
    second = r.json()["id"]
    expect(page.locator(f'.offer[data-id="{second}"]')).to_be_visible(timeout=1000)
    assert time.monotonic() - started < 1.5
    shot(page, "agent-offers")

    # A accepts the oldest offer; the button accepts the other
    page.locator("body").press("a")
    expect(page.locator(f'.work-row[data-id="{first}"]')).to_be_visible()
    page.locator(f'.offer[data-id="{second}"] .btn.accept').click()
    expect(page.locator(".offer")).to_have_count(0)
    expect(page.locator("#work-count")).to_have_text("2")
    expect(row(wall, "alice").locator(".load-text")).to_have_text("35 / 100")

    # open the first: details, history, a note; then wrap up and complete
    page.locator(f'.work-row[data-id="{first}"] .work-open').click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(detail.locator("#detail-title")).to_have_text(SUBJECT_JA)
    expect(detail.locator("#detail-history")).to_contain_text("Accepted")
    page.fill("#note-text", "お客様に折り返し済み")
    page.locator(".note-form button").click()
    # work.note exists once the cases issue lands; before that the panel says so
    expect(
        detail.locator("#notes-list")
        .get_by_text("お客様に折り返し済み")
        .or_(detail.get_by_text("Not available on this server yet."))
        .first
    ).to_be_visible()
    page.click("#wrapup-btn")
    expect(detail.locator("#detail-state")).to_have_text("Wrap-up")
    expect(page.locator(f'.work-row[data-id="{first}"] .work-state')).to_have_text("Wrap-up")
    shot(page, "agent-detail-wrapup")
    page.fill("#dispo", "resolved")
    page.click("#complete-btn")
    expect(page.locator(f'.work-row[data-id="{first}"]')).to_have_count(0)
    expect(detail).to_be_hidden()

    page.locator(f'.work-row[data-id="{second}"] .work-open').click()
    page.fill("#dispo", "information given")
    page.click("#complete-btn")
    expect(page.locator(".work-row")).to_have_count(0)
    expect(row(wall, "alice").locator(".load-text")).to_have_text("0 / 100")
    shot(wall, "wallboard-after")


def test_status_forced_from_wallboard_reaches_agent(context: Any, server: ServerProcess) -> None:
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    wall = open_wallboard(context, server)
    expect(row(wall, "alice").locator(".c-status")).to_contain_text("Available")

    row(wall, "alice").locator(".col-actions button").click()
    dialog = wall.locator("#actions")
    expect(dialog).to_be_visible()
    wall.select_option("#force-status", "Break")
    wall.select_option("#force-reason", "Coffee")
    wall.click("#force-apply")
    expect(dialog.locator(".action-result")).to_have_text("Status changed.")

    expect(page.locator("#status-pill")).to_contain_text("Break")
    expect(page.locator("#status-reason")).to_have_text("Coffee")
    wall.keyboard.press("Escape")
    expect(row(wall, "alice").locator(".c-status")).to_contain_text("Break")
    expect(row(wall, "alice").locator(".c-reason")).to_have_text("Coffee")
    shot(wall, "wallboard-forced")


def test_reconnects_by_itself_after_the_server_dies(context: Any, servers: Servers) -> None:
    server = servers.start()
    page = open_agent(context, server, "alice")
    wall = open_wallboard(context, server)
    set_status(page, "Available")
    expect(row(wall, "alice").locator(".c-status")).to_contain_text("Available")

    server.kill()
    expect(page.locator("#conn")).not_to_have_attribute("data-state", "open", timeout=5000)
    expect(page.locator("#conn")).to_contain_text("Reconnecting")
    shot(page, "agent-reconnecting")

    again = servers.start(port=server.port)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=20_000)
    expect(wall.locator("#conn")).to_have_attribute("data-state", "open", timeout=20_000)
    # nothing lost: the state comes back from the snapshot, and work flows again
    expect(page.locator("#status-pill")).to_contain_text("Available")
    r = post_work(again, channel="chat", subject="after the restart")
    expect(page.locator(f'.offer[data-id="{r.json()["id"]}"]')).to_be_visible(timeout=3000)
    expect(tile(wall, "support")).to_be_visible()
    page.locator(".offer .btn.decline").click()
    page.locator(".decline-form button[type=submit]").click()
    expect(page.locator(".offer")).to_have_count(0)


def test_two_tabs_of_one_agent_stay_in_step(context: Any, server: ServerProcess) -> None:
    one = open_agent(context, server, "alice")
    two = open_agent(context, server, "alice")
    set_status(one, "Available")
    expect(two.locator("#status-pill")).to_contain_text("Available")
    r = post_work(server, channel="chat", subject="two tabs")
    wid = r.json()["id"]
    expect(one.locator(f'.offer[data-id="{wid}"]')).to_be_visible()
    expect(two.locator(f'.offer[data-id="{wid}"]')).to_be_visible()
    two.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    expect(one.locator(".offer")).to_have_count(0)
    expect(one.locator(f'.work-row[data-id="{wid}"]')).to_be_visible()
    one.locator(f'.work-row[data-id="{wid}"] .work-open').click()
    one.click("#complete-btn")
    expect(two.locator(".work-row")).to_have_count(0)


def test_japanese_interface_and_switch(browser: Any, server: ServerProcess) -> None:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ja-JP")
    try:
        page = open_agent(ctx, server, "hanako")
        # the language follows the browser
        expect(page.locator("#status-title")).to_have_text("自分のステータス")
        expect(page.locator("#conn")).to_contain_text("接続中")
        expect(page.locator("#status-pill")).to_contain_text("離席")
        expect(page.locator("#who-name")).to_have_text("山田 花子")
        page.select_option("#status-select", "Available")
        page.click("#status-apply")
        expect(page.locator("#status-pill")).to_contain_text("受付可")
        wid = post_call(server, "call-ja", caller_name=CUSTOMER_JA["name"], subject=SUBJECT_JA)
        offer = page.locator(f'.offer[data-id="{wid}"]')
        expect(offer.locator(".offer-subject")).to_have_text(SUBJECT_JA)
        expect(offer.locator(".btn.accept")).to_contain_text("応答")
        offer.locator(".btn.accept").click()
        page.locator(".work-open").first.click()
        expect(page.locator("#call")).to_contain_text("通話")
        shot(page, "agent-ja")

        wall = ctx.new_page()
        wall.goto(wallboard_url(server))
        expect(wall.locator("#agents-title")).to_contain_text("エージェント")
        expect(row(wall, "hanako").locator(".a-name")).to_have_text("山田 花子")
        shot(wall, "wallboard-ja")

        # switch to English and back, without reloading
        page.select_option("#lang", "en")
        expect(page.locator("#status-title")).to_have_text("My status")
        expect(page.locator("#status-pill")).to_contain_text("Available")
        page.select_option("#lang", "ja")
        expect(page.locator("#status-title")).to_have_text("自分のステータス")
        hang_up(server, "call-ja")  # a call is completed once it is over
        page.locator("#complete-btn").click()
        expect(page.locator(".work-row")).to_have_count(0)
    finally:
        ctx.close()


def test_wallboard_batches_a_thousand_agents_per_frame(context: Any, server: ServerProcess) -> None:
    wall = open_wallboard(context, server)
    result = wall.evaluate(
        """async () => {
          const wb = window.presenceWallboard;
          const statuses = ["Available", "Away", "Break", "Offline"];
          const agents = [];
          for (let i = 0; i < 1000; i++) {
            agents.push({agent_id: `a${i}`, name: `Agent ${i}`, status: statuses[i % 4], reason: "",
                         since: Date.now() - i * 1000, load: (i % 5) * 20, capacity: 100, items: i % 3,
                         by_channel: {chat: i % 3}, connected: true, ver: 1});
          }
          wb.onmessage({type: "snapshot", agents, queues: [], statuses: wb.state.statuses,
                        channels: wb.state.channels, server_time: Date.now()});
          const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
          await frame();
          const before = document.querySelector('#grid-body tr[data-id="a7"]');
          const rows = new Set(document.querySelectorAll("#grid-body tr"));
          // rows the deltas create (a move of a kept row, when the order changes, is not one)
          const created = [];
          const note = (records) => {
            for (const r of records) for (const n of r.addedNodes) if (!rows.has(n)) created.push(n);
          };
          const watch = new MutationObserver(note);
          watch.observe(document.querySelector("#grid-body"), {childList: true});
          const flushes = wb.state.flushes;
          const t0 = performance.now();
          // 1,000 deltas in 10 messages, one of them stale (an older ver): one frame draws them all
          for (let k = 0; k < 10; k++) {
            const part = agents.slice(k * 100, k * 100 + 100)
              .map((a, i) => ({...a, status: statuses[(k * 100 + i + 1) % 4], ver: 2}));
            wb.onmessage({type: "agents", agents: part});
          }
          wb.onmessage({type: "agents", agents: [{...agents[5], status: "Offline", ver: 1}]});
          await frame();
          await frame();
          const ms = performance.now() - t0;
          note(watch.takeRecords());
          watch.disconnect();
          const now = document.querySelectorAll("#grid-body tr");
          return {flushes: wb.state.flushes - flushes, ms, created: created.length,
                  kept: [...now].filter((tr) => rows.has(tr)).length,
                  sameRow: before === document.querySelector('#grid-body tr[data-id="a7"]')};
        }"""
    )
    expect(wall.locator("#grid-body tr")).to_have_count(1000)
    expect(wall.locator('#grid-body tr[data-id="a0"] .c-status')).to_contain_text("Away")
    expect(wall.locator('#grid-body tr[data-id="a5"] .c-status')).to_contain_text("Break")  # ver 2 kept
    assert result["flushes"] == 1, result  # batched per animation frame
    assert result["sameRow"], result  # keyed rows: updated in place, not re-created
    # every one of the 1,000 rows is the one drawn from the snapshot: no re-render, counted
    # rather than timed (a time limit failed on a busy 2-core box; the figure is printed)
    assert result["created"] == 0 and result["kept"] == 1000, result
    print(f"1,000 deltas drawn in {result['ms']:.0f} ms")
    shot(wall, "wallboard-1000")


def test_panel_and_wallboard_work_for_another_center_and_show_its_name(
    context: Any, server: ServerProcess
) -> None:
    platform = mint(SECRET, "ops", "platform")
    doc = {
        "center": {"name": "大阪センター"},
        "queues": [{"name": "sales"}],
        "agents": [{"id": "alice", "queues": ["sales"]}, {"id": "kenji", "queues": ["sales"]}],
    }
    r = httpx.put(
        f"{server.http}/api/v1/centers/osaka-ui",
        json=doc,
        headers={"Authorization": f"Bearer {platform}"},
        timeout=10,
    )
    assert r.status_code in (200, 201), r.text
    wall = context.new_page()
    wall.goto(f"{server.http}/wallboard#token={token('supervisor', 'sue', center='osaka-ui')}")
    expect(wall.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    expect(wall.locator("#center-name")).to_have_text("大阪センター")
    expect(row(wall, "kenji")).to_be_visible()
    expect(row(wall, "bob")).to_have_count(0)  # the default center's agent: not here
    page = context.new_page()
    page.goto(f"{server.http}/agent#token={token('agent', 'kenji', center='osaka-ui')}")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    expect(page.locator("#center-name")).to_have_text("大阪センター")
    set_status(page, "Available")
    expect(row(wall, "kenji").locator(".c-status")).to_contain_text("Available")
    wid = post_work(server, queue="sales", center="osaka-ui").json()["id"]
    offer = page.locator(f'.offer[data-id="{wid}"]')
    expect(offer).to_be_visible(timeout=5000)
    # the default center's panel shows its own name, not Osaka's
    own = open_agent(context, server, "alice")
    expect(own.locator("#center-name")).not_to_have_text("大阪センター")
    shot(wall, "wallboard-second-center")
    offer.locator(".btn.accept").click()
    expect(offer).to_be_hidden(timeout=5000)


def test_a_late_echo_of_the_login_status_keeps_the_agents_choice(context: Any, server: ServerProcess) -> None:
    """The login's own `status` event reaches the panel after its snapshot
    (it is queued while the snapshot is read, and carries the snapshot's
    `ver`). Arriving after the agent picked another status in the select,
    it used to put the select back, so "apply" sent the old status again
    and the change was lost (the wallboard kept "Away"). Here the event is
    held back until the pick is made, which the server's timing allows."""
    wall = open_wallboard(context, server)
    page = context.new_page()
    route: dict[str, Any] = {"page": None, "snapshot": False, "hold": True}
    held: list[str | bytes] = []

    def handler(ws: Any) -> None:
        upstream = ws.connect_to_server()
        route["page"] = ws

        def from_server(message: str | bytes) -> None:
            kind = json.loads(message).get("type")
            if route["hold"] and route["snapshot"] and kind == "status":
                held.append(message)
                return
            route["snapshot"] = route["snapshot"] or kind == "snapshot"
            ws.send(message)

        upstream.on_message(from_server)
        ws.on_message(upstream.send)

    page.route_web_socket(re.compile(r"/ws/agent"), handler)
    page.goto(agent_url(server, "hanako"))
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the login's status event did not follow the snapshot"
    page.select_option("#status-select", "Available")
    route["hold"] = False
    for message in held:
        route["page"].send(message)
    expect(page.locator("#status-pill .st-name")).to_have_text("Away")  # the echo is drawn
    page.click("#status-apply")
    expect(row(wall, "hanako").locator(".c-status")).to_contain_text("Available")
    expect(page.locator("#status-pill .st-name")).to_have_text("Available")
