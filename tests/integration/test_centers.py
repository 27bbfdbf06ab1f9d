"""Many centers on one deployment: the centers API, tokens per center, and
isolation on every route and both websockets.

The default center is the server's center file (center A). Center B is
created through ``PUT /api/v1/centers/{center}``; it has an agent with the
same id as one of A's (``alice``: two agents) and an agent, queue,
customer, call and item that only B has. Every HTTP route of the app is
then driven with A's tokens at B's ids (the list of routes comes from the
app, as the role refusals are tested): none may read, change or even see
anything of B.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from presence.auth import mint
from presence.store.keys import CENTER_DOCS, CENTER_REVISIONS, Keys
from tests.harness import (
    SECRET,
    ServerProcess,
    WsClient,
    agent,
    available,
    post_work,
    supervisor,
    token,
)
from tests.helpers import free_port
from tests.integration import channels_http
from tests.integration.conftest import ServerFactory, check_center
from tests.integration.test_security import API
from tests.integration.test_webhooks import SECRET as HOOK_SECRET
from tests.integration.test_webhooks import Receiver

pytestmark = pytest.mark.timeout(120)

B = "osaka"
PLATFORM = mint(SECRET, "ops", "platform")

# what only center B has (its ids and a text no answer to A may carry)
B_AGENT = "carol"
B_QUEUE = "sales"
B_CUSTOMER = "cust-osaka"
B_CALL = "call-osaka-1"
B_TEMPLATE = "tpl-osaka"
B_SUBJECT = "osaka-only-subject"

B_DOC: dict[str, Any] = {
    "center": {"name": "大阪センター"},
    "queues": [
        {"name": "support", "priority": 10},
        {"name": B_QUEUE, "priority": 5, "push_timeout": 30},
    ],
    "agents": [
        {"id": "alice", "queues": ["support"], "skills": {"english": 5}},
        {"id": B_AGENT, "queues": ["support", B_QUEUE]},
    ],
}


def _auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def put_center(server: ServerProcess, cid: str, doc: dict[str, Any], tok: str = PLATFORM) -> httpx.Response:
    return httpx.put(f"{server.http}/api/v1/centers/{cid}", json=doc, headers=_auth(tok), timeout=10)


def call(server: ServerProcess, method: str, path: str, tok: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, server.http + path, json=body, headers=_auth(tok), timeout=10)


@pytest.fixture
def two(server_factory: ServerFactory, redis_server: str) -> Iterator[tuple[ServerProcess, str]]:
    """A server whose default center is A, and center B created on it; B is
    checked against the routing invariants at the end like A."""
    server = server_factory()
    r = put_center(server, B, B_DOC)
    assert r.status_code == 201, r.text
    listed = httpx.get(f"{server.http}/api/v1/centers", headers=_auth(PLATFORM)).json()["centers"]
    yield server, next(c["id"] for c in listed if c["default"])
    assert not check_center(redis_server, B)
    _forget(redis_server, B)


def _forget(redis_url: str, cid: str) -> None:
    """Remove a center from the shared test Redis, open items and all."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.hdel(CENTER_DOCS, cid)
        client.hdel(CENTER_REVISIONS, cid)
        for key in client.scan_iter(match=Keys(cid).prefix.replace("{", "\\{") + "*"):
            client.delete(key)
    finally:
        client.close()


# -- the centers API ------------------------------------------------------------------------------


def test_centers_api(two: tuple[ServerProcess, str]) -> None:
    server, a = two
    listed = httpx.get(f"{server.http}/api/v1/centers", headers=_auth(PLATFORM)).json()["centers"]
    by_id = {c["id"]: c for c in listed}
    assert by_id[a]["default"] is True
    assert by_id[B] == {"id": B, "name": "大阪センター", "revision": 1, "default": False}
    doc = httpx.get(f"{server.http}/api/v1/centers/{B}", headers=_auth(PLATFORM)).json()
    assert doc["agents"] == B_DOC["agents"] and doc["center"]["id"] == B
    # re-applying answers 200 and bumps the revision
    again = put_center(server, B, B_DOC)
    assert again.status_code == 200 and again.json()["revision"] == 2
    # only the platform role
    for role in ("agent", "supervisor", "service"):
        for tok in (token(role, "x"), token(role, "x", center=B)):
            assert call(server, "GET", "/api/v1/centers", tok).status_code == 403
            assert put_center(server, "other", B_DOC, tok).status_code == 403
    # the default center is the center file's
    assert put_center(server, a, B_DOC).status_code == 409
    assert call(server, "DELETE", f"/api/v1/centers/{a}", PLATFORM).status_code == 409
    assert call(server, "GET", "/api/v1/centers/nowhere", PLATFORM).status_code == 404


