"""Outbound webhooks against a real HTTP receiver on 127.0.0.1: every event
type is delivered, signed with HMAC-SHA256 of the body; a receiver that is
down (or failing) at first gets every event once it comes back, in order."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import msgpack
import orjson
import pytest

from presence.store.keys import Keys
from tests.harness import ServerProcess, agent, available, token
from tests.helpers import REDIS_MODES, free_port, http, redis_of, redis_sync
from tests.integration import channels_http
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.in_process


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


SECRET = "whsec-0123456789abcdef"
SVC = {"Authorization": f"Bearer {token('service', 'pbx')}"}


class Receiver:
    """A real HTTP server in a thread that records what it is sent."""

    def __init__(self, port: int, fail_first: int = 0) -> None:
        self.port = port
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self.fail_first = fail_first
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if rec.refused < rec.fail_first:
                    rec.refused += 1
                    self.send_response(503)
                else:
                    rec.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(b) for _, b in self.got]

    def _wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    async def wait_for(self, n: int, timeout: float = 8.0) -> list[dict[str, Any]]:
        await asyncio.to_thread(self._wait, n, timeout)
        assert len(self.got) >= n, f"got {len(self.got)} of {n}: {self.events()}"
        return self.events()


def center(port: int) -> str:
    return f"""
[[queues]]
name = "support"
wrapup_seconds = 0

[[agents]]
id = "alice"
queues = ["support"]
extension = "sip:1001@pbx.local"

