"""A long head of waiting items nobody can take never starves the one
behind it that someone can (route.lua reads the waiting set page by page)."""

from __future__ import annotations

import pytest

from tests.harness import ServerProcess, agent, available, token
from tests.helpers import http
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.in_process

CENTER = """
[[queues]]
name = "q"

[[agents]]
id = "ann"
queues = ["q"]
skills = {english = 5}
"""


def post_batch(server: ServerProcess, items: list[dict[str, object]]) -> None:
    r = http().post(
        f"{server.http}/api/v1/work:batch",
        json={"items": items},
        headers={"Authorization": f"Bearer {token('service', 'crm')}"},
        timeout=30,
    )
    assert r.status_code == 207, r.text
    assert all(x["status"] == 201 for x in r.json()["items"])


async def test_item_behind_300_untakeable_items_is_offered(server_factory: ServerFactory) -> None:
    server = server_factory(CENTER)
    # 300 items (more than a routing call's first page) that need a skill nobody has
    post_batch(server, [{"channel": "email", "queue": "q", "skills": {"japanese": 5}}] * 300)
    ann = await agent(server, "ann")
    await available(ann)
    post_batch(server, [{"channel": "email", "queue": "q", "skills": {}, "subject": "takeable"}])
    offer = await ann.expect("offer", timeout=5)
    assert offer["subject"] == "takeable"
