"""Faults of a Redis Cluster under a busy center: its primary killed with
kill -9 (the replica is promoted), a manual CLUSTER FAILOVER, and its slot
moved to another primary, each while items are posted and accepted.

Agents and a wallboard stay connected to one server throughout and carry on
by themselves (the hub follows the channel to the slot's new owner and
resynchronises them). Every test ends with the invariant checker (the
fixture) and its own accounting: every acknowledged item is there exactly
once and completed once, and no item was offered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from presence.store.keys import Keys
from presence.store.scripts import helpers
from tests.cluster import LocalCluster, Node
from tests.faults.workers import Worker, start
from tests.harness import (
    ServerProcess,
    WsClient,
    agent,
    available,
    supervisor,
    token,
    unique_center,
    write_center,
)
from tests.integration.conftest import ServerFactory

pytestmark = [pytest.mark.timeout(180), pytest.mark.cluster]

N_AGENTS = 6
N_ITEMS = 60
WRAPUP_SECONDS = 5
CENTER = (
    "[rules]\nmissed_offers_limit = 0\n\n"
    f'[[queues]]\nname = "support"\npush_timeout = 60\nwrapup_seconds = {WRAPUP_SECONDS}\n\n'
    + "".join(f'[[agents]]\nid = "a{i}"\nqueues = ["support"]\ncapacity = 100\n\n' for i in range(N_AGENTS))
)
# the workers and the wallboard send no `ping`: a slow run must not have
# their sockets reaped as silent
ENV = {"PRESENCE_HEARTBEAT_TIMEOUT": "600"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster of this module's own: these tests kill and move its nodes."""
    with LocalCluster(tmp_path_factory.mktemp("fault-cluster")) as c:
        yield c


@pytest.fixture
def redis_server(cluster: LocalCluster) -> str:
    cluster.wait_ok()
    return cluster.url


@dataclass
class Agent(Worker):
    """A fault worker that also counts every offer it was sent, and after a
    resync takes up what its fresh snapshot holds."""

    seen: list[str] = field(default_factory=list)
    resyncs: int = 0

    def _on(self, msg: dict[str, Any], client: WsClient, tasks: set[asyncio.Task[None]]) -> None:
        if msg.get("type") == "offer":
            self.seen.append(msg["work_id"])
        if msg.get("type") == "resync":
            self.resyncs += 1
        if msg.get("type") == "snapshot":
            # accept again what is still offered: an accept sent while Redis
            # was failing over was answered `unavailable`
            for item in msg.get("offers", []):
                self._on({"type": "offer", **item}, client, tasks)
                self.seen.pop()  # the same offer, seen again in a snapshot
            for item in msg.get("work", []):
                self._on({"type": "work.assigned", "work_id": item["work_id"]}, client, tasks)
        super()._on(msg, client, tasks)


def center_away_from(cluster: LocalCluster, node_url: str) -> str:
    """A center id whose slot is not on the node REDIS_URL names (that one
    must stay up for the checker)."""
    while True:
        cid = unique_center()
        if cluster.owner(Keys(cid).prefix).url != node_url:
            return cid


async def _post(http: httpx.AsyncClient, server: ServerProcess, n: int) -> str:
    """Post one item until it is acknowledged, retrying a 503 or a lost
    connection with the same Idempotency-Key."""
    headers = {"Authorization": f"Bearer {token('service', 'crm')}", "Idempotency-Key": f"c-{n}"}
    body = {"channel": "chat", "queue": "support", "skills": {}, "subject": f"item {n}"}
    for _ in range(100):
        try:
            r = await http.post(f"{server.http}/api/v1/work", json=body, headers=headers)
        except httpx.HTTPError:
            await asyncio.sleep(0.1)
            continue
        if r.status_code == 503:
            await asyncio.sleep(0.1)
            continue
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])
    raise AssertionError(f"item {n} was never acknowledged")


