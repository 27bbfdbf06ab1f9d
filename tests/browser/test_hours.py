"""Business hours and the CRM link on the pages: a queue outside its hours shows
as closed on the wallboard (in both languages), keeps queuing by its rule, and
an item's CRM link opens the customer and case from the waiting list and the
agent's panel."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.browser.conftest import Servers
from tests.browser.support import open_agent, open_wallboard, set_status, shot
from tests.harness import post_work


def closed_center() -> str:
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    days = [str(today.fromordinal(today.toordinal() + d)) for d in (-1, 0, 1)]
    return f"""
[[queues]]
name = "support"
title = "Support"
time_zone = "Asia/Tokyo"
hours = [{{days = ["mon", "tue", "wed", "thu", "fri"], open = "09:00", close = "18:00"}}]
holidays = {days!r}
crm_url = "https://crm.example/customers/{{customer.id}}?case={{case.id}}"

[[queues]]
name = "billing"
title = "Billing"

[[agents]]
id = "alice"
name = "Alice Andersen"
queues = ["support", "billing"]
"""


def test_closed_queue_on_the_wallboard_and_the_crm_link(browser: Any, servers: Servers) -> None:
    servers.use_center(closed_center())
    server = servers.start(in_process=True)  # served from the test process
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    try:
        wall = open_wallboard(ctx, server)
        support = wall.locator('.queue-tile[data-queue="support"]')
        expect(support.locator(".q-hours-state")).to_have_text("Closed")
        expect(support).to_have_class("queue-tile closed")
        # today and the next day are holidays: it opens again at 9:00 on the next weekday
        expect(support.locator(".q-hours-next")).to_contain_text("opens")
        expect(support.locator(".q-hours-next")).to_contain_text("09:00")
        expect(wall.locator('.queue-tile[data-queue="billing"] .q-hours')).to_be_hidden()

        # the rule is "keep queuing": an item still waits in support, its customer linked to the CRM
        wid = post_work(
            server, channel="email", subject="invoice", customer={"id": "c-42", "name": "Kim"}
        ).json()["id"]
        row = wall.locator(f'#waiting-body tr[data-id="{wid}"]')
        link = row.locator(".w-customer a.crm-link")
        expect(link).to_have_text("Kim", timeout=10_000)
        expect(link).to_have_attribute("href", f"https://crm.example/customers/c-42?case={wid}")
        expect(link).to_have_attribute("target", "_blank")
        shot(wall, "wallboard-closed")

        wall.select_option("#lang", "ja")
        expect(support.locator(".q-hours-state")).to_have_text("受付時間外")
        expect(support.locator(".q-hours-next")).to_contain_text("受付開始")
        wall.select_option("#lang", "en")

        # an agent takes it (queuing goes on while closed): the panel opens it in the CRM
        page = open_agent(ctx, server, "alice")
        set_status(page, "Available")
        page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
        page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
        crm = page.locator("#detail .crm-link")
        expect(crm).to_have_text("Open in CRM")
        expect(crm).to_have_attribute("href", f"https://crm.example/customers/c-42?case={wid}")
        # an item without a customer id gets no half-filled link
        other = post_work(server, channel="chat", subject="no id", customer={"name": "Lee"}).json()["id"]
        page.locator(f'.offer[data-id="{other}"] .btn.accept').click()
        page.locator(f'.work-row[data-id="{other}"] .work-open').click()
        expect(page.locator("#detail-title")).to_have_text("no id")
        expect(page.locator("#detail .crm-link")).to_have_count(0)
        for item in (wid, other):
            page.locator(f'.work-row[data-id="{item}"] .work-open').click()
            page.click("#complete-btn")
        expect(page.locator(".work-row")).to_have_count(0)
    finally:
        ctx.close()
