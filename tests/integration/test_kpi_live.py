"""Live KPIs on the supervisor socket: pushed at least every second, right counts."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import redis

from presence.store.keys import Keys
from tests.harness import MSGPACK, ServerProcess, agent, available, post_work, supervisor, token
from tests.integration.conftest import ServerFactory


def cancel(server: ServerProcess, wid: str) -> None:
    r = httpx.post(
        f"{server.http}/api/v1/work/{wid}/cancel",
        headers={"Authorization": f"Bearer {token('service', 'crm')}"},
        json={"reason": "hangup"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


async def test_kpis_every_second_with_exact_counts(server: ServerProcess) -> None:
    sup = await supervisor(server)
    sup_mp = await supervisor(server, "sam", subprotocol=MSGPACK)
    alice = await agent(server, "alice")
    await available(alice)
    # w1: offered, accepted, completed; w2: abandoned while waiting; w3: still waiting
    w1 = post_work(server, channel="voice", subject="一件目").json()["id"]
    offer = await alice.expect("offer")
    assert offer["work_id"] == w1
    assert (await alice.request({"type": "offer.accept", "work_id": w1}))["type"] == "ok"
    await asyncio.sleep(0.05)
    assert (await alice.request({"type": "work.complete", "work_id": w1}))["type"] == "ok"
    await available(alice, "Break", "Coffee")
    w2 = post_work(server, channel="voice").json()["id"]
    cancel(server, w2)
    post_work(server, channel="chat", queue="billing")

    def settled(m: dict[str, object]) -> bool:
        c = m.get("center")
        return (
            m.get("type") == "kpis"
            and isinstance(c, dict)
            and c["today"]["offered"] == 3
            and c["waiting"] == 1
            and "agents" in m  # the per-agent rows ride on every 5th push
        )

    k = await sup.expect(settled, timeout=12)
    today = k["center"]["today"]
    assert (today["offered"], today["answered"], today["abandoned"], today["handled"]) == (3, 1, 1, 1)
    assert today["answered_in_sl"] == 1 and today["service_level"] == 1.0
    assert today["abandonment_rate"] == 0.5
    assert today["fcr"] == 1.0
    assert k["windows"] == ["today", "15m", "30m", "60m"]
    assert k["center"]["15m"]["offered"] == 3
    assert k["center"]["logged_in"] == 1 and k["center"]["routable"] == 0
    queues = {q["name"]: q for q in k["queues"]}
    sup_q, bil_q = queues["support"], queues["billing"]
    assert (sup_q["today"]["offered"], sup_q["today"]["answered"], sup_q["today"]["abandoned"]) == (2, 1, 1)
    assert (bil_q["waiting"], bil_q["today"]["offered"]) == (1, 1)
    assert bil_q["longest_wait"] >= 0
    # Erlang C beside the agents staffed: billing has had 1 arrival in the
    # last hour but no completed item yet, so no AHT and no recommendation
    assert bil_q["staffing_needed"] is None and bil_q["staffed"] == 1
    # ... so the center has none either (not the sum of the others)
    assert k["center"]["staffing_needed"] is None
    # support: 2 arrivals an hour and the AHT of w1 -> a tiny load: 1 agent
    assert sup_q["staffing_needed"] == 1
    assert sup_q["staffing"]["arrival_rate"] == 2
    channels = {c["name"]: c for c in k["channels"]}
    assert channels["voice"]["today"]["offered"] == 2 and channels["chat"]["today"]["offered"] == 1
    agents = {a["agent_id"]: a for a in k["agents"]}
    a = agents["alice"]
    assert (a["status"], a["reason"]) == ("Break", "Coffee")
    assert a["today"]["answered"] == 1 and a["today"]["handled"] == 1
    assert a["today"]["time_in_status"]["Break"] >= 0
    assert "Break/Coffee" in a["today"]["time_in_reason"]
    assert a["today"]["handle_time"] > 0

    # at least every second (PRESENCE_KPI_INTERVAL = 1): gaps between pushes, measured here
    loop = asyncio.get_running_loop()
    sup.inbox.clear()  # only pushes that arrive from now on
    stamps = []
    while len(stamps) < 4:
        await sup.expect("kpis", timeout=1.5)
        stamps.append(loop.time())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 1.3, gaps
    m = await sup_mp.expect(settled, timeout=3)
    assert m["center"]["today"]["offered"] == 3


async def test_one_process_computes_for_all_and_another_takes_over(
    server_factory: ServerFactory, redis_server: str
) -> None:
    first = server_factory()
    second = server_factory(config=first.config)
    k = Keys(first.config.read_text("utf-8").split('"')[1])
    sup1 = await supervisor(first)
    sup2 = await supervisor(second, "sam", subprotocol=MSGPACK)
    post_work(first, channel="chat")

    def offered(m: dict[str, object]) -> bool:
        c = m.get("center")
        return m.get("type") == "kpis" and isinstance(c, dict) and c["today"]["offered"] == 1

    # both processes' supervisors get the same figures ...
    a, b = await sup1.expect(offered, timeout=5), await sup2.expect(offered, timeout=5)
    assert a["center"]["today"] == b["center"]["today"]
    # ... computed by one of them: the lock's holder
    r = redis.Redis.from_url(redis_server)
    try:
        holder = r.get(k.kpi_lock("live"))
        assert holder is not None
        assert r.exists(k.kpi_audience)
    finally:
        r.close()
    # a second's pushes: one per interval, not one per process
    sup1.inbox.clear()
    loop = asyncio.get_running_loop()
    pushes, until = 0, loop.time() + 2.2
    while loop.time() < until:
        try:
            await sup1.expect("kpis", timeout=max(0.01, until - loop.time()))
            pushes += 1
        except TimeoutError:
            break
    assert 1 <= pushes <= 3, pushes
    # the holder stops: the other process carries on within the lock's TTL
    assert first.proc is not None
    survivor, sup = (second, sup2) if holder.decode().startswith(f"{first.proc.pid}@") else (first, sup1)
    (first if survivor is second else second).stop()
    sup.inbox.clear()
    post_work(survivor, channel="chat")

    def two(m: dict[str, object]) -> bool:
        c = m.get("center")
        return m.get("type") == "kpis" and isinstance(c, dict) and c["today"]["offered"] == 2

    await sup.expect(two, timeout=6)
