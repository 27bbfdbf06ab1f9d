"""Satisfaction (CSAT): after completion, a signed survey link (in the
``work.completed`` webhook and on the customer's status page), answered once
per case, expiring; the answer is stored, sent as the ``csat`` webhook and
counted per agent and queue in the reports, the CSV and the live KPIs."""

from __future__ import annotations

import re

import pytest

from presence.auth import sign_link
from presence.services.cases import SURVEY_LINK
from tests.harness import SECRET as SERVER_SECRET
from tests.harness import agent, available, supervisor, token
from tests.helpers import REDIS_MODES, free_port, redis_of
from tests.integration import channels_http
from tests.integration.conftest import ServerFactory
from tests.integration.test_webhooks import SECRET, Receiver


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


SVC = {"Authorization": f"Bearer {token('service', 'gw')}"}
SUP = {"Authorization": f"Bearer {token('supervisor', 'sue')}"}


def center(port: int) -> str:
    return f"""
[[queues]]
name = "support"
wrapup_seconds = 0

[[agents]]
id = "alice"
name = "Alice Andersen"
queues = ["support"]

[cases]
survey_days = 2

[intake.forms]
rate_limit = 0

[[webhooks]]
name = "gateway"
url = "http://127.0.0.1:{port}/out"
secret = "{SECRET}"
events = ["work.completed", "csat"]
timeout = 1
max_backoff = 0.4
"""


