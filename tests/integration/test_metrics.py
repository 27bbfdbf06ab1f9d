"""``/metrics``: Prometheus text, parsed, with counts that agree across processes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import ServerProcess, agent, available, post_work, supervisor, token
from tests.helpers import http
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.in_process


def scrape(server: ServerProcess, tok: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    r = http().get(f"{server.http}/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[str, Any] = {}
    # the server's own center (the Redis is shared: a scrape lists every center of it)
    center = server.center_id
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            if s.labels.get("center", center) != center:
                continue
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "center"))
            samples[(s.name, labels)] = s.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> Any:
    return samples.get((name, tuple(sorted(labels.items()))), 0)


async def test_counters_histogram_gauges_across_two_processes(server_factory: ServerFactory) -> None:
    server = server_factory(workers=2)
    sup = await supervisor(server)
    alice = await agent(server, "alice")
    await available(alice)
    w1 = post_work(server, channel="voice").json()["id"]
    assert (await alice.expect("offer"))["work_id"] == w1
    assert (await alice.request({"type": "offer.accept", "work_id": w1}))["type"] == "ok"
    assert (await alice.request({"type": "work.complete", "work_id": w1}))["type"] == "ok"
    await available(alice, "Break")
    w2 = post_work(server, channel="voice").json()["id"]
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(
            f"{server.http}/api/v1/work/{w2}/cancel",
            headers={"Authorization": f"Bearer {token('service', 'crm')}"},
        )
    assert r.status_code == 200
    post_work(server, channel="chat")

    expected = {
        ("presence_work_created_total", "voice"): 2,
        ("presence_work_created_total", "chat"): 1,
        ("presence_work_offered_total", "voice"): 1,
        ("presence_work_assigned_total", "voice"): 1,
        ("presence_work_completed_total", "voice"): 1,
        ("presence_work_abandoned_total", "voice"): 1,
    }
    deadline = time.monotonic() + 10
    while True:
        s = scrape(server)
        got = {k: value(s, k[0], queue="support", channel=k[1]) for k in expected}
        if got == expected and value(s, "presence_websocket_connections", role="agent") == 1:
            break
        assert time.monotonic() < deadline, (got, s)
        await asyncio.sleep(0.2)
    # every scrape (either process answers) tells the same totals
    for _ in range(6):
        s = scrape(server)
        assert {k: value(s, k[0], queue="support", channel=k[1]) for k in expected} == expected
        assert value(s, "presence_websocket_connections", role="agent") == 1
        assert value(s, "presence_websocket_connections", role="supervisor") == 1
        assert value(s, "presence_assignment_latency_seconds_count", queue="support") == 1
        assert value(s, "presence_assignment_latency_seconds_bucket", queue="support", le="+Inf") == 1
        assert value(s, "presence_assignment_latency_seconds_bucket", queue="support", le="3600.0") == 1
        assert 0 <= value(s, "presence_assignment_latency_seconds_sum", queue="support") < 5
        assert value(s, "presence_queue_depth", queue="support") == 1
        assert value(s, "presence_queue_depth", queue="billing") == 0
        assert value(s, "presence_queue_oldest_wait_seconds", queue="support") >= 0
        assert value(s, "presence_queue_agents", queue="support", state="logged_in") == 1
        assert value(s, "presence_queue_agents", queue="support", state="routable") == 0
    await sup.close()
    await alice.close()


def test_metrics_token(server_factory: ServerFactory) -> None:
    server = server_factory(env={"PRESENCE_METRICS_TOKEN": "scrape-me-0123456789"})
    assert http().get(f"{server.http}/metrics", timeout=10).status_code == 401
    bad = http().get(f"{server.http}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401
    s = scrape(server, "scrape-me-0123456789")
    assert value(s, "presence_queue_depth", queue="support") == 0


async def test_the_server_process_reports_its_own_gc_pauses(server_factory: ServerFactory) -> None:
    # a server process of its own: the pauses are the process's, not the test's
    server = server_factory(process=True)
    boards = []
    deadline = time.monotonic() + 60
    while True:
        # sockets until the server has collected at least once: start-up
        # froze what it built and a collection waits for 50,000 new
        # containers (GC_THRESHOLDS), which short requests never add up to
        boards += await asyncio.gather(*(supervisor(server, f"sue{len(boards) + i}") for i in range(25)))
        r = http().get(f"{server.http}/metrics", timeout=10)
        fams = {f.name: f for f in text_string_to_metric_families(r.text)}
        hist, longest = fams["presence_gc_pause_seconds"], fams["presence_gc_pause_max_seconds"]
        counts = {s.labels["generation"]: s.value for s in hist.samples if s.name.endswith("_count")}
        if sum(counts.values()) > 0:
            break
        assert time.monotonic() < deadline, r.text
    assert set(counts) == {"0", "1", "2"}
    assert server.proc is not None
    pid = server.proc.pid
    assert {s.labels["process"].split("@")[0] for s in hist.samples} == {str(pid)}
    (top,) = longest.samples
    assert top.labels["process"].startswith(f"{pid}@")
    assert 0 < top.value < 5
    for b in boards:
        await b.close()
