"""The agent and supervisor sockets of one server: snapshot, status, ping,
the ref/ok/error convention, bad input that leaves the socket open, the
presence rules (two tabs, grace period, reconnect) and supervisor deltas
with their coalescing under churn."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack
import pytest
import websockets

from presence.store.keys import Keys
from tests.harness import (
    DEFAULT_CENTER,
    JSON,
    MSGPACK,
    DrivenClock,
    ServerProcess,
    WsClient,
    agent,
    available,
    post_work,
    sockets_of,
    supervisor,
)
from tests.helpers import REDIS_MODES, redis_of, redis_sync
from tests.integration.conftest import ServerFactory

pytestmark = [pytest.mark.timeout(60), pytest.mark.in_process]


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """Every test here runs on a standalone Redis and on a cluster."""
    return redis_of(request, redis_server)


VIEW_FIELDS = {
    "agent_id",
    "name",
    "status",
    "reason",
    "since",
    "capacity",
    "load",
    "by_channel",
    "items",
    "connected",
    "ver",
    "idle_since",
}


def keys_of(server: ServerProcess) -> Keys:
    return Keys(server.center_id)


def status_log(redis_url: str, server: ServerProcess) -> list[dict[str, str]]:
    with redis_sync(redis_url, decode_responses=True) as r:
        return [fields for _, fields in r.xrange(keys_of(server).status_stream)]


def agent_hash(redis_url: str, server: ServerProcess, agent_id: str) -> dict[str, str]:
    with redis_sync(redis_url) as r:
        h = r.hgetall(keys_of(server).agent(agent_id))
    # profile fields (queues, skills) and the work in hand (w) are msgpack blobs: keep only the text ones
    return {k.decode(): v.decode() for k, v in h.items() if k not in (b"queues", b"skills", b"w")}


def ready_in(redis_url: str, server: ServerProcess, queue: str) -> set[str]:
    with redis_sync(redis_url, decode_responses=True) as r:
        return set(r.zrange(keys_of(server).queue_ready(queue), 0, -1))


async def still_open(client: WsClient) -> None:
    reply = await client.request({"type": "ping"})
    assert reply["type"] == "pong", reply


def views_of(msg: dict[str, Any], agent_id: str) -> list[dict[str, Any]]:
    return [a for a in msg.get("agents", []) if a["agent_id"] == agent_id]


# -- agent socket ----------------------------------------------------------------


async def test_snapshot_carries_status_capacity_load_offers_and_work(server: ServerProcess) -> None:
    before = int(time.time() * 1000)
    alice = await agent(server, "alice")
    snap = alice.snapshot
    assert snap["version"] == 1
    view = snap["agent"]
    assert set(view) >= VIEW_FIELDS, view
    assert view["agent_id"] == "alice"
    assert view["status"] == "Away"  # the login status of an Offline agent
    assert view["reason"] == ""
    assert view["since"] >= before - 1000
    assert view["capacity"] == 100
    assert view["load"] == 0
    assert view["by_channel"] == {}
    assert view["connected"] is True
    assert snap["offers"] == [] and snap["work"] == []
    assert {s["name"] for s in snap["statuses"]} >= {"Available", "Away", "Break", "Lunch", "Offline"}
    assert {c["name"]: c["weight"] for c in snap["channels"]}["chat"] == 25
    assert abs(snap["server_time"] - time.time() * 1000) < 5000

    await available(alice)
    wid = post_work(server, channel="chat").json()["id"]
    offer = await alice.expect("offer")
    assert offer["work_id"] == wid

    tab2 = await agent(server, "alice", subprotocol=MSGPACK)
    s2 = tab2.snapshot
    assert s2["agent"]["status"] == "Available"
    assert s2["agent"]["load"] == 25
    assert s2["agent"]["by_channel"] == {"chat": 1}
    assert [o["work_id"] for o in s2["offers"]] == [wid]
    assert s2["offers"][0]["state"] == "offered" and s2["offers"][0]["channel"] == "chat"
    assert s2["work"] == []

    assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    await tab2.expect("work.assigned")
    tab3 = await agent(server, "alice")
    assert tab3.snapshot["offers"] == []
    assert [w["work_id"] for w in tab3.snapshot["work"]] == [wid]
    assert tab3.snapshot["work"][0]["state"] == "assigned"
    # snapshot.get answers with a fresh snapshot echoing the ref
    again = await tab3.request({"type": "snapshot.get"})
    assert again["type"] == "snapshot" and again["agent"]["load"] == 25


async def test_status_reaches_every_tab_in_both_encodings(redis_server: str, server: ServerProcess) -> None:
    json_tab = await agent(server, "alice", subprotocol=JSON)
    mp_tab = await agent(server, "alice", subprotocol=MSGPACK, via_header=True)
    assert mp_tab.conn.subprotocol == MSGPACK and json_tab.conn.subprotocol == JSON
    reply = await mp_tab.request({"type": "status.set", "status": "Break", "reason": "Coffee"})
    assert reply["type"] == "ok"
    for tab in (json_tab, mp_tab):
        st = await tab.expect(lambda m: m["type"] == "status" and m["status"] == "Break")
        assert st["reason"] == "Coffee" and st["agent_id"] == "alice"
        assert set(st) >= VIEW_FIELDS
    # the frame types match the subprotocol (the harness decoder asserts it too)
    await json_tab.send({"type": "ping", "ref": "j"})
    assert isinstance(await json_tab.conn.recv(), str)
    await mp_tab.send({"type": "ping", "ref": "m"})
    assert isinstance(await mp_tab.conn.recv(), bytes)
    # bob's socket hears nothing of alice
    bob = await agent(server, "bob")
    await json_tab.request({"type": "status.set", "status": "Lunch"})
    assert not [m for m in await bob.quiet(0.3) if m.get("agent_id") == "alice"]
    last = status_log(redis_server, server)[-1]
    assert (last["agent"], last["status"], last["by"]) == ("alice", "Lunch", "alice")


async def test_ping_pong_and_ref_echo(server: ServerProcess) -> None:
    alice = await agent(server, "alice", subprotocol=MSGPACK)
    await alice.send({"type": "ping", "ref": 7, "ts": 123.5})
    pong = await alice.expect("pong")
    assert pong["ref"] == 7 and pong["ts"] == 123.5 and isinstance(pong["server_time"], int)
    await alice.send({"type": "ping"})
    assert "ref" not in await alice.expect("pong")
    ok = await alice.request({"type": "status.set", "status": "Available"})
    assert ok["type"] == "ok" and isinstance(ok["ref"], int)
    await alice.send({"type": "status.set", "status": "Nope", "ref": "abc"})
    err = await alice.expect("error")
    assert err["ref"] == "abc" and err["field"] == "status" and err["code"] == "invalid"
    assert "Available" in err["message"]  # lists what is allowed
    await alice.send({"type": "status.set", "status": "Break", "reason": "Nap", "ref": "r2"})
    err = await alice.expect("error")
    assert (err["ref"], err["field"]) == ("r2", "reason") and "Coffee" in err["message"]
    await alice.send({"type": "status.set", "status": "Lunch", "reason": "Coffee", "ref": "r3"})
    err = await alice.expect("error")
    assert (err["ref"], err["field"]) == ("r3", "reason")
    # refused changes change nothing
    snap = await alice.request({"type": "snapshot.get"})
    assert snap["agent"]["status"] == "Available"


BAD_JSON_FRAMES: list[tuple[str | bytes, str | None, str | None]] = [
    ("{not json", "bad_frame", None),
    (b'{"type":"ping"}', "bad_frame", None),  # binary frame on a JSON socket
    ("[1, 2]", "bad_message", None),
    ('"ping"', "bad_message", None),
    ('{"ref": 1}', "invalid", "type"),
    ('{"type": 5}', "invalid", "type"),
    ('{"type": "nope", "ref": "x"}', "unknown_type", "type"),
    ('{"type": "status.set", "status": 5}', "invalid", "status"),
    ('{"type": "status.set", "status": true}', "invalid", "status"),
    ('{"type": "status.set"}', "invalid", "status"),
    ('{"type": "status.set", "status": "Break", "reason": ["Coffee"]}', "invalid", "reason"),
    ('{"type": "status.set", "status": "' + "x" * 65 + '"}', "invalid", "status"),
    ('{"type": "offer.accept", "work_id": [1]}', "invalid", "work_id"),
    ('{"type": "offer.accept", "work_id": "nope"}', "not_found", "work_id"),
    ('{"type": "ping", "ts": "soon"}', "invalid", "ts"),
    ('{"type": "ping", "ref": [1]}', "invalid", "ref"),
    ('{"type": "ping", "ref": {"a": 1}}', "invalid", "ref"),
    ('{"type": "ping", "ref": true}', "invalid", "ref"),
    ('{"type": "ping", "ref": 1.5}', "invalid", "ref"),
    ('{"type": "ping", "ref": "' + "r" * 65 + '"}', "invalid", "ref"),
    ('{"type": "ping", "ref": 1' + "0" * 70 + "}", None, None),  # a huge number: bad_frame or invalid
    ("[" * 5000 + "]" * 5000, "bad_frame", None),  # deeper than any decoder allows
    ('{"type": "ping", "ts": NaN}', "bad_frame", None),
    ('{"type": "ping"}{"type": "ping"}', "bad_frame", None),
]


async def test_bad_json_input_gets_errors_and_socket_stays_open(
    redis_server: str, server: ServerProcess
) -> None:
    alice = await agent(server, "alice")
    for frame, code, field in BAD_JSON_FRAMES:
        await alice.send_raw(frame)
        err = await alice.expect("error")
        if code is None:
            assert err["code"] in ("bad_frame", "invalid"), (frame, err)
        else:
            assert err["code"] == code, (frame, err)
            assert err.get("field") == field, (frame, err)
        assert isinstance(err["message"], str) and err["message"]
        if '"ref": "x"' in str(frame):
            assert err["ref"] == "x"
        if field == "ref":
            assert "ref" not in err  # a bad ref is not echoed
        await still_open(alice)
    # nothing half-made: the agent is still as it was
    assert agent_hash(redis_server, server, "alice")["status"] == "Away"


async def test_bad_msgpack_input_gets_errors_and_socket_stays_open(server: ServerProcess) -> None:
    alice = await agent(server, "alice", subprotocol=MSGPACK)
    frames: list[tuple[str | bytes, str, str | None]] = [
        (b"\xc1", "bad_frame", None),  # a byte msgpack never uses
        (b"\x82\xa4type", "bad_frame", None),  # truncated map
        ("hello", "bad_frame", None),  # text frame on a msgpack socket
        (msgpack.packb([1, 2]), "bad_message", None),
        (msgpack.packb({1: "ping"}), "bad_frame", None),  # non-string keys
        (msgpack.packb({"ref": 3}), "invalid", "type"),
        (msgpack.packb({"type": "nope"}), "unknown_type", "type"),
        (msgpack.packb({"type": "status.set", "status": 5}), "invalid", "status"),
        (msgpack.packb({"type": "status.set", "status": b"Break"}), "invalid", "status"),
        (msgpack.packb({"type": "work.complete", "work_id": [1]}), "invalid", "work_id"),
        (msgpack.packb({"type": "ping", "ref": [1]}), "invalid", "ref"),
        (b"\x91" * 5000 + b"\xc0", "bad_frame", None),  # nested deeper than allowed
        (msgpack.packb({"type": "ping"}) + b"\x01", "bad_frame", None),  # trailing bytes
        (msgpack.packb({b"type": "ping"}), "invalid", "type"),  # a binary key is not the field
        (msgpack.packb({"type": "status.set", "status": msgpack.ExtType(1, b"x")}), "invalid", "status"),
    ]
    for frame, code, field in frames:
        await alice.send_raw(frame)
        err = await alice.expect("error")
        assert (err["code"], err.get("field")) == (code, field), (frame, err)
        await still_open(alice)


async def test_oversized_frame_closes_1009(server: ServerProcess) -> None:
    alice = await agent(server, "alice")
    # just under the limit is served (an error for the unknown type, but served)
    await alice.send_raw('{"type":"x","pad":"' + "a" * (60 * 1024) + '"}')
    assert (await alice.expect("error"))["code"] == "unknown_type"
    await alice.send_raw('{"type":"ping","pad":"' + "a" * (64 * 1024) + '"}')
    await asyncio.wait_for(alice.conn.wait_closed(), 5)
    assert alice.conn.close_code == 1009
    mp = await agent(server, "alice", subprotocol=MSGPACK)
    await mp.send_raw(msgpack.packb({"type": "ping", "pad": b"\0" * (65 * 1024)}))
    await asyncio.wait_for(mp.conn.wait_closed(), 5)
    assert mp.conn.close_code == 1009


async def test_flooding_socket_is_closed_1008(server_factory: ServerFactory) -> None:
    server = server_factory(env={"PRESENCE_RATE_PER_SECOND": "5", "PRESENCE_RATE_BURST": "10"})
    alice = await agent(server, "alice")
    for i in range(40):  # far over 5 a second after a burst of 10
        if alice.conn.close_code is not None:
            break
        try:
            await alice.send({"type": "ping", "ref": f"f{i}"})
        except websockets.ConnectionClosed:
            break
    await asyncio.wait_for(alice.conn.wait_closed(), 5)
    assert alice.conn.close_code == 1008


# -- presence rules ---------------------------------------------------------------


@pytest.fixture
def clock() -> DrivenClock:
    return DrivenClock()


@pytest.fixture
def graceful(server_factory: ServerFactory, clock: DrivenClock) -> ServerProcess:
    """A server on a driven clock, with the default grace period (30 s).

    Real time flows on top of the driven jumps (a second or more between
    two steps on a loaded machine): the steps keep 5 s from the grace
    period's end, and offers wait long enough (120 s) never to time out in
    a test, which would move the agent to Away."""
    return server_factory(DEFAULT_CENTER.replace("push_timeout = 30", "push_timeout = 120"), clock=clock)


def offline_views(sup: WsClient) -> list[dict[str, Any]]:
    views = [v for m in sup.inbox if m["type"] == "agents" for v in views_of(m, "alice")]
    return [v for v in views if v["status"] == "Offline"]


async def test_reconnect_within_grace_finds_everything(
    redis_server: str, graceful: ServerProcess, clock: DrivenClock
) -> None:
    server = graceful
    alice = await agent(server, "alice")
    await available(alice)
    w1 = post_work(server, channel="chat").json()["id"]
    await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == w1)
    assert (await alice.request({"type": "offer.accept", "work_id": w1}))["type"] == "ok"
    w2 = post_work(server, channel="email").json()["id"]
    await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == w2)
    since = (await alice.request({"type": "snapshot.get"}))["agent"]["since"]
    await alice.close()
    await sockets_of(server, "alice", 0)
    clock.advance(25)
    h = agent_hash(redis_server, server, "alice")
    assert h["conns"] == "0" and h["status"] == "Available"
    assert "alice" not in ready_in(redis_server, server, "support")  # no socket: no new work
    back = await agent(server, "alice", subprotocol=MSGPACK)
    view = back.snapshot["agent"]
    assert (view["status"], view["since"], view["load"]) == ("Available", since, 35)
    assert [o["work_id"] for o in back.snapshot["offers"]] == [w2]
    assert [w["work_id"] for w in back.snapshot["work"]] == [w1]
    clock.advance(6)  # past the grace period: nothing happens, a socket is back
    await back.quiet(0.3)  # sweeps run every 0.05 s
    assert (await back.request({"type": "snapshot.get"}))["agent"]["status"] == "Available"
    assert "alice" in ready_in(redis_server, server, "support")


async def test_last_tab_gone_past_grace_goes_offline(
    redis_server: str, graceful: ServerProcess, clock: DrivenClock
) -> None:
    server = graceful
    sup = await supervisor(server)
    tab1 = await agent(server, "alice")
    tab2 = await agent(server, "alice", subprotocol=MSGPACK)
    await available(tab1)
    await tab2.expect(lambda m: m["type"] == "status" and m["status"] == "Available")
    assert "alice" in ready_in(redis_server, server, "support")
    await tab1.close()
    await sockets_of(server, "alice", 1)
    clock.advance(31)  # one tab left: the agent stays as it was
    await tab2.quiet(0.3)
    assert (await tab2.request({"type": "snapshot.get"}))["agent"]["status"] == "Available"
    await tab2.close()
    await sockets_of(server, "alice", 0)
    sup.inbox.clear()
    clock.advance(25)  # within grace: still as it was
    await sup.quiet(0.3)
    assert not offline_views(sup), sup.inbox[-3:]
    assert agent_hash(redis_server, server, "alice")["status"] == "Available"
    clock.advance(6)  # past it: Offline at the next sweep
    off = await sup.expect(
        lambda m: m["type"] == "agents" and any(a["status"] == "Offline" for a in views_of(m, "alice")),
        timeout=5,
    )
    view = views_of(off, "alice")[-1]
    assert view["reason"] == "disconnected" and view["connected"] is False
    h = agent_hash(redis_server, server, "alice")
    assert (h["status"], h["routable"]) == ("Offline", "0")
    assert "alice" not in ready_in(redis_server, server, "support")
    last = status_log(redis_server, server)[-1]
    assert (last["agent"], last["status"], last["reason"], last["by"], last["prev"]) == (
        "alice",
        "Offline",
        "disconnected",
        "system",
        "Available",
    )
    # signing in again starts from the login status
    again = await agent(server, "alice")
    assert again.snapshot["agent"]["status"] == "Away"


async def test_every_status_change_is_in_the_stream(redis_server: str, server: ServerProcess) -> None:
    sup = await supervisor(server)
    alice = await agent(server, "alice")
    await available(alice)
    await available(alice, "Break", "Meeting")
    ok = await sup.request({"type": "agent.status.set", "agent_id": "alice", "status": "Lunch"})
    assert ok["type"] == "ok"
    entries = [e for e in status_log(redis_server, server) if e["agent"] == "alice"]
    got = [(e["status"], e["reason"], e["by"], e["prev"]) for e in entries]
    assert got == [
        ("Away", "", "login", "Offline"),
        ("Available", "", "alice", "Away"),
        ("Break", "Meeting", "alice", "Available"),
        ("Lunch", "", "supervisor:sue", "Break"),
    ]
    stamps = [int(e["ts"]) for e in entries]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time() * 1000) < 5000
    assert int(entries[-1]["prev_since"]) == stamps[-2]


# -- supervisor socket --------------------------------------------------------------


async def test_supervisor_snapshot_then_deltas_and_queues(server: ServerProcess) -> None:
    sup = await supervisor(server, subprotocol=MSGPACK)
    snap = sup.snapshot
    assert snap["version"] == 1
    assert {a["agent_id"] for a in snap["agents"]} == {"alice", "bob"}
    for a in snap["agents"]:
        assert set(a) >= VIEW_FIELDS
        assert a["status"] == "Offline" and a["connected"] is False
    assert {q["name"] for q in snap["queues"]} == {"support", "billing"}
    assert {"waiting", "ready", "members", "logged_in"} <= set(snap["queues"][0])
    queues = await sup.expect("queues", timeout=3)
    assert {q["name"] for q in queues["queues"]} == {"support", "billing"}

    ver0 = next(a["ver"] for a in snap["agents"] if a["agent_id"] == "alice")
    alice = await agent(server, "alice")
    await available(alice)
    delta = await sup.expect(
        lambda m: m["type"] == "agents" and any(a["status"] == "Available" for a in views_of(m, "alice"))
    )
    view = views_of(delta, "alice")[0]
    assert set(view) >= VIEW_FIELDS and view["ver"] > ver0 and view["connected"] is True

    # work waiting shows in the next queues message
    post_work(server, queue="billing", channel="email", skills={"french": 5})
    waiting = await sup.expect(
        lambda m: (
            m["type"] == "queues" and any(q["name"] == "billing" and q["waiting"] == 1 for q in m["queues"])
        ),
        timeout=3,
    )
    assert waiting["server_time"] > 0
    again = await sup.request({"type": "snapshot.get"})
    assert again["type"] == "snapshot" and len(again["agents"]) == 2


async def test_item_events_carry_the_view_and_commands_without_ref_get_no_ok(server: ServerProcess) -> None:
    sup = await supervisor(server, subprotocol=MSGPACK)
    alice = await agent(server, "alice")
    await available(alice)
    await alice.quiet(0.3)
    alice.inbox.clear()
    wid = post_work(server, channel="chat").json()["id"]
    offer = await alice.expect("offer")
    assert offer["work_id"] == wid and offer["agent"]["agent_id"] == "alice"
    assert (offer["agent"]["load"], offer["agent"]["by_channel"]) == (25, {"chat": 1})
    delta = await sup.expect(
        lambda m: m["type"] == "agents" and any(a["load"] == 25 for a in views_of(m, "alice"))
    )
    view = views_of(delta, "alice")[0]
    assert set(view) >= VIEW_FIELDS and view["ver"] == offer["agent"]["ver"]
    await alice.send({"type": "offer.accept", "work_id": wid})
    assert "agent" not in await alice.expect("work.assigned")  # accepting changes no load
    await alice.send({"type": "work.complete", "work_id": wid})
    done = await alice.expect("work.updated")
    assert done["state"] == "completed" and done["agent"]["ver"] > offer["agent"]["ver"]
    assert (done["agent"]["load"], done["agent"]["by_channel"], done["agent"]["items"]) == (0, {}, 0)
    await sup.expect(lambda m: m["type"] == "agents" and any(a["load"] == 0 for a in views_of(m, "alice")))
    # errors are always sent, with or without a ref. Not within the first
    # complete's millisecond: a completion is told from redis-py's resend of
    # it by the item's end time (scripts.py ANSWERS_ITS_RETRY), so a second
    # one at that same instant is answered as the first's retry ("ok",
    # nothing applied twice), which this fast in-process client can reach.
    await asyncio.sleep(0.002)
    await alice.send({"type": "work.complete", "work_id": wid})
    err = await alice.expect("error")
    assert err["code"] == "conflict" and "ref" not in err
    await alice.quiet(0.3)
    assert not [m for m in alice.inbox if m["type"] in ("ok", "load")], alice.inbox
    await sup.quiet(0.3)
    assert not [m for m in sup.inbox if m["type"] in ("offer", "work.assigned", "work.updated")], sup.inbox


async def test_supervisor_forces_status_on_every_tab(redis_server: str, server: ServerProcess) -> None:
    tab1 = await agent(server, "alice")
    tab2 = await agent(server, "alice", subprotocol=MSGPACK)
    await available(tab1)
    sup = await supervisor(server)
    reply = await sup.request(
        {"type": "agent.status.set", "agent_id": "alice", "status": "Break", "reason": "Training"}
    )
    assert reply["type"] == "ok"
    for tab in (tab1, tab2):
        await tab.expect(
            lambda m: m["type"] == "status" and m["status"] == "Break" and m["reason"] == "Training"
        )
    assert "alice" not in ready_in(redis_server, server, "support")
    # errors name the field and echo the ref
    for msg, field, code in [
        ({"agent_id": "nobody", "status": "Break"}, "agent_id", "not_found"),
        ({"agent_id": "alice", "status": "Nope"}, "status", "invalid"),
        ({"agent_id": "alice", "status": "Break", "reason": "Nap"}, "reason", "invalid"),
        ({"agent_id": 5, "status": "Break"}, "agent_id", "invalid"),
        ({"status": "Break"}, "agent_id", "invalid"),
    ]:
        err = await sup.request({"type": "agent.status.set", **msg})
        assert (err["type"], err["field"], err["code"]) == ("error", field, code), err
    # an agent's own message types are not a supervisor's
    err = await sup.request({"type": "status.set", "status": "Available"})
    assert (err["code"], err["field"]) == ("unknown_type", "type")
    await sup.send_raw("{broken")
    assert (await sup.expect("error"))["code"] == "bad_frame"
    await still_open(sup)


async def test_supervisor_deltas_are_coalesced_under_churn(server_factory: ServerFactory) -> None:
    server = server_factory(
        env={
            "PRESENCE_SUPERVISOR_FLUSH": "0.1",
            "PRESENCE_RATE_PER_SECOND": "2000",
            "PRESENCE_RATE_BURST": "2000",
        }
    )
    sup = await supervisor(server, subprotocol=MSGPACK)
    alice = await agent(server, "alice", subprotocol=MSGPACK)
    await sup.quiet(0.3)
    sup.inbox.clear()
    statuses = ["Available", ("Break", "Coffee"), "Lunch", ("Break", "Meeting")]
    start = time.monotonic()
    for i in range(300):
        s = statuses[i % len(statuses)]
        status, reason = (s, "") if isinstance(s, str) else s
        await alice.send({"type": "status.set", "status": status, "reason": reason, "ref": i})
        await asyncio.sleep(max(0.0, start + (i + 1) / 300 - time.monotonic()))
    for _ in range(300):  # every change is served
        await alice.expect("ok", timeout=10)
    final = await alice.request({"type": "status.set", "status": "Break", "reason": "Training"})
    assert final["type"] == "ok"
    elapsed = time.monotonic() - start
    got = await sup.quiet(0.5)
    deltas = [m for m in got if m["type"] == "agents"]
    per_second = len(deltas) / (elapsed + 0.5)
    assert len(deltas) >= 3 and per_second <= 20, (len(deltas), elapsed)
    views = [v for m in deltas for v in views_of(m, "alice")]
    assert all(len(views_of(m, "alice")) == 1 for m in deltas)  # one view per agent per flush
    vers = [v["ver"] for v in views]
    assert vers == sorted(vers)
    assert (views[-1]["status"], views[-1]["reason"]) == ("Break", "Training")


async def test_silent_socket_is_closed_then_grace_then_offline(server_factory: ServerFactory) -> None:
    server = server_factory(env={"PRESENCE_HEARTBEAT_TIMEOUT": "1", "PRESENCE_GRACE_SECONDS": "0.3"})
    sup = await supervisor(server)
    silent = await agent(server, "alice")
    chatty = await agent(server, "bob")
    await available(silent)
    start = time.monotonic()
    for i in range(8):  # bob and the supervisor ping every 0.25 s; alice says nothing
        await chatty.send({"type": "ping", "ref": f"c{i}"})
        await sup.send({"type": "ping", "ref": f"s{i}"})
        await asyncio.sleep(0.25)
    await asyncio.wait_for(silent.conn.wait_closed(), 3)
    assert silent.conn.close_code == 1000
    assert time.monotonic() - start >= 0.9
    off: dict[str, Any] = {}
    for i in range(20):  # then the grace period runs out
        await sup.send({"type": "ping", "ref": f"s{100 + i}"})
        await chatty.send({"type": "ping", "ref": f"c{100 + i}"})
        await sup.quiet(0.2)
        found = [m for m in sup.inbox if m["type"] == "agents" and views_of(m, "alice")]
        if found and views_of(found[-1], "alice")[-1]["status"] == "Offline":
            off = found[-1]
            break
    assert off, sup.inbox[-3:]
    assert views_of(off, "alice")[-1]["reason"] == "disconnected"
    assert chatty.conn.close_code is None
    assert (await chatty.request({"type": "snapshot.get"}))["agent"]["connected"] is True


@pytest.mark.parametrize(
    ("error", "traceback"),
    [
        ("a bug in the feed", True),
        # what redis-py raises writing to a connection uvloop already closed
        # (its node killed): a lost connection, logged as one, no traceback
        ("unable to perform operation on <TCPTransport closed=True>; the handler is closed", False),
    ],
)
async def test_the_listener_survives_a_failure_of_its_own(
    server: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: str,
    traceback: bool,
) -> None:
    from presence.store.events import Feed

    alice = await agent(server, "alice")
    real = Feed.get
    failed: list[bool] = []

    async def fails_once(self: Feed) -> bytes | None:
        if not failed:
            failed.append(True)
            raise RuntimeError(error)
        return await real(self)

    # the listener waits in the real `get` now: the next call fails
    monkeypatch.setattr(Feed, "get", fails_once)
    await available(alice, "Break", "Coffee")
    await alice.expect("resync", timeout=10)  # subscribed again, every socket told
    assert failed
    [record] = [
        r for r in caplog.records if r.name == "presence.hub" and error in r.getMessage() + str(r.exc_info)
    ]
    assert (record.exc_info is not None) is traceback, record
    await available(alice)
    await alice.expect(lambda m: m.get("type") == "status" and m.get("status") == "Available", timeout=10)