@pytest.mark.parametrize(
    ("cid", "doc", "field"),
    [
        ("Osaka", B_DOC, "center"),
        ("a" * 33, B_DOC, "center"),
        ("bad{tag}", B_DOC, "center"),
        ("kobe", {**B_DOC, "center": {"id": "nara"}}, "center.id"),
        ("kobe", {"queues": [{"name": "q", "strategy": "random"}]}, "queues[0].strategy"),
        ("kobe", {"agents": [{"id": "x", "queues": ["nowhere"]}]}, "agents[0].queues[0]"),
        ("kobe", {"unknown": 1}, "unknown"),
    ],
)
def test_bad_center_is_a_problem_naming_the_field(
    server: ServerProcess, cid: str, doc: dict[str, Any], field: str
) -> None:
    r = put_center(server, cid, doc)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field, r.json()
    # nothing was created
    assert call(server, "GET", "/api/v1/centers/kobe", PLATFORM).status_code == 404


async def test_token_of_a_center_that_does_not_exist_is_401_naming_it(server: ServerProcess) -> None:
    r = call(server, "GET", "/api/v1/queues", token("supervisor", "sue", center="atlantis"))
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert "'atlantis'" in r.json()["detail"] and r.headers["www-authenticate"].startswith("Bearer")
    client = await WsClient.connect(
        server, "/ws/agent", token("agent", "alice", center="atlantis"), expect_snapshot=False
    )
    await asyncio.wait_for(client.conn.wait_closed(), 5)
    assert client.conn.close_code == 4401 and "atlantis" in (client.conn.close_reason or "")
    with pytest.raises(ValueError, match="center"):
        mint(SECRET, "alice", "agent", center="Not{Valid}")


async def test_delete_refused_while_open_items_then_gone(two: tuple[ServerProcess, str]) -> None:
    server, _ = two
    wid = post_work(server, queue=B_QUEUE, center=B).json()["id"]
    r = call(server, "DELETE", f"/api/v1/centers/{B}", PLATFORM)
    assert r.status_code == 409 and "open item" in r.json()["detail"]
    svc = token("service", "crm", center=B)
    assert call(server, "POST", f"/api/v1/work/{wid}/cancel", svc, {"reason": "test"}).status_code == 200
    carol = await agent(server, B_AGENT, center=B)
    assert call(server, "DELETE", f"/api/v1/centers/{B}", PLATFORM).status_code == 204
    # its sockets are closed, its tokens refused, its keys gone
    await asyncio.wait_for(carol.conn.wait_closed(), 5)
    assert carol.conn.close_code == 4404
    assert call(server, "GET", "/api/v1/queues", svc).status_code == 401
    assert call(server, "GET", f"/api/v1/centers/{B}", PLATFORM).status_code == 404
    # recreated, it starts empty
    assert put_center(server, B, B_DOC).status_code == 201
    assert call(server, "GET", f"/api/v1/work/{wid}", svc).status_code == 404


