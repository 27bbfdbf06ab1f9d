"""The agent panel retries an action answered `unavailable` with the same
ref (Redis paused with the action already in its socket buffer: it may be
applied when Redis resumes), and the server answers the retry with the
first result. Plain ``def`` tests: Playwright's sync API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Servers, _check_center
from tests.browser.support import agent_url, set_status
from tests.faults.conftest import PrivateRedis
from tests.harness import post_work


def test_the_panel_retries_an_accept_answered_unavailable_with_its_ref(context: Any, tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    group = Servers(redis.url, tmp_path)
    try:
        server = group.start()
        page = context.new_page()
        sent: list[dict[str, Any]] = []
        answers: list[dict[str, Any]] = []

        def watch(ws: Any) -> None:
            ws.on("framesent", lambda payload: sent.append(json.loads(payload)))
            ws.on("framereceived", lambda payload: answers.append(json.loads(payload)))

        page.on("websocket", watch)
        page.goto(agent_url(server, "alice"))
        expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
        set_status(page, "Available")
        wid = post_work(server, subject="retried").json()["id"]
        offer = page.locator(f'.offer[data-id="{wid}"]')
        expect(offer).to_be_visible(timeout=5000)

        redis.pause()
        try:
            offer.locator(".btn.accept").click()
            # the first answer: `unavailable` (within the server's 3 s timeout)
            deadline = time.monotonic() + 8
            while not any(a.get("code") == "unavailable" for a in answers):
                assert time.monotonic() < deadline, answers[-3:]
                page.wait_for_timeout(50)
        finally:
            redis.resume()
        expect(page.locator(f'.work-row[data-id="{wid}"]')).to_be_visible(timeout=8000)
        accepts = [m for m in sent if m.get("type") == "offer.accept"]
        deadline = time.monotonic() + 5
        while len(accepts) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
            accepts = [m for m in sent if m.get("type") == "offer.accept"]
        assert len(accepts) == 2 and accepts[0]["ref"] == accepts[1]["ref"], accepts
        ref = accepts[0]["ref"]
        # the row shows on `work.assigned`, which the server may send before
        # the retry's own answer: wait for that answer too (CI, a slow host)
        replies = [a for a in answers if a.get("ref") == ref]
        deadline = time.monotonic() + 5
        while len(replies) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
            replies = [a for a in answers if a.get("ref") == ref]
        assert [r["type"] for r in replies] == ["error", "ok"], replies
    finally:
        group.stop_all()
        breaches = _check_center(redis.url, group.center_id)
        redis.stop()
    assert not breaches, breaches