async def run_with_fault(
    server: ServerProcess, fault: Callable[[], None], *, cid: str
) -> tuple[list[dict[str, Any]], list[Agent], WsClient]:
    agents = [Agent(f"a{i}", [server]) for i in range(N_AGENTS)]
    stop = asyncio.Event()
    tasks = await start(agents, stop)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    wall = await supervisor(server)
    board: list[str] = []  # the types of what the wallboard got

    async def watch() -> None:
        while not stop.is_set():
            try:
                board.append((await wall.recv(0.5))["type"])
            except TimeoutError:
                continue

    tasks.append(asyncio.create_task(watch()))
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            deadline = loop.time() + 15
            while sum(len(a.connects) for a in agents) < N_AGENTS and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            ids = []
            for n in range(N_ITEMS):
                ids.append(await _post(http, server, n))
                await asyncio.sleep(0.02)
                if n == N_ITEMS // 3:
                    at_fault = len(board)
                    await asyncio.to_thread(fault)
            headers = {"Authorization": f"Bearer {token('service', 'crm')}"}
            done_by = loop.time() + 60
            while loop.time() < done_by:
                seen = set().union(*(a.completed for a in agents))
                if seen >= set(ids):
                    break
                # an agent may never hear of a completion: one published while
                # the hub was subscribing again after the fault; the item is
                # done all the same, and the store says so
                left = [w for w in ids if w not in seen]
                states = [(await http.get(f"{server.http}/api/v1/work/{w}", headers=headers)) for w in left]
                if all(r.status_code == 200 and r.json()["state"] == "completed" for r in states):
                    break
                await asyncio.sleep(0.2)
            items = [(await http.get(f"{server.http}/api/v1/work/{w}", headers=headers)).json() for w in ids]
        # the wallboard carried on: resynchronised after the fault, then
        # fed agent views again
        after = board[at_fault:]
        assert "snapshot" in after, after
        assert "agents" in after[after.index("snapshot") :], after
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(set(ids)) == N_ITEMS  # retries with the same key made no duplicates
    not_done = [i["id"] for i in items if i["state"] != "completed"]
    assert not not_done, f"items not completed: {not_done}"
    for item in items:
        assert [h["ev"] for h in item["history"]].count("complete") == 1, item
    offered = [w for a in agents for w in a.seen]
    twice = {w for w in offered if offered.count(w) > 1}
    history = {i["id"]: [(h["ev"], h.get("agent"), h["ts"]) for h in i["history"]] for i in items}
    assert not twice, [([a.agent_id for a in agents if w in a.seen], history[w]) for w in twice]
    # while the slot had no primary, calls were answered `unavailable`: nothing else
    errors = [e for a in agents for e in a.errors if e.get("code") != "unavailable"]
    assert not errors, errors
    assert "Traceback" not in server.logs()
    return items, agents, wall


async def test_kill9_of_the_centers_primary(
    cluster: LocalCluster, server_factory: ServerFactory, redis_server: str, tmp_path: Path
) -> None:
    cid = center_away_from(cluster, redis_server)
    path, _ = write_center(tmp_path / "kill.toml", CENTER, center_id=cid)
    server = server_factory(config=path, env=ENV)
    victim = cluster.owner(Keys(cid).prefix)
    [replica] = cluster.replicas_of(victim)
    promoted: list[Node] = []

    def kill() -> None:
        cluster.kill(victim)
        promoted.append(cluster.wait_promoted(Keys(cid).prefix, victim))

    _, agents, _ = await run_with_fault(server, kill, cid=cid)
    assert promoted == [replica]
    assert sum(a.resyncs for a in agents) >= N_AGENTS  # every socket resynchronised
    # the old primary comes back as a replica of the new one
    cluster.revive(victim)
    cluster.wait_ok()


async def test_manual_failover(
    cluster: LocalCluster, server_factory: ServerFactory, redis_server: str, tmp_path: Path
) -> None:
    cid = center_away_from(cluster, redis_server)
    path, _ = write_center(tmp_path / "failover.toml", CENTER, center_id=cid)
    server = server_factory(config=path, env=ENV)
    primary = cluster.owner(Keys(cid).prefix)
    [replica] = cluster.replicas_of(primary)
    await run_with_fault(server, lambda: cluster.failover(replica), cid=cid)
    assert cluster.owner(Keys(cid).prefix) is replica
    cluster.wait_ok()


