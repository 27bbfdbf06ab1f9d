"""Shared pieces of the asyncio benchmarks (bench_assign, bench_fanout, bench_connections).

This module owns three things the benchmarks need and nothing else:

* a lean websocket client (`RawWs`) and a lean keep-alive HTTP/1.1 client
  (`RawHttp`), both plain `asyncio.Protocol`s on uvloop. They exist because the
  load generator shares two cores with the server and Redis: a full client
  library (websockets, httpx) spends several times more CPU per message than
  the server does, and the benchmark would then measure the client. They speak
  only what the presence server sends (unfragmented frames, no extensions);
  client frames are masked with an all-zero key, which RFC 6455 allows a
  server to accept (it must not depend on the key's value) and saves the XOR.
* starting the stack under test: a private Redis on a free port
  (`presence.embedded.EmbeddedRedis`) and `presence serve` processes
  (`Stack`), or pointing at an existing server and Redis (--url/--redis-url).
* seeding agents and queues straight into Redis through `presence.store.Store`
  (the same Lua scripts the admin API runs), and small statistics helpers.

Traffic only ever goes to 127.0.0.1 (or the URL the operator names).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import msgpack
from redis import Redis as SyncRedis
from redis.exceptions import ResponseError

from presence.auth import mint
from presence.center import Agent
from presence.embedded import AOF_REWRITE, EmbeddedRedis, find_redis_binary

MSGPACK = "presence.v1.msgpack"
REPO = Path(__file__).resolve().parent.parent

_packb = msgpack.Packer(use_bin_type=True).pack


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port if port != 6379 else free_port()


def raise_nofile(want: int = 65536) -> int:
    """Raise this process's open-files limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- websocket ---------------------------------------------------------------


class _NoDelay(asyncio.Protocol):
    """A client protocol that sends each small frame at once (no Nagle delay:
    it would add up to 40 ms to the latencies measured)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class WsClosed(ConnectionError):
    pass


class RawWs(_NoDelay):
    """One client websocket; `on_message(obj)` gets every decoded msgpack message."""

    __slots__ = ("_buf", "_hs", "closed", "on_message", "opened", "transport")

    def __init__(self, on_message: Callable[[Any], None]) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._hs = True
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, on_message: Callable[[Any], None], timeout: float = 30.0
    ) -> RawWs:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: cls(on_message), host, port), timeout
        )
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        assert proto.transport is not None
        proto.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {MSGPACK}\r\n\r\n"
            ).encode()
        )
        try:
            await asyncio.wait_for(proto.opened, timeout)
        except BaseException:
            # a handshake refused or never answered: its socket is not left open
            proto.abort()
            raise
        return proto

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(WsClosed(f"connection lost during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if self._hs:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            self._hs = False
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(WsClosed(head.split(b"\r\n", 1)[0].decode("latin-1")))
                self.close()
                return
            self.opened.set_result(None)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln = b1 & 0x7F
            hdr = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if n - pos < hdr + ln:
                break
            payload = bytes(buf[pos + hdr : pos + hdr + ln])
            pos += hdr + ln
            op = b0 & 0x0F
            if op == 2 or op == 1:
                self.on_frame(payload)
            elif op == 9:
                self._frame(0xA, payload)
            elif op == 8:
                self.close()
        if pos:
            del buf[:pos]

    def on_frame(self, payload: bytes) -> None:
        """One data frame: decoded and given to `on_message` (a subclass may
        look at the bytes first)."""
        self.on_message(msgpack.unpackb(payload, raw=False))

    def _frame(self, op: int, payload: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        ln = len(payload)
        if ln < 126:
            head = bytes((0x80 | op, 0x80 | ln))
        elif ln < 65536:
            head = bytes((0x80 | op, 0xFE)) + ln.to_bytes(2, "big")
        else:
            head = bytes((0x80 | op, 0xFF)) + ln.to_bytes(8, "big")
        t.write(head + b"\0\0\0\0" + payload)

    def send(self, msg: dict[str, Any]) -> None:
        self._frame(0x2, _packb(msg))

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self._hs

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self._frame(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


# -- HTTP ----------------------------------------------------------------------


class RawHttp(_NoDelay):
    """One keep-alive HTTP/1.1 connection, one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.host = ""

    @classmethod
    async def connect(cls, host: str, port: int) -> RawHttp:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, host, port)
        proto.host = f"{host}:{port}"
        return proto

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"HTTP connection lost: {exc}"))

    @property
    def closed(self) -> bool:
        """Closed by the server (its keep-alive timeout: uvicorn's 5 s, which a
        slow rate with large batches leaves a connection idle for) or by us."""
        return self.transport is None or self.transport.is_closing()

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        body = b"".join(self._body)
        self._body = []
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, body))

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        if self.transport.is_closing():
            # connection_lost has been and gone: nothing would ever answer
            waiter.set_exception(ConnectionError("HTTP connection closed"))
            return waiter
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        )
        self.transport.write(head.encode() + body)
        return self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# -- the stack under test --------------------------------------------------------

