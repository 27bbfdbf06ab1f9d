"""The KPI report per quarter hour (group_by=15m), which the wallboard's charts draw."""

from __future__ import annotations

import itertools
from datetime import datetime

import httpx

from tests.harness import ServerProcess, post_work, token

SUP = {"Authorization": f"Bearer {token('supervisor', 'sue')}"}


def report(
    server: ServerProcess, query: str, path: str = "kpis", who: dict[str, str] = SUP
) -> httpx.Response:
    return httpx.get(f"{server.http}/api/v1/reports/{path}?{query}", headers=who, timeout=30)


async def test_quarter_hours_from_midnight_to_now(server: ServerProcess) -> None:
    for subject in ("one", "two"):
        assert post_work(server, channel="chat", subject=subject).status_code == 201
    r = report(server, "group_by=15m")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["group_by"] == "15m" and body["columns"][0] == "15m"
    rows = body["rows"]
    starts = [datetime.fromisoformat(row["15m"]) for row in rows]
    assert all(s.minute % 15 == 0 and s.second == 0 for s in starts)
    assert all((b - a).total_seconds() == 900 for a, b in itertools.pairwise(starts))
    assert starts[0].hour == 0 and starts[0].minute == 0  # from the center's midnight
    assert sum(row["offered"] for row in rows) == 2
    assert any(row["offered"] for row in rows[-2:])  # the latest quarter (or the one before)
    # CSV too, one line per quarter hour
    csv = report(server, "group_by=15m&format=csv")
    assert csv.status_code == 200 and csv.text.count("\r\n") == len(rows) + 1
    bad = report(server, "group_by=5m")
    assert bad.status_code == 422 and bad.json()["field"] == "group_by"


async def test_the_charts_report_is_the_four_reports_from_one_fold(server: ServerProcess) -> None:
    for customer, kind in (("c-1", "billing"), ("c-1", "billing"), ("c-2", "outage")):
        r = post_work(server, channel="email", customer={"id": customer}, payload={"type": kind})
        assert r.status_code == 201
    day = report(server, "group_by=15m").json()
    r = report(server, "", "charts")
    assert r.status_code == 200, r.text
    groups = r.json()["groups"]
    assert set(groups) == {"15m", "type", "source", "customer"}
    assert sum(row["offered"] for row in groups["15m"]["rows"]) == 3
    assert [row["15m"] for row in groups["15m"]["rows"]] == [row["15m"] for row in day["rows"]]
    assert {row["type"]: row["offered"] for row in groups["type"]["rows"]} == {"billing": 2, "outage": 1}
    assert {row["customer"]: row["offered"] for row in groups["customer"]["rows"]} == {"c-1": 2, "c-2": 1}
    assert {row["source"]: row["offered"] for row in groups["source"]["rows"]} == {"email": 3}
    agent = {"Authorization": f"Bearer {token('agent', 'alice')}"}
    assert report(server, "", "charts", agent).status_code == 403