@pytest.mark.parametrize("pause", [0.0, 1.0], ids=["at-once", "paused"])
async def test_the_centers_slot_moves_while_it_routes(
    cluster: LocalCluster, server_factory: ServerFactory, redis_server: str, tmp_path: Path, pause: float
) -> None:
    """The slot moves, keys and all, while items are posted and accepted;
    `pause`: the slot stays marked (MIGRATING/IMPORTING) that long after its
    keys moved, every call then bounced between the two nodes (ASK, MOVED)
    or refused, until the primaries are told the slot's new owner."""
    cid = center_away_from(cluster, redis_server)
    path, _ = write_center(tmp_path / "move.toml", CENTER, center_id=cid)
    server = server_factory(config=path, env=ENV)
    slot = cluster.slot(Keys(cid).prefix)
    source = cluster.owner(Keys(cid).prefix)
    target = next(n for n in cluster.primaries() if n is not source)
    items, agents, _ = await run_with_fault(
        server, lambda: cluster.migrate_slot(slot, target, pause=pause), cid=cid
    )
    assert cluster.owner(Keys(cid).prefix) is target
    assert sum(a.resyncs for a in agents) >= N_AGENTS  # the hub followed the channel
    # nothing waited for a timeout to be put right (an offer whose push was
    # lost is offered again after `push_timeout`, a minute): every item was
    # done within the pause and a few seconds of its creation
    late = {i["id"]: ms for i in items if (ms := completed_after(i)) > (pause + LATE_SECONDS) * 1000}
    assert not late, late
    # a bounce is the store unavailable for a moment: a warning, never an error
    errors = [line for line in server.logs().splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert not errors, errors


# how long after its creation an item may be completed, past a pause (the
# agents think up to 0.3 s, a call refused by a moving slot is retried
# within a second or two)
LATE_SECONDS = 5.0


def completed_after(item: dict[str, Any]) -> int:
    """Milliseconds from an item's creation to its completion (its history)."""
    ts = {h["ev"]: int(h["ts"]) for h in reversed(item["history"])}
    return ts["complete"] - ts["create"]


@contextlib.contextmanager
def slot_marked(cluster: LocalCluster, prefix: str) -> Iterator[tuple[Node, Node]]:
    """The slot of `prefix` marked MIGRATING to another primary (IMPORTING
    there) with its keys not moved, as a resharding tool leaves it for a
    moment; stable again on leaving. Yields the source and the target."""
    slot = cluster.slot(prefix)
    source = cluster.owner(prefix)
    target = next(n for n in cluster.primaries() if n is not source)
    with source.client() as src, target.client() as dst:
        src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        try:
            yield source, target
        finally:
            for c in (src, dst):
                c.execute_command("CLUSTER SETSLOT", slot, "STABLE")


def probe_script(body: str) -> str:
    """A script as store/scripts.py builds one (`script_source`): the shared
    helpers, `enter` (and its probe), then `body`."""
    return f"local __keys, __args = KEYS, ARGV\n{helpers()}\nenter(__keys, __args)\n{body}"


def seeded_center(cluster: LocalCluster, redis_server: str) -> Keys:
    """The keys of a center away from `redis_server`'s node, once the
    cluster is ok, with the center's anchor and an accepted item `w1` on the
    slot's owner."""
    cluster.wait_ok()
    k = Keys(center_away_from(cluster, redis_server))
    with cluster.owner(k.prefix).client() as c:
        c.set(k.anchor, "1")
        c.hset(k.work("w1"), "state", "accepted")
    return k


def test_a_call_on_a_migrating_slot_is_refused_before_its_first_write(
    cluster: LocalCluster, redis_server: str
) -> None:
    """A script that writes a key the node holds and then one it does not
    (a first history entry) is refused at the second: without the shared
    helpers' probe the first write stayed, half a change."""
    k = seeded_center(cluster, redis_server)
    prefix = k.prefix
    source_code = probe_script(
        "redis.call('HSET', key('work', 'w1'), 'state', 'completed')\n"
        "redis.call('RPUSH', key('work', 'w1', 'history'), 'complete')\n"
        "return 'ok'"
    )
    with slot_marked(cluster, prefix) as (source, _), source.client() as c:
        with pytest.raises(redis.ResponseError, match="non local key"):
            c.eval(source_code, 1, prefix, 0)
        assert c.hget(k.work("w1"), "state") == "accepted"
    with cluster.owner(prefix).client() as c:
        assert c.eval(source_code, 1, prefix, 0) == "ok"
        assert c.hget(k.work("w1"), "state") == "completed"
        assert not c.exists(k.slot_probe)  # read, never written
        c.delete(k.anchor, k.work("w1"), k.work_history("w1"))


def test_a_call_sent_on_to_the_importing_node_is_refused_before_its_first_write(
    cluster: LocalCluster, redis_server: str
) -> None:
    """Once the keys moved and before the slot is the new node's, the old
    node sends a call on (ASK) and the new one, IMPORTING, runs it; there
    Redis refuses a command on several keys of which one is missing (a
    completion's EXISTS of the item's rare records, the router's of a
    queue's `waiting` and `borrowed`) where the script reaches it. The call
    is refused before its first write instead: without the probe's second
    key, an item stayed `completed` with no `complete` entry in its history
    and not counted."""
    k = seeded_center(cluster, redis_server)
    prefix = k.prefix
    source_code = probe_script(
        "redis.call('HSET', key('work', 'w1'), 'state', 'completed')\n"
        "redis.call('EXISTS', key('case', 'w1'), key('case', 'w1', 'comments'))\n"
        "redis.call('RPUSH', key('work', 'w1', 'history'), 'complete')\n"
        "return 'ok'"
    )
    slot = cluster.slot(prefix)
    source = cluster.owner(prefix)
    target = next(n for n in cluster.primaries() if n is not source)
    # one connection: ASKING holds for the next command on it only
    dst = redis.Redis(
        host="127.0.0.1", port=target.port, decode_responses=True, single_connection_client=True
    )
    with source.client() as src, dst:
        src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000)
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", "KEYS", *keys)
        with pytest.raises(redis.exceptions.AskError):  # the anchor moved: the old node sends the call on
            src.eval(source_code, 1, prefix, 0)
        dst.execute_command("ASKING")
        with pytest.raises(redis.ResponseError, match="non local key"):
            dst.eval(source_code, 1, prefix, 0)
        dst.execute_command("ASKING")
        assert dst.hget(k.work("w1"), "state") == "accepted"
        for n in cluster.primaries():
            with n.client() as c:
                c.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
    cluster.wait_ok()
    with cluster.owner(prefix).client() as c:
        assert c.eval(source_code, 1, prefix, 0) == "ok"
        assert c.hget(k.work("w1"), "state") == "completed"
        c.delete(k.anchor, k.work("w1"), k.work_history("w1"))