async def test_reapply_loses_nothing(two: tuple[ServerProcess, str]) -> None:
    server, _ = two
    carol = await agent(server, B_AGENT, center=B)
    await available(carol)
    wid = post_work(server, queue=B_QUEUE, center=B).json()["id"]
    offer = await carol.expect("offer")
    assert (await carol.request({"type": "offer.accept", "work_id": offer["work_id"]}))["type"] == "ok"
    svc = token("service", "crm", center=B)
    # an agent added by the center's own admin API, not in the document
    r = call(server, "PUT", "/api/v1/agents/dave", svc, {"queues": ["support"]})
    assert r.status_code == 201, r.text
    changed = {
        **B_DOC,
        "queues": [*B_DOC["queues"], {"name": "vip", "priority": 20}],
        "agents": [{"id": B_AGENT, "queues": ["support", B_QUEUE, "vip"], "capacity": 200}],
    }
    assert put_center(server, B, changed).status_code == 200
    item = call(server, "GET", f"/api/v1/work/{wid}", svc).json()
    assert item["state"] == "assigned" and item["agent_id"] == B_AGENT
    agents = {a["id"]: a for a in call(server, "GET", "/api/v1/agents", svc).json()["agents"]}
    assert set(agents) == {"alice", B_AGENT, "dave"}
    assert agents[B_AGENT]["capacity"] == 200 and agents[B_AGENT]["live"]["status"] == "Available"
    assert {q["name"] for q in call(server, "GET", "/api/v1/queues", svc).json()["queues"]} == {
        "support",
        B_QUEUE,
        "vip",
    }
    assert (await carol.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"


# -- isolation on every route ------------------------------------------------------------------


@dataclass
class Seeded:
    work_id: str
    markers: tuple[str, ...]


def _seed_b(server: ServerProcess) -> Seeded:
    svc = token("service", "crm", center=B)
    wid = post_work(server, queue=B_QUEUE, subject=B_SUBJECT, center=B).json()["id"]
    r = call(
        server, "PUT", f"/api/v1/customers/{B_CUSTOMER}", svc, {"name": "Osaka Customer", "tier": "gold"}
    )
    assert r.status_code in (200, 201), r.text
    r = call(server, "POST", "/api/v1/channels/voice/calls", svc, {"call_id": B_CALL, "from": "+81611112222"})
    assert r.status_code == 201, r.text
    assert (
        call(server, "POST", f"/api/v1/work/{wid}/comments", svc, {"text": "osaka note"}).status_code == 201
    )
    r = call(
        server, "PUT", f"/api/v1/templates/{B_TEMPLATE}", svc, {"name": "Osaka greeting", "text": "okini"}
    )
    assert r.status_code in (200, 201), r.text
    markers = (wid, B_AGENT, B_QUEUE, B_CUSTOMER, B_CALL, B_SUBJECT, "osaka note", "Osaka Customer")
    return Seeded(wid, (*markers, B_TEMPLATE, "Osaka greeting"))


def _ids(seed: Seeded) -> dict[str, str]:
    return {
        "agent_id": B_AGENT,
        "name": B_QUEUE,
        "customer_id": B_CUSTOMER,
        "call_id": B_CALL,
        "work_id": seed.work_id,
        "channel": "chat",
        "template_id": B_TEMPLATE,
    }


# bodies that B's own token gets past validation with (so a 404 for A's
# token is the center's answer, not the body's)
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/work/{work_id}/cancel"): {"reason": "a"},
    ("POST", "/api/v1/work/{work_id}/comments"): {"text": "from a"},
    ("POST", "/api/v1/work/{work_id}/replies"): {"text": "from a"},
    ("PUT", "/api/v1/templates/{template_id}"): {"name": "A's own", "text": "a"},
    ("POST", "/api/v1/work/{work_id}/status"): {"status": "Open"},
    ("POST", "/api/v1/work/{work_id}/transfer"): {"to_queue": "support"},
    ("POST", "/api/v1/work/{work_id}/reassign"): {"agent_id": "alice"},
    ("POST", "/api/v1/work/{work_id}/push"): {"agent_id": "alice"},
    ("POST", "/api/v1/channels/voice/calls/{call_id}/hangup"): {},
    ("PUT", "/api/v1/agents/{agent_id}"): {"queues": ["support"], "capacity": 7},
    ("PUT", "/api/v1/queues/{name}"): {"title": "A's own"},
    ("PUT", "/api/v1/customers/{customer_id}"): {"name": "A's own"},
    ("POST", "/api/v1/work"): {"channel": "chat", "queue": "support", "subject": "a"},
    ("POST", "/api/v1/work:batch"): {"items": [{"channel": "chat", "queue": "support"}]},
    ("POST", "/api/v1/channels/voice/calls"): {"call_id": "call-a", "from": "+81300000000"},
    ("POST", "/api/v1/channels/email/inbound"): {
        "message_id": "<a@example.com>",
        "from": "a@example.com",
        "to": "support@example.com",
        "text": "a",
    },
    ("POST", "/api/v1/channels/{channel}/messages"): {"conversation_id": "conv-a", "from": "a", "text": "a"},
}

# a route with a path parameter naming an item of B: A's token must get 404
# (a PUT creates A's own item instead: checked against B's afterwards)
CREATES = {"PUT"}
# routes of no center's items (the centers API is the platform's)
NOT_CENTER = re.compile(r"^/api/v1/centers")


def _role(roles: tuple[str, ...] | None) -> str:
    allowed = roles or ("service",)
    return next(r for r in ("supervisor", "service", "agent") if r in allowed)