async def test_survey_once_per_case_counted_for_agent_and_queue(server_factory: ServerFactory) -> None:
    port = free_port()
    rec = Receiver(port)
    try:
        server = server_factory(center(port))
        sup = await supervisor(server)
        alice = await agent(server, "alice")
        await available(alice)
        ids, links = [], []
        for n in range(2):
            r = channels_http.post(
                f"{server.http}/api/v1/channels/chat/messages",
                json={"conversation_id": f"s-{n}", "from": "u1", "text": "help"},
                headers=SVC,
            )
            wid, status_url = r.json()["id"], r.json()["status_url"]
            ids.append(wid)
            await alice.expect(lambda m, wid=wid: m["type"] == "offer" and m["work_id"] == wid)
            await alice.request({"type": "offer.accept", "work_id": wid})
            # not completed yet: the status page offers no survey
            assert (
                "survey_path"
                not in channels_http.get(status_url, headers={"Accept": "application/json"}).json()
            )
            await alice.request({"type": "work.complete", "work_id": wid})
            view = channels_http.get(status_url, headers={"Accept": "application/json"}).json()
            assert view["state"] == "completed" and view["survey_path"].startswith(f"/survey/{wid}.")
            links.append(f"{server.http}{view['survey_path']}")
            page = channels_http.get(status_url)
            assert 'id="survey-link"' in page.text

        # the work.completed webhook carries the same link, for the gateway to send on
        events = await rec.wait_for(2)
        done = [e["data"] for e in events if e["type"] == "work.completed"]
        assert [f"{server.http}{d['survey_path']}" for d in done] == links
        assert all(d["status_path"].startswith("/status/") for d in done)

        # the form: a score and a comment, once
        page = channels_http.get(links[0], headers={"Accept-Language": "ja"})
        assert page.status_code == 200 and "ご対応はいかがでしたか" in page.text
        assert len(re.findall(r'name="score"', page.text)) == 5
        r = channels_http.post(links[0], data={"score": "5", "comment": "とても親切でした", "lang": "ja"})
        assert r.status_code == 200 and "ご回答ありがとうございました" in r.text, r.text
        r = channels_http.post(links[0], data={"score": "1", "lang": "en"})
        assert r.status_code == 200 and "already answered" in r.text
        assert "already answered" in channels_http.get(links[0]).text
        r = channels_http.post(f"{links[1]}/answer", json={"score": 6})
        assert r.status_code == 422 and r.json()["field"] == "score", r.text
        r = channels_http.post(links[1], data={"score": "9"})
        assert r.status_code == 422 and r.json()["field"] == "score", r.text
        r = channels_http.post(f"{links[1]}/answer", json={"score": 2, "comment": "slow"})
        assert r.status_code == 201, r.text
        r = channels_http.post(f"{links[1]}/answer", json={"score": 4})
        assert r.status_code == 409 and r.json()["field"] == "score", r.text
        case = channels_http.get(f"{server.http}/api/v1/work/{ids[0]}", headers=SVC).json()["case"]
        assert case["csat"] == 5 and case["csat_comment"] == "とても親切でした" and case["csat_at"] > 0
        # no longer offered on the status page once answered
        tok = links[0].rsplit("/", 1)[1].split(".")
        sig_bad = f"{server.http}/survey/{tok[0]}.{int(tok[1]) + 1}.{tok[2]}"
        assert channels_http.get(sig_bad).status_code == 404

        # the csat webhook events
        events = await rec.wait_for(4)
        csat = [e["data"] for e in events if e["type"] == "csat"]
        assert [(c["work_id"], c["score"], c["agent_id"], c["queue"]) for c in csat] == [
            (ids[0], 5, "alice", "support"),
            (ids[1], 2, "alice", "support"),
        ]

        # counted per agent and queue: reports, CSV, live KPIs
        rows = channels_http.get(f"{server.http}/api/v1/reports/kpis?group_by=agent", headers=SUP).json()[
            "rows"
        ]
        mine = next(r for r in rows if r["agent"] == "alice")
        assert mine["csat"] == 3.5 and mine["csat_count"] == 2
        rows = channels_http.get(f"{server.http}/api/v1/reports/kpis?group_by=queue", headers=SUP).json()[
            "rows"
        ]
        assert next(r for r in rows if r["queue"] == "support")["csat"] == 3.5
        csv = channels_http.get(
            f"{server.http}/api/v1/reports/kpis?group_by=queue&format=csv", headers=SUP
        ).text
        head, line = csv.splitlines()[:2]
        cols = head.lstrip("\ufeff").split(",")
        assert (
            line.split(",")[cols.index("csat")] == "3.5" and line.split(",")[cols.index("csat_count")] == "2"
        )

        def rated(m: dict) -> bool:
            if m.get("type") != "kpis":
                return False
            qs = {q["name"]: q for q in m["queues"]}
            return qs.get("support", {}).get("today", {}).get("csat_count") == 2 and "agents" in m

        k = await sup.expect(rated, timeout=15)
        assert k["center"]["today"]["csat"] == 3.5
        agents = {a["agent_id"] if "agent_id" in a else a.get("id"): a for a in k["agents"]}
        assert agents["alice"]["today"]["csat"] == 3.5
    finally:
        rec.stop()


async def test_an_expired_or_early_survey_link_is_refused(server_factory: ServerFactory) -> None:
    server = server_factory(center(free_port()))
    r = channels_http.post(
        f"{server.http}/api/v1/channels/chat/messages",
        json={"conversation_id": "x-1", "from": "u9", "text": "hi"},
        headers=SVC,
    )
    wid = r.json()["id"]
    expired = sign_link(SERVER_SECRET, SURVEY_LINK, server.center_id, wid, exp=1)
    assert channels_http.get(f"{server.http}/survey/{expired}").status_code == 404
    # a valid signature, but the case is not completed: no answer yet
    early = sign_link(SERVER_SECRET, SURVEY_LINK, server.center_id, wid, exp=0)
    r = channels_http.post(f"{server.http}/survey/{early}/answer", json={"score": 3})
    assert r.status_code == 409 and r.json()["field"] == "work_id", r.text
    # a status link is no survey link (the purpose is signed too)
    token_ = sign_link(SERVER_SECRET, "status", server.center_id, wid)
    assert channels_http.get(f"{server.http}/survey/{token_}").status_code == 404