SECRET_DEFAULT = "bench-secret-" + "0" * 40

BENCH_CENTER = """
[rules]
missed_offers_limit = 3

[channels.bench]
weight = {weight}
cap = 0

[[queues]]
name = "bench"
strategy = "{strategy}"
auto_accept = {auto_accept}
push_timeout = 30
wrapup_seconds = 120
priority = 10
"""


@dataclass
class Stack:
    """A Redis and `presence serve` processes for one benchmark run (or an existing pair)."""

    url: str | None = None
    redis_url: str | None = None
    secret: str = SECRET_DEFAULT
    center_id: str = ""
    config: Path | None = None
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    center_body: str = ""
    tmp: Path | None = None
    server: subprocess.Popen[bytes] | None = None
    redis: EmbeddedRedis | None = None
    log_path: Path | None = None
    keep: bool = False  # leave the run's files (AOF, server log) after `stop`

    @property
    def host_port(self) -> tuple[str, int]:
        assert self.url is not None
        u = urlsplit(self.url)
        return u.hostname or "127.0.0.1", u.port or 80

    def token(self, role: str, sub: str, ttl: int = 3600, center: str | None = None) -> str:
        """A token of the default center, or of `center` (one of the deployment's others)."""
        return mint(self.secret, sub, role, ttl, center=center)

    def start(self) -> Stack:
        """Start whatever was not given: a private Redis, then the server."""
        self.tmp = Path(tempfile.mkdtemp(prefix="presence-bench-"))
        if not self.center_id:
            self.center_id = "bench" + secrets.token_hex(4)
        if self.config is None:
            self.config = self.tmp / "center.toml"
            self.config.write_text(
                f'[center]\nid = "{self.center_id}"\n' + textwrap.dedent(self.center_body), "utf-8"
            )
        if self.redis_url is None:
            for attempt in range(3):
                self.redis = EmbeddedRedis(self.tmp, port=free_port())
                try:
                    self.redis_url = self.redis.start()
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
        if self.url is None:
            self._start_server()
        return self

    def server_env(self) -> dict[str, str]:
        assert self.redis_url is not None and self.config is not None and self.tmp is not None
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "PRESENCE_SECRET": self.secret,
            "PRESENCE_CONFIG": str(self.config),
            "PRESENCE_DATA_DIR": str(self.tmp / "var"),
            "PRESENCE_LOG_LEVEL": "warning",
            # a benchmark agent completes many items a second: lift the abuse limit
            "PRESENCE_RATE_PER_SECOND": "1000000",
            "PRESENCE_RATE_BURST": "1000000",
            **self.env,
        }

    def _start_server(self, timeout: float = 30.0) -> None:
        assert self.tmp is not None
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = self.tmp / "server.log"
        with self.log_path.open("ab") as log:
            self.server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "presence",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.server_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout
        import httpx

        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"server exited with {self.server.returncode}:\n{self.logs()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    if self.workers > 1:
                        time.sleep(0.5 + 0.2 * self.workers)  # let every worker subscribe
                    return
            time.sleep(0.05)
        logs = self.logs()  # read before `stop` removes them
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{logs[-3000:]}")

    def server_pids(self) -> list[int]:
        """The processes that serve sockets (the uvicorn workers, or the one process)."""
        import psutil

        if self.server is None:
            return []
        proc = psutil.Process(self.server.pid)
        kids = [c.pid for c in proc.children(recursive=True) if "redis" not in " ".join(c.cmdline()).lower()]
        # with --workers 1 uvicorn serves in the main process; with N, its
        # children do (plus a multiprocessing resource tracker, which is tiny)
        return kids if self.workers > 1 else [proc.pid]

    def aof_rewrites(self) -> int:
        """AOF rewrites Redis has made (0 when it is not ours to ask)."""
        assert self.redis_url is not None
        with SyncRedis.from_url(self.redis_url) as r:
            return int(r.info("persistence").get("aof_rewrites", 0))

    def compact_aof(self, timeout: float = 60.0) -> None:
        """Rewrite the AOF now and wait until it is done.

        Redis rewrites its append-only file on its own once it has doubled
        (and passed 64 MB); the fork and the rewrite slow every command for a
        few hundred milliseconds. Seeding 10,000 agents writes enough to
        trigger one a few seconds into the load, so a 10-second window would
        catch it with many agents and not with few. Compacting after the
        login wave starts every run from the same state; the report still
        counts any rewrite that falls in the window.
        """
        assert self.redis_url is not None
        with SyncRedis.from_url(self.redis_url) as r:
            with contextlib.suppress(ResponseError):  # one already running
                r.bgrewriteaof()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                info = r.info("persistence")
                if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
                    return
                time.sleep(0.05)

    def profile(self, path: str, seconds: float) -> subprocess.Popen[bytes] | None:
        """py-spy the (first) serving process for `seconds`: SVG flame graph, or raw text for .txt."""
        pids = self.server_pids()
        if not pids:
            return None
        fmt = "raw" if path.endswith(".txt") else "flamegraph"
        # beside this interpreter (the load extra installs it into the venv,
        # whose bin/ need not be on PATH), else wherever PATH has one
        beside = Path(sys.executable).parent / "py-spy"
        spy = str(beside) if beside.exists() else shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--profile needs py-spy: pip install '.[load]' (it is in the load extra)")
        return subprocess.Popen(
            [
                *(spy, "record", "-d", str(max(1, int(seconds))), "-r", "200"),
                *("-f", fmt, "-o", path, "--pid", str(pids[0])),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def logs(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text("utf-8", "replace")

    def check(self, others: Sequence[str] = ()) -> tuple[int, str]:
        """Run `presence check` against this stack's Redis, on its center and
        the `others` the run created; (exit code, output)."""
        env = {**os.environ, "REDIS_URL": self.redis_url or "", "PRESENCE_CONFIG": str(self.config)}
        centers = [arg for cid in (self.center_id, *others) for arg in ("--center", cid)]
        out = subprocess.run(
            [sys.executable, "-m", "presence", "check", *centers],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        return out.returncode, (out.stdout + out.stderr).strip()

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait(5)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.tmp is not None and not self.keep:
            # the AOF, the server's log and data: tens of MB a run, left in
            # /tmp by every benchmark and smoke test otherwise
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = self.log_path = None


class ReplicatedRedis:
    """A standalone Redis with one replica, on free ports of 127.0.0.1: the
    like for like of a cluster shard (tests/cluster.py: a primary and its
    replica, both keeping an AOF), so that a comparison with the cluster
    pays for replication on both sides. Both started with the settings of
    the benchmarks' own Redis (`EmbeddedRedis`: AOF, fsync every second)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.binary = find_redis_binary()
        self.primary_port, self.replica_port = free_port(), free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.primary_port}/0"

    @property
    def primary_pid(self) -> int:
        return self.procs[0].pid

    @property
    def replica_pid(self) -> int:
        return self.procs[1].pid

    def _spawn(self, name: str, port: int, *extra: str) -> None:
        folder = self.base / name
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "redis.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    self.binary,
                    *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
                    *("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
                    *AOF_REWRITE,
                    *("--daemonize", "no"),
                    *extra,
                ],
                stdout=log,
                stderr=log,
                cwd=folder,
                start_new_session=True,
            )
        self.procs.append(proc)

    def start(self, timeout: float = 30.0) -> ReplicatedRedis:
        self._spawn("primary", self.primary_port)
        self._spawn("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {proc.returncode}: {self.base}")
            with contextlib.suppress(Exception), SyncRedis(port=self.replica_port, socket_timeout=1) as r:
                if r.info("replication").get("master_link_status") == "up":
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the replica did not link to its primary within {timeout:.0f}s: {self.base}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.procs = []
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ReplicatedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def seed_agents(
    redis_url: str, center_id: str, ids: Iterable[str], queues: Sequence[str], capacity: int = 100
) -> int:
    """Create agents through the store's own `agent_put` script, 50 at a time.

    (200 at a time opened 200 connections at once, and on a busy host the
    last ones missed the client's 2-second connect timeout.)"""
    from presence.store import Store
    from presence.store.client import open_redis

    redis = await open_redis(redis_url)
    store = Store(redis, center_id)
    n = 0
    try:
        batch: list[Any] = []
        for aid in ids:
            agent = Agent(id=aid, name=aid, capacity=capacity, queues=tuple(queues))
            batch.append(store.put_agent(agent))
            if len(batch) >= 50:
                await asyncio.gather(*batch)
                n += len(batch)
                batch = []
        if batch:
            await asyncio.gather(*batch)
            n += len(batch)
    finally:
        await redis.aclose()
    return n


# -- what Redis did ---------------------------------------------------------------

# Commands that run scripts: counted as script calls; the commands the
# scripts run inside are counted by Redis under their own names.
SCRIPT_COMMANDS = frozenset({"fcall", "fcall_ro", "eval", "evalsha", "eval_ro", "evalsha_ro"})
# what the measuring itself sends (these readings, a stats reset, the
# benchmark's own compaction), never the server's or the scripts' work
MEASURING = frozenset({"info", "config|resetstat", "bgrewriteaof", "function|load", "ping", "cluster|nodes"})


@dataclass(frozen=True)
class RedisWork:
    """Redis's own counters at one moment, or their change between two.

    From ``INFO commandstats`` (calls and time per command, those that
    scripts run included) and ``INFO persistence`` (the append-only file's
    size). Exact on any machine, unlike CPU times: a change in the work per
    assignment shows in any run, however busy the host.
    """

    calls: dict[str, int]
    usec: dict[str, int]
    aof_size: int
    rewrites: int

    @classmethod
    def parse(cls, commandstats: dict[str, Any], persistence: dict[str, Any]) -> RedisWork:
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in commandstats.items()}
        usec = {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in commandstats.items()}
        return cls(
            calls,
            usec,
            int(persistence.get("aof_current_size", 0) or 0),
            int(persistence.get("aof_rewrites", 0) or 0),
        )

    @classmethod
    def read(cls, redis_url: str) -> RedisWork:
        """The counters of the Redis at `redis_url`; of a cluster node, those
        of every primary summed (a center's calls run on its slot's primary,
        which need not be the node named: reading that node alone showed a
        cluster's work as 0 commands). Replicas are left out: they apply the
        primaries' writes again and would count them twice."""
        with SyncRedis.from_url(redis_url) as r:
            if not int(r.info("cluster").get("cluster_enabled", 0) or 0):
                return cls.parse(r.info("commandstats"), r.info("persistence"))
            # redis-py parses CLUSTER NODES: {"host:port": {"flags": "myself,master", ...}}
            nodes: dict[str, dict[str, Any]] = r.execute_command("CLUSTER NODES")
            primaries = [
                addr.split("@")[0]
                for addr, node in nodes.items()
                if "master" in node["flags"].split(",") and "fail" not in node["flags"].split(",")
            ]
        parts = []
        for addr in primaries:
            host, _, port = addr.rpartition(":")
            with SyncRedis(host=host, port=int(port)) as node_r:
                parts.append(cls.parse(node_r.info("commandstats"), node_r.info("persistence")))
        return cls.total(parts)

    @classmethod
    def total(cls, parts: Sequence[RedisWork]) -> RedisWork:
        calls: dict[str, int] = {}
        usec: dict[str, int] = {}
        for w in parts:
            for k, v in w.calls.items():
                calls[k] = calls.get(k, 0) + v
            for k, v in w.usec.items():
                usec[k] = usec.get(k, 0) + v
        return cls(calls, usec, sum(w.aof_size for w in parts), sum(w.rewrites for w in parts))

    def since(self, before: RedisWork) -> RedisWork:
        def minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)}

        return RedisWork(
            minus(self.calls, before.calls),
            minus(self.usec, before.usec),
            self.aof_size - before.aof_size,
            self.rewrites - before.rewrites,
        )

    @property
    def script_calls(self) -> int:
        return sum(n for k, n in self.calls.items() if k in SCRIPT_COMMANDS)

    @property
    def script_usec(self) -> int:
        return sum(n for k, n in self.usec.items() if k in SCRIPT_COMMANDS)

    def commands(self, own: dict[str, int] | None = None) -> dict[str, int]:
        """Commands run, by name: the server's and its scripts', not the
        script calls themselves nor the measuring (`MEASURING`, and `own`:
        commands the benchmark sent itself, subtracted)."""
        own = own or {}
        out = {
            k: n - own.get(k, 0)
            for k, n in self.calls.items()
            if k not in SCRIPT_COMMANDS and k not in MEASURING and n - own.get(k, 0) > 0
        }
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def per(self, n: int, own: dict[str, int] | None = None) -> dict[str, float]:
        """Per unit of work (`n` assignments): script calls, commands, AOF
        bytes (nan when a rewrite fell between the readings: the size
        restarted) and script time in microseconds."""
        n = max(1, n)
        return {
            "script_calls": self.script_calls / n,
            "commands": sum(self.commands(own).values()) / n,
            "aof_bytes": float("nan") if self.rewrites else self.aof_size / n,
            "script_us": self.script_usec / n,
        }


# -- statistics ------------------------------------------------------------------


def summarize_profile(path: str, top: int = 40) -> str:
    """Inclusive share of samples per function of a py-spy raw profile."""
    from collections import Counter

    incl: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        for frame in set(stack.split(";")):
            incl[frame] += int(n)
    return "\n".join(f"{v * 100 / max(1, total):5.1f}% {k}" for k, v in incl.most_common(top))


def cpu_seconds(procs: Iterable[Any]) -> float:
    """User plus system CPU seconds the `psutil.Process`es have used so far."""
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) of values, nearest rank; nan when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def ms(x: float) -> str:
    return "-" if x != x else f"{x * 1000:.2f}"


def table(rows: Sequence[Sequence[Any]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        cells = zip(r, widths, strict=True)
        out.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(cells)))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