def _snapshot_b(server: ServerProcess, seed: Seeded) -> dict[str, Any]:
    svc = token("service", "crm", center=B)
    item = call(server, "GET", f"/api/v1/work/{seed.work_id}", svc).json()
    return {
        "item": {k: item[k] for k in ("state", "queue", "agent_id", "subject")},
        "comments": [
            c["text"]
            for c in call(server, "GET", f"/api/v1/work/{seed.work_id}/comments", svc).json()["comments"]
        ],
        "carol": call(server, "GET", f"/api/v1/agents/{B_AGENT}", svc).json()["capacity"],
        "sales": call(server, "GET", f"/api/v1/queues/{B_QUEUE}", svc).json()["title"],
        "customer": call(server, "GET", f"/api/v1/customers/{B_CUSTOMER}", svc).json()["name"],
        "agents": sorted(a["id"] for a in call(server, "GET", "/api/v1/agents", svc).json()["agents"]),
        "queues": sorted(q["name"] for q in call(server, "GET", "/api/v1/queues", svc).json()["queues"]),
        "template": call(server, "GET", f"/api/v1/templates/{B_TEMPLATE}", svc).json()["name"],
    }


def test_every_route_acts_on_its_tokens_center_only(two: tuple[ServerProcess, str]) -> None:
    server, _ = two
    seed = _seed_b(server)
    ids = _ids(seed)
    before = _snapshot_b(server, seed)
    tried = 0
    # every read first, while A has nothing of these ids; then every write
    for method, path, roles in sorted(API, key=lambda route: route[0] != "GET"):
        if NOT_CENTER.match(path):
            continue
        params = re.findall(r"{([^}]+)}", path)
        url = path
        for p in params:
            url = url.replace("{" + p + "}", ids[p])
        role = _role(roles)
        body = BODIES.get((method, path), {} if method in ("POST", "PUT") else None)
        in_b = call(server, method, url, token(role, "nobody", center=B), body) if method == "GET" else None
        r = call(server, method, url, token(role, "nobody"), body)
        where = (method, path, r.status_code, r.text[:300])
        assert r.status_code < 500, where
        for marker in seed.markers:
            if marker in url:
                continue  # an answer may name what was asked for ("no agent carol")
            assert marker not in r.text, (marker, *where)
        if params and method not in CREATES and not (method == "POST" and params == ["channel"]):
            # an item of B named by A's token: not found, never served or changed
            # (a DELETE is idempotent: 204 for what A does not have either)
            assert r.status_code == 404 or (method == "DELETE" and r.status_code == 204), where
            if in_b is not None:
                assert in_b.status_code == 200, (method, path, in_b.status_code, in_b.text[:300])
        tried += 1
    assert tried >= 30, tried
    # nothing of B changed: A's PUTs made (and its DELETEs removed) A's own
    # agent and queue, and made A's own customer
    assert _snapshot_b(server, seed) == before
    sup_a = token("supervisor", "sue")
    assert call(server, "GET", f"/api/v1/customers/{B_CUSTOMER}", sup_a).json()["name"] == "A's own"


# -- websockets and routing ---------------------------------------------------------------------


async def test_two_centers_route_at_once_and_neither_sees_the_other(two: tuple[ServerProcess, str]) -> None:
    server, _ = two
    # alice exists in both centers: two agents
    alice_a = await agent(server, "alice")
    alice_b = await agent(server, "alice", center=B)
    carol = await agent(server, B_AGENT, center=B)
    sup_a = await supervisor(server, "sue")
    sup_b = await supervisor(server, "sue", center=B)
    assert {a["agent_id"] for a in sup_a.snapshot["agents"]} == {"alice", "bob"}
    assert {a["agent_id"] for a in sup_b.snapshot["agents"]} == {"alice", B_AGENT}
    for c in (alice_a, alice_b, carol):
        await available(c)
    # both centers route at the same time, each to its own agents
    n = 6
    a_items = [post_work(server, queue="billing", subject=f"a{i}").json()["id"] for i in range(n)]
    b_items = [post_work(server, queue=B_QUEUE, subject=f"b{i}", center=B).json()["id"] for i in range(n)]
    got: dict[str, set[str]] = {"a": set(), "b": set()}

    async def work(client: WsClient, side: str, want: int) -> None:
        while len(got[side]) < want:
            offer = await client.expect("offer", timeout=10)
            assert (await client.request({"type": "offer.accept", "work_id": offer["work_id"]}))[
                "type"
            ] == "ok"
            got[side].add(offer["work_id"])
            assert (await client.request({"type": "work.complete", "work_id": offer["work_id"]}))[
                "type"
            ] == "ok"

    await asyncio.wait_for(asyncio.gather(work(alice_a, "a", n), work(carol, "b", n)), 30)
    assert got == {"a": set(a_items), "b": set(b_items)}
    # neither saw the other: B's alice got nothing of A's, A's wallboard no B agent
    await asyncio.sleep(0.5)
    seen_b_alice = [m for m in alice_b.inbox + await alice_b.quiet(0.3) if m.get("work_id")]
    assert seen_b_alice == []
    for sup, _own, other in ((sup_a, set(a_items), set(b_items)), (sup_b, set(b_items), set(a_items))):
        msgs = sup.inbox + await sup.quiet(0.5)
        text = repr(msgs)
        assert not any(w in text for w in other)
        ids = {v["agent_id"] for m in msgs if m.get("type") == "agents" for v in m["agents"]}
        assert ids <= ({"alice", "bob"} if sup is sup_a else {"alice", B_AGENT}), ids
    # A's alice and B's alice are two agents: B's is still idle
    b_view = call(server, "GET", "/api/v1/agents/alice", token("service", "crm", center=B)).json()
    a_view = call(server, "GET", "/api/v1/agents/alice", token("service", "crm")).json()
    assert b_view["queues"] == ["support"] and a_view["queues"] == ["support", "billing"]