[[webhooks]]
name = "crm"
url = "http://127.0.0.1:{port}/hooks"
secret = "{SECRET}"
events = ["*"]
timeout = 1
max_backoff = 0.4
"""


def post(server: ServerProcess, path: str, body: Any) -> httpx.Response:
    r = http().post(f"{server.http}{path}", json=body, headers=SVC, timeout=10)
    assert r.status_code < 300, r.text
    return r


async def test_events_are_signed_and_complete(server_factory: ServerFactory) -> None:
    port = free_port()
    rec = Receiver(port)
    try:
        server = server_factory(center(port))
        alice = await agent(server, "alice")
        await available(alice)
        wid = post(server, "/api/v1/channels/voice/calls", {"call_id": "k1", "from": "+15550100"}).json()[
            "id"
        ]
        await alice.expect("offer")
        await alice.request({"type": "offer.accept", "work_id": wid})
        r = await alice.request({"type": "call.control", "work_id": wid, "action": "hold"})
        assert r == {**r, "type": "ok", "state": "held"}
        assert await alice.expect("call.state") == {"type": "call.state", "work_id": wid, "state": "held"}
        await alice.request({"type": "work.note", "work_id": wid, "text": "on hold for billing"})
        post(server, f"/api/v1/work/{wid}/status", {"status": "Waiting close"})
        await alice.request({"type": "work.complete", "work_id": wid})
        gone = post(server, "/api/v1/channels/voice/calls", {"call_id": "k2", "from": "+15550101"}).json()[
            "id"
        ]
        await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == gone)
        post(server, "/api/v1/channels/voice/calls/k2/hangup", {})
        events = await rec.wait_for(9)
        kinds = [e["type"] for e in events]
        for k in (
            "case.created",
            "work.assigned",
            "case.status",
            "call.control",
            "case.comment",
            "work.completed",
            "work.abandoned",
        ):
            assert k in kinds, (k, kinds)
        for headers, body in rec.got:
            want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-presence-signature"] == want
            assert headers["x-presence-event"] == orjson.loads(body)["type"]
            assert headers["x-presence-delivery"] == orjson.loads(body)["id"]
        by = {e["type"]: e for e in events if e["data"].get("work_id") == wid}
        assigned = by["work.assigned"]
        assert (
            assigned["data"]["agent_id"] == "alice" and assigned["data"]["extension"] == "sip:1001@pbx.local"
        )
        assert assigned["item"]["payload"]["call_id"] == "k1" and assigned["center"] == server.center_id
        ctl = by["call.control"]["data"]
        assert ctl["action"] == "hold" and ctl["call_id"] == "k1" and ctl["extension"] == "sip:1001@pbx.local"
        assert by["case.comment"]["data"]["note"]["text"] == "on hold for billing"
        assert by["case.created"]["data"]["case"]["call_id"] == "k1"
        ab = next(e for e in events if e["type"] == "work.abandoned")
        assert ab["data"]["work_id"] == gone and ab["data"]["was"] == "offered"
        # everything acknowledged: nothing left pending (the receiver records an
        # event before it answers, and the server counts it delivered after)
        deadline = time.monotonic() + 5.0
        while True:
            r = channels_http.get(f"{server.http}/api/v1/webhooks", headers=SVC).json()
            if r["webhooks"][0]["pending"] == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert r["webhooks"][0]["pending"] == 0 and r["webhooks"][0]["delivered"] >= 9, r
    finally:
        rec.stop()


async def test_receiver_down_then_up_loses_nothing(server_factory: ServerFactory) -> None:
    port = free_port()
    server = server_factory(center(port))
    ids = [
        post(
            server, "/api/v1/channels/chat/messages", {"conversation_id": f"d{i}", "text": f"msg {i}"}
        ).json()["id"]
        for i in range(4)
    ]
    await asyncio.sleep(1.0)  # several failed attempts against a closed port
    r = channels_http.get(f"{server.http}/api/v1/webhooks", headers=SVC).json()["webhooks"][0]
    assert r["pending"] == 4 and r["failed"] >= 1 and r["last_error"], r
    rec = Receiver(port, fail_first=2)  # up, but refusing twice more
    try:
        events = await rec.wait_for(4)
        assert rec.refused == 2
        assert [e["data"]["work_id"] for e in events] == ids  # in order, none lost
        assert all(e["type"] == "case.created" for e in events)
        assert len({e["id"] for e in events}) == 4
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            hooks = channels_http.get(f"{server.http}/api/v1/webhooks", headers=SVC).json()["webhooks"]
            if hooks[0]["pending"] == 0:
                break
            await asyncio.sleep(0.05)
        assert hooks[0]["pending"] == 0
    finally:
        rec.stop()


async def test_two_processes_deliver_each_event_once(server_factory: ServerFactory) -> None:
    port = free_port()
    rec = Receiver(port)
    try:
        server = server_factory(center(port), workers=2)
        ids = [
            post(server, "/api/v1/channels/sms/messages", {"conversation_id": f"p{i}", "text": "x"}).json()[
                "id"
            ]
            for i in range(20)
        ]
        events = await rec.wait_for(20)
        await asyncio.sleep(0.5)  # room for a duplicate to show up
        deliveries = [e["id"] for e in rec.events()]
        assert len(deliveries) == len(set(deliveries)) == 20
        assert sorted(e["data"]["work_id"] for e in events) == sorted(ids)
    finally:
        rec.stop()


async def test_dead_process_deliveries_are_taken_over(
    server_factory: ServerFactory, redis_server: str
) -> None:
    port = free_port()
    rec = Receiver(port)
    try:
        server = server_factory(
            center(port).replace("max_backoff = 0.4", "max_backoff = 0.4\nclaim_after = 1")
        )
        stream = Keys(server.center_id).webhook_stream("crm")
        r = redis_sync(redis_server)
        try:
            # a process that claimed an event and died before delivering it
            head = msgpack.packb({"type": "case.comment", "ts": 1, "work_id": "w-ghost", "author": "x"})
            pipe = r.pipeline(transaction=True)
            pipe.xadd(stream, {"h": head})
            pipe.xreadgroup("delivery", "ghost-1", {stream: ">"}, count=10)
            _, claimed = pipe.execute()
            assert claimed, "the server's deliverer took it first"
        finally:
            r.close()
        t0 = time.monotonic()
        events = await rec.wait_for(1, timeout=6)
        assert events[0]["data"]["work_id"] == "w-ghost"
        assert time.monotonic() - t0 >= 0.5  # only after claim_after
    finally:
        rec.stop()