def center_state(node: Node, prefix: str) -> dict[bytes, tuple[bytes, int]]:
    """Every key of the center on `node`: its serialised value and its expiry
    (absolute, so that time passing changes nothing)."""
    with node.client() as c:
        return {
            k: (c.dump(k), c.execute_command("PEXPIRETIME", k))
            for k in c.scan_iter(match=f"{prefix}*", count=1000)
        }


async def test_a_change_refused_while_the_slot_is_migrating_leaves_nothing_half_done(
    cluster: LocalCluster, server_factory: ServerFactory, redis_server: str, tmp_path: Path
) -> None:
    """While a slot is MIGRATING (marked, its keys not moved yet), Redis
    refuses a script's command on a key the node does not hold, where the
    script reaches it: a change that wrote before that would stay half
    applied. Every call is refused before its first write instead, answered
    `unavailable` (503 over HTTP), and goes through once the slot is stable."""
    cid = center_away_from(cluster, redis_server)
    path, _ = write_center(tmp_path / "migrating.toml", CENTER, center_id=cid)
    server = server_factory(config=path, env=ENV)
    prefix = Keys(cid).prefix
    headers = {"Authorization": f"Bearer {token('service', 'crm')}"}
    body = {"channel": "chat", "queue": "support", "skills": {}, "subject": "during the move"}
    a0 = await agent(server, "a0")
    await available(a0)

    @contextlib.contextmanager
    def migrating(unchanged: bool = True) -> Iterator[None]:
        """The slot marked for the block; `unchanged`: the center's keys are
        as they were before it."""
        with slot_marked(cluster, prefix) as (source, _):
            before = center_state(source, prefix)
            yield
            after = center_state(source, prefix)
        # the process's own connection counts (written every second with
        # their time, by no change of the center's) may land in the window
        gauge = Keys(cid).metrics_conns  # `center_state` reads with decode_responses: str keys
        changed = sorted(
            k for k in before.keys() | after.keys() if before.get(k) != after.get(k) and k != gauge
        )
        assert not (unchanged and changed), f"a refused change left {changed}"

    async with httpx.AsyncClient(timeout=10) as http:
        with migrating():
            refused = await http.post(f"{server.http}/api/v1/work", json=body, headers=headers)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        posted = await http.post(f"{server.http}/api/v1/work", json=body, headers=headers)
        assert posted.status_code in (200, 201), posted.text
    wid = (await a0.expect("offer"))["work_id"]
    for msg in (
        {"type": "offer.accept", "work_id": wid},
        {"type": "status.set", "status": "Break", "reason": ""},
    ):
        with migrating():
            reply = await a0.request(msg)
        assert reply["type"] == "error" and reply["code"] == "unavailable", reply
    assert (await a0.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
    # without a `ref`, so that no retry record is the call's first new key
    with migrating():
        await a0.send({"type": "work.complete", "work_id": wid})
        reply = await a0.expect("error")
    assert reply["code"] == "unavailable", reply
    assert (await a0.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"
    # in wrap-up now: the sweeper ends it once `wrapup_seconds` ran out, and
    # is refused while the slot is marked, however often it tries (the
    # sockets' leases are renewed meanwhile, or refused: keys may change)
    with migrating(unchanged=False):
        await asyncio.sleep(WRAPUP_SECONDS + 1.5)
    async with httpx.AsyncClient(timeout=10) as http:
        url = f"{server.http}/api/v1/work/{wid}"
        for _ in range(50):
            item = (await http.get(url, headers=headers)).json()
            if item["state"] == "completed":
                break
            await asyncio.sleep(0.1)
    assert [h["ev"] for h in item["history"]].count("complete") == 1, item
