"""The wallboard's charts: the day's service level, contacts offered, answered
and abandoned and the average wait per 15 minutes, and cases by type, source
and customer; drawn by the page itself (SVG), updated live, in both languages
and on the big screen.

The page reads the charts at most once per 15 s however fast contacts come,
and once a minute regardless (wallboard.js, CHART_MIN_MS, CHART_EVERY_MS):
the test moves the page's clock past that wait instead of sitting through
it (half a minute of the test's time).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser.support import open_agent, open_wallboard, post_call, service_post, set_status, shot
from tests.harness import ServerProcess, post_work

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process


def total(wall: Any, chart: str, series: int) -> float:
    """The sum of one series' bars as drawn (each bar's data-v)."""
    value: float = wall.evaluate(
        """([chart, series]) => [...document.querySelectorAll(`#${chart} rect.series-${series}`)]
             .reduce((n, r) => n + Number(r.dataset.v), 0)""",
        [chart, series],
    )
    return value


def bar(wall: Any, chart: str, label: str) -> Any:
    return wall.locator(f'#{chart} rect[data-label="{label}"]')


CHART_MIN_MS = 15_000  # wallboard.js: the least time between two readings


def drawn(wall: Any, condition: str, steps: int = 20) -> None:
    """Until `condition` (a function of the page) holds: each step moves the
    page's clock to the next reading the page may make, and waits a second
    for it to be read and drawn."""
    for _ in range(steps):
        if wall.evaluate(condition):
            return
        wall.clock.fast_forward(CHART_MIN_MS)
        try:
            wall.wait_for_function(condition, timeout=1000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"not drawn after {steps} readings: {condition}")


def test_charts_of_the_day_drawn_live(context: Any, server: ServerProcess) -> None:
    context.clock.install()  # time flows as usual until the test moves it (`drawn`)
    wall = open_wallboard(context, server)
    expect(wall.locator("#charts")).to_be_visible(timeout=10_000)
    expect(wall.locator("#chart-type").locator("xpath=..")).to_have_class("chart empty")

    def item(channel: str, customer: str, kind: str, subject: str) -> str:
        body = {"customer": {"id": customer}, "payload": {"type": kind}}
        return str(post_work(server, channel=channel, subject=subject, **body).json()["id"])

    chat = item("chat", "c-1", "billing", "one")
    mail = item("email", "c-1", "billing", "two")
    item("voice", "c-2", "outage", "three")
    # contacts offered, as the page draws them (the charts follow the kpis message)
    drawn(
        wall,
        "() => document.querySelectorAll('#chart-volume rect.series-0').length > 0"
        " && document.querySelector('#chart-type rect[data-label=\"billing\"]')?.dataset.v === '2'",
    )
    expect(bar(wall, "chart-type", "billing")).to_have_attribute("data-v", "2")
    assert total(wall, "chart-volume", 0) == 3
    expect(bar(wall, "chart-type", "outage")).to_have_attribute("data-v", "1")
    expect(bar(wall, "chart-customer", "c-1")).to_have_attribute("data-v", "2")
    # the source of a plain work item is its channel, shown in the page's words
    expect(bar(wall, "chart-source", "Voice")).to_have_attribute("data-v", "1")
    expect(wall.locator("#legend-volume")).to_contain_text("Offered")

    # one answered, one abandoned: their bars appear, the service level is drawn
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    page.locator(f'.offer[data-id="{chat}"] .btn.accept').click()
    service_post(server, f"/api/v1/work/{mail}/cancel", {"reason": "customer left"})
    drawn(
        wall,
        "() => document.querySelectorAll('#chart-volume rect.series-1').length > 0"
        " && [...document.querySelectorAll('#chart-volume rect.series-2')].some((r) => r.dataset.v > 0)",
    )
    assert total(wall, "chart-volume", 1) == 1
    assert total(wall, "chart-volume", 2) == 1
    # the average wait's axis: five different durations (a wait of a second
    # or two once read "0 sec, 1 sec, 1 sec, 2 sec, 2 sec")
    drawn(wall, "() => document.querySelectorAll('#chart-wait rect.series-0').length > 0")
    ticks = wall.locator('#chart-wait text.axis[text-anchor="end"]').all_text_contents()
    assert len(ticks) == 5 and len(set(ticks)) == 5, ticks
    sl = wall.locator("#chart-sl rect.series-0")
    expect(sl.first).to_be_attached()
    assert wall.locator("#chart-sl line.target").count() == 1
    expect(wall.locator("#chart-sl")).to_have_attribute("aria-label", "Service level per 15 minutes")
    shot(wall, "wallboard-charts")

    wall.select_option("#lang", "ja")
    expect(wall.locator("#charts figcaption").nth(1)).to_have_text("15分ごとの受付件数")
    expect(wall.locator("#chart-volume")).to_have_attribute("aria-label", "15分ごとの受付件数")
    expect(bar(wall, "chart-source", "電話")).to_have_attribute("data-v", "1")
    wall.select_option("#lang", "en")

    # big screen: the charts stay, in the dark layout, with larger text
    wall.keyboard.press("b")
    expect(wall.locator("body")).to_have_class("page-wallboard big")
    expect(wall.locator("#charts")).to_be_visible()
    size = wall.evaluate("() => getComputedStyle(document.querySelector('#chart-type text')).fontSize")
    assert size == "14px", size
    wall.locator("#charts").scroll_into_view_if_needed()
    shot(wall, "wallboard-charts-big")
    wall.keyboard.press("b")
    page.locator(f'.work-row[data-id="{chat}"] .work-open').click()
    page.click("#complete-btn")


def test_a_source_with_its_number_is_named_in_the_page_s_words(context: Any, server: ServerProcess) -> None:
    # the voice intake writes "voice:<dialled number>", the email one
    # "email:<address>": the chart names the channel, then the number
    context.clock.install()
    wall = open_wallboard(context, server)
    expect(wall.locator("#charts")).to_be_visible(timeout=10_000)
    post_call(server, "chart-call-1", to="+1 800 555 0100")
    label = "Voice · +1 800 555 0100"
    drawn(
        wall, f"() => document.querySelector('#chart-source rect[data-label=\"{label}\"]')?.dataset.v === '1'"
    )
    # the label is clipped; the bar's tooltip has it whole
    expect(wall.locator("#chart-source text.label")).to_have_text(["Voice · +1 800 55…"])
    wall.select_option("#lang", "ja")
    expect(bar(wall, "chart-source", "電話 · +1 800 555 0100")).to_have_attribute("data-v", "1")
    # every label stays inside its chart, in Japanese and on the big screen's
    # larger text (18 characters ran off the left edge there)
    labels = "[...document.querySelectorAll('#charts svg text.label')]"
    left = f"() => Math.min(...{labels}.map((t) => t.getBBox().x))"
    assert wall.evaluate(left) >= 0
    wall.keyboard.press("b")
    expect(wall.locator("body")).to_have_class("page-wallboard big")
    assert wall.evaluate(left) >= 0, wall.locator("#chart-source text.label").all_text_contents()
    wall.keyboard.press("b")
    wall.select_option("#lang", "en")