# -- the command line ---------------------------------------------------------------------------


def _presence(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": server.redis_url,
        "PRESENCE_SECRET": SECRET,
        "PRESENCE_CONFIG": str(server.config),
    }
    return subprocess.run(
        [sys.executable, "-m", "presence", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_center_apply_and_tokens_from_the_command_line(server: ServerProcess, tmp_path: Path) -> None:
    cid = "kyoto"
    try:
        path = tmp_path / "kyoto.toml"
        path.write_text(
            '[center]\nid = "ignored-by-flag"\nname = "京都"\n\n[[queues]]\nname = "front"\n\n'
            '[[agents]]\nid = "kenji"\nqueues = ["front"]\n',
            "utf-8",
        )
        out = _presence(server, "center", "apply", str(path), "--center", cid)
        assert out.returncode == 0, out
        assert f"center {cid} created (revision 1)" in out.stdout
        again = _presence(server, "center", "apply", str(path), "--center", cid)
        assert again.returncode == 0 and "updated (revision 2)" in again.stdout, again
        tok = _presence(server, "token", "--center", cid, "--role", "agent", "--sub", "kenji")
        assert tok.returncode == 0, tok
        kenji = await WsClient.connect(server, "/ws/agent", tok.stdout.strip())
        assert kenji.snapshot["agent"]["agent_id"] == "kenji"
        # a kenji of the default center does not exist: its token is refused
        plain = _presence(server, "token", "--role", "agent", "--sub", "kenji")
        other = await WsClient.connect(server, "/ws/agent", plain.stdout.strip(), expect_snapshot=False)
        await asyncio.wait_for(other.conn.wait_closed(), 5)
        assert other.conn.close_code == 4404
        # bad input: a name that is not a center id, a file that does not validate
        bad = _presence(server, "token", "--center", "Bad{1}", "--role", "agent", "--sub", "x")
        assert bad.returncode == 2 and "center" in bad.stderr
        path.write_text('[[queues]]\nname = "q"\nstrategy = "random"\n', "utf-8")
        invalid = _presence(server, "center", "apply", str(path), "--center", cid)
        assert invalid.returncode == 2 and "queues[0].strategy" in invalid.stderr, invalid
        plat = _presence(server, "token", "--role", "platform", "--sub", "ops")
        listed = call(server, "GET", "/api/v1/centers", plat.stdout.strip()).json()["centers"]
        assert {"id": cid, "name": "京都", "revision": 2, "default": False} in listed
    finally:
        _forget(server.redis_url, cid)


# -- background work shared out ---------------------------------------------------------------


async def test_two_processes_share_a_center_and_a_quiet_centers_timers_still_run(
    server_factory: ServerFactory, redis_server: str, tmp_path: Path
) -> None:
    """Two servers on one Redis: each center's timers run in one of them (its
    owner), wherever its sockets are; a center quiet for a moment has its
    timers swept with the other quiet centers', and still on time."""
    quick = {"PRESENCE_QUIET_AFTER": "0.3", "PRESENCE_IDLE_INTERVAL": "0.2"}
    one = server_factory(env=quick)
    config = tmp_path / "center-0.toml"
    two = server_factory(config=config, env=quick)
    cid = "nara"
    doc = {
        "queues": [{"name": "fast", "push_timeout": 1}],
        "agents": [{"id": "ann", "queues": ["fast"]}, {"id": "bo", "queues": ["fast"]}],
    }
    try:
        assert put_center(one, cid, doc).status_code == 201
        ann = await agent(two, "ann", center=cid)
        await available(ann)
        await asyncio.sleep(1.0)  # the center goes quiet
        wid = post_work(one, queue="fast", center=cid).json()["id"]
        offer = await ann.expect("offer", timeout=5)
        assert offer["work_id"] == wid
        # nobody accepts: the offer times out after 1 s, whichever process owns
        # the center and however quiet it was meanwhile
        rescinded = await ann.expect("offer.rescinded", timeout=4)
        assert rescinded["work_id"] == wid and rescinded["reason"] == "timeout"
        client = redis.Redis.from_url(redis_server)
        try:
            procs = client.hgetall("presence:{centers}:procs")
        finally:
            client.close()
        assert len(procs) == 2, procs
        # the only agent gets it back, from the other process's router
        again = await ann.expect("offer", timeout=4)
        assert again["work_id"] == wid
        assert (await ann.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
        assert (await ann.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"
        assert not check_center(redis_server, cid)
    finally:
        _forget(redis_server, cid)


# -- per center: pages, metrics, reports ----------------------------------------------------------


async def test_snapshots_metrics_and_reports_are_per_center(two: tuple[ServerProcess, str]) -> None:
    server, a = two
    carol = await agent(server, B_AGENT, center=B)
    assert carol.snapshot["center"] == {"id": B, "name": "大阪センター"}
    sup = await supervisor(server, "sue", center=B)
    assert sup.snapshot["center"] == {"id": B, "name": "大阪センター"}
    own = await supervisor(server, "sue")
    assert own.snapshot["center"]["id"] == a
    await available(carol)
    wid = post_work(server, queue=B_QUEUE, center=B).json()["id"]
    await carol.expect("offer")
    assert (await carol.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    text = call(server, "GET", "/metrics", "none").text
    created = [line for line in text.splitlines() if line.startswith("presence_work_created_total{")]
    assert any(f'center="{B}"' in line and f'queue="{B_QUEUE}"' in line for line in created), created
    assert not any(f'center="{a}"' in line and f'queue="{B_QUEUE}"' in line for line in created), created
    # each process reports its sockets once a second
    want = f'presence_websocket_connections{{center="{B}",role="agent"}} 1.0'
    for _ in range(30):
        conns = [line for line in text.splitlines() if line.startswith("presence_websocket_connections{")]
        if want in conns:
            break
        await asyncio.sleep(0.1)
        text = call(server, "GET", "/metrics", "none").text
    assert want in conns, conns
    # reports: B's events for B's token, none of them for A's
    since = "?from=" + time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
    in_b = call(
        server, "GET", f"/api/v1/reports/events{since}&format=csv", token("supervisor", "sue", center=B)
    )
    in_a = call(server, "GET", f"/api/v1/reports/events{since}&format=csv", token("supervisor", "sue"))
    assert in_b.status_code == 200 and wid in in_b.text, in_b.text[:500]
    assert in_a.status_code == 200 and wid not in in_a.text
    assert (await carol.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"


# -- the customers' links: each center's own ---------------------------------------------------


async def test_a_customer_of_b_gets_b_s_status_page_and_survey_and_the_answer_lands_in_b(
    two: tuple[ServerProcess, str],
) -> None:
    server, a = two
    port = free_port()
    rec = Receiver(port)
    try:
        hook = {"name": "gateway", "url": f"http://127.0.0.1:{port}/out", "secret": HOOK_SECRET}
        doc = {
            **B_DOC,
            "queues": [{"name": "support", "wrapup_seconds": 0}, *B_DOC["queues"][1:]],
            "cases": {"survey_days": 2},
            "webhooks": [{**hook, "events": ["work.completed", "csat"], "timeout": 1, "max_backoff": 0.4}],
        }
        assert put_center(server, B, doc).status_code == 200
        svc_b = _auth(token("service", "gw", center=B))
        carol = await agent(server, B_AGENT, center=B)
        await available(carol)
        r = channels_http.post(
            f"{server.http}/api/v1/channels/chat/messages",
            json={"conversation_id": "osaka-1", "from": "u1", "text": "kettle broken"},
            headers=svc_b,
        )
        assert r.status_code == 201, r.text
        wid, status_url = r.json()["id"], r.json()["status_url"]
        # the link names its center; staff see the same one
        assert status_url.startswith(f"{server.http}/status/{B}.{wid}.0."), status_url
        staff = channels_http.get(f"{server.http}/api/v1/work/{wid}", headers=svc_b).json()
        assert server.http + staff["status_path"] == status_url
        await carol.expect(lambda m: m["type"] == "offer" and m["work_id"] == wid)
        assert (await carol.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"

        # B's status page, B's case; a message from it reaches B's agent
        view = channels_http.get(status_url, headers={"Accept": "application/json"})
        assert view.status_code == 200, view.text
        assert view.json()["work_id"] == wid and [m["text"] for m in view.json()["messages"]] == [
            "kettle broken"
        ]
        page = channels_http.get(status_url)
        assert page.status_code == 200 and "大阪センター" in page.text, page.text
        r = channels_http.post(f"{status_url}/messages", json={"text": "and the lid"})
        assert r.status_code == 201 and r.json() == {"id": wid, "outcome": "joined"}, r.text
        got = await carol.expect("work.message")
        assert got["work_id"] == wid and got["message"]["text"] == "and the lid"

        # completed: B's survey link, on the page and in B's webhook
        assert (await carol.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"
        survey = channels_http.get(status_url, headers={"Accept": "application/json"}).json()["survey_path"]
        assert survey.startswith(f"/survey/{B}.{wid}."), survey
        done = [e["data"] for e in await rec.wait_for(1) if e["type"] == "work.completed"]
        assert [(d["survey_path"], server.http + d["status_path"]) for d in done] == [(survey, status_url)]
        form = channels_http.get(server.http + survey)
        assert form.status_code == 200 and 'name="score"' in form.text and "大阪センター" in form.text

        # the answer lands in B: its case, its csat webhook, its reports; none in A
        r = channels_http.post(f"{server.http}{survey}/answer", json={"score": 4, "comment": "okini"})
        assert r.status_code == 201, r.text
        case = channels_http.get(f"{server.http}/api/v1/work/{wid}", headers=svc_b).json()["case"]
        assert case["csat"] == 4 and case["csat_comment"] == "okini"
        csat = [e["data"] for e in await rec.wait_for(2) if e["type"] == "csat"]
        assert [(c["work_id"], c["score"], c["agent_id"]) for c in csat] == [(wid, 4, B_AGENT)]
        kpis = "/api/v1/reports/kpis?group_by=agent"
        rows_b = call(server, "GET", kpis, token("supervisor", "sue", center=B)).json()["rows"]
        assert next(r for r in rows_b if r["agent"] == B_AGENT)["csat_count"] == 1
        rows_a = call(server, "GET", kpis, token("supervisor", "sue")).json()["rows"]
        assert not any(r.get("csat_count") for r in rows_a), rows_a
        assert call(server, "GET", f"/api/v1/work/{wid}", token("service", "gw")).status_code == 404

        # moved to another center, or with the center cut off: no link of this server
        token_part = status_url.rsplit("/", 1)[1]
        bare = token_part.split(".", 1)[1]
        for bad in (bare, f"{a}.{bare}", f"nowhere.{bare}"):
            r = channels_http.get(f"{server.http}/status/{bad}", headers={"Accept": "application/json"})
            assert r.status_code == 404 and "no such status link" in r.text, (bad, r.text)
        # the default center's links are as they were (no center in them)
        r = channels_http.post(
            f"{server.http}/api/v1/channels/chat/messages",
            json={"conversation_id": "tokyo-1", "from": "u1", "text": "hello"},
            headers=_auth(token("service", "gw")),
        )
        assert r.status_code == 201, r.text
        mine = r.json()
        assert mine["status_url"].startswith(f"{server.http}/status/{mine['id']}.0."), mine
        view = channels_http.get(mine["status_url"], headers={"Accept": "application/json"})
        assert view.status_code == 200 and view.json()["work_id"] == mine["id"]
        # a center given no name shows none (its id means nothing to a customer)
        page_a = channels_http.get(mine["status_url"]).text
        assert "大阪センター" not in page_a and 'id="center"' not in page_a and "<h1>" in page_a
        svc_a = token("service", "gw")
        cancel = call(server, "POST", f"/api/v1/work/{mine['id']}/cancel", svc_a, {"reason": "t"})
        assert cancel.status_code == 200, cancel.text
    finally:
        rec.stop()


def test_a_center_s_web_form_opens_its_case_in_that_center(two: tuple[ServerProcess, str]) -> None:
    server, _ = two
    form = {"name": "山田 花子", "email": "hanako@example.jp", "message": "蓋が割れました"}
    json_only = {"Accept": "application/json"}
    r = channels_http.post(f"{server.http}/forms/{B}/case", data=form, headers=json_only)
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    assert r.json()["queue"] == "support", r.text
    assert r.json()["status_url"].startswith(f"{server.http}/status/{B}.{wid}."), r.text
    case = call(server, "GET", f"/api/v1/work/{wid}", token("service", "gw", center=B))
    assert case.status_code == 200 and case.json()["case"]["source"] == "form", case.text
    assert call(server, "GET", f"/api/v1/work/{wid}", token("service", "gw")).status_code == 404
    # the thank-you page, and a center that is not there
    page = channels_http.post(f"{server.http}/forms/{B}/case", data=form)
    assert page.status_code == 201 and "Thank you" in page.text and wid not in page.text, page.text
    r = channels_http.post(f"{server.http}/forms/nowhere/case", data=form, headers=json_only)
    assert r.status_code == 404 and r.json()["field"] == "center", r.text
    r = channels_http.post(f"{server.http}/forms/{B[:1]}%20x/case", data=form, headers=json_only)
    assert r.status_code == 422 and r.json()["field"] == "center", r.text


async def test_a_document_read_back_and_applied_again_keeps_its_webhook_secrets(
    two: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    server, _ = two
    port = free_port()
    rec = Receiver(port)
    try:
        hook = {"name": "crm", "url": f"http://127.0.0.1:{port}/hooks", "events": ["case.created"]}
        assert (
            put_center(server, B, {**B_DOC, "webhooks": [{**hook, "secret": HOOK_SECRET}]}).status_code == 200
        )
        shown = call(server, "GET", f"/api/v1/centers/{B}", PLATFORM).json()
        assert shown["webhooks"][0]["secret"] == "*" * 16
        # what GET showed, applied again as it is: the stored secret is kept
        again = put_center(server, B, shown)
        assert again.status_code == 200, again.text
        with redis.Redis.from_url(server.redis_url) as r:
            stored = orjson.loads(r.hget(CENTER_DOCS, B))
        assert stored["webhooks"][0]["secret"] == HOOK_SECRET
        r = channels_http.post(
            f"{server.http}/api/v1/channels/chat/messages",
            json={"conversation_id": "osaka-hook", "from": "u1", "text": "hello"},
            headers=_auth(token("service", "gw", center=B)),
        )
        assert r.status_code == 201, r.text
        await rec.wait_for(1)
        headers, body = rec.got[0]
        assert orjson.loads(body)["type"] == "case.created"
        want = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-presence-signature"] == want

        # a hidden secret with nothing stored to keep (a new webhook): refused, nothing changed
        rev = again.json()["revision"]
        new = {**hook, "name": "erp", "secret": "*" * 16}
        r = put_center(server, B, {**shown, "webhooks": [*shown["webhooks"], new]})
        assert r.status_code == 422 and r.json()["field"] == "webhooks[1].secret", r.text
        assert "give the secret" in r.json()["detail"]
        listed = call(server, "GET", "/api/v1/centers", PLATFORM).json()["centers"]
        assert next(c for c in listed if c["id"] == B)["revision"] == rev

        # the same from the command line, a file written from what GET showed
        path = tmp_path / "osaka.toml"
        lines = ['[[queues]]\nname = "support"\n', f'[[webhooks]]\nname = "crm"\nurl = "{hook["url"]}"']
        path.write_text("\n".join([*lines, f'secret = "{"*" * 16}"\n']), "utf-8")
        out = _presence(server, "center", "apply", str(path), "--center", B)
        assert out.returncode == 0 and "updated" in out.stdout, out
        with redis.Redis.from_url(server.redis_url) as r:
            assert orjson.loads(r.hget(CENTER_DOCS, B))["webhooks"][0]["secret"] == HOOK_SECRET
        path.write_text(path.read_text("utf-8").replace('name = "crm"', 'name = "erp"'), "utf-8")
        out = _presence(server, "center", "apply", str(path), "--center", B)
        assert out.returncode == 2 and "webhooks[0].secret" in out.stderr, out
    finally:
        rec.stop()
