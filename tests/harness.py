"""Test harness: real server processes and real websocket clients.

`ServerProcess` runs `python -m presence serve` on a free port against the
test Redis, with its own center id (so its keys never meet another test's).
`InProcessServer` serves the same app from a thread of the test process,
on a `DrivenClock` the test moves forward: a grace period or a timeout is
tested by advancing the clock past it, not by sleeping through it.
`WsClient` speaks the real protocol over a real websocket, in either
encoding, waits for messages by type, and holds every message the server
sends to the endpoint's published schema (`presence.schema.messages`).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import msgpack
import msgspec
import orjson
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from presence import protocol
from presence.auth import mint
from presence.config import Settings
from presence.store.keys import Keys
from tests.helpers import free_port, http, redis_sync

SECRET = "test-secret-0123456789abcdef0123456789"
JSON = "presence.v1.json"
MSGPACK = "presence.v1.msgpack"

DEFAULT_CENTER = """
[rules]
missed_offers_limit = 3

[[queues]]
name = "support"
push_timeout = 30
priority = 10

[[queues]]
name = "billing"
strategy = "least_active"
priority = 5

[[agents]]
id = "alice"
queues = ["support", "billing"]
skills = {english = 5}

[[agents]]
id = "bob"
queues = ["support"]
skills = {english = 3}
"""


def token(role: str, sub: str, ttl: int = 3600, secret: str = SECRET, center: str | None = None) -> str:
    return mint(secret, sub, role, ttl, center=center)


def unique_center() -> str:
    return "t" + uuid.uuid4().hex[:12]


def write_center(path: Path, body: str = DEFAULT_CENTER, center_id: str | None = None) -> tuple[Path, str]:
    """Write a center TOML with a fresh center id; returns (path, id)."""
    cid = center_id or unique_center()
    path.write_text(f'[center]\nid = "{cid}"\n' + textwrap.dedent(body), "utf-8")
    return path, cid


class PortTaken(RuntimeError):
    """The port a server was to listen on was taken before it could bind it."""


class ServerProcess:
    """One `presence serve` process on a free port."""

    def __init__(
        self,
        redis_url: str,
        config: Path,
        *,
        env: dict[str, str] | None = None,
        workers: int = 1,
        log_dir: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.config = config
        # a port of its own choosing: another may be chosen if it is taken
        # by the time the server binds it (`start`)
        self.any_port = port is None
        self.port = port or free_port()
        self.workers = workers
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_dir = log_dir or config.parent
        self.log_path = self.log_dir / f"server-{self.port}.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def center_id(self) -> str:
        return self.config.read_text("utf-8").split('"')[1]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        # free_port() hands out a port that was free a moment ago; until the
        # server binds it, anything on the machine may take it (another
        # test's listener, any outgoing connection's local port): then
        # another port, as _start_redis (tests/conftest.py) does for Redis
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                if not self.any_port or attempt == 2:
                    raise
                self.port = free_port()
                self.log_path = self.log_dir / f"server-{self.port}.log"
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> ServerProcess:
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "PRESENCE_SECRET": SECRET,
            "PRESENCE_CONFIG": str(self.config),
            "PRESENCE_DATA_DIR": str(self.config.parent / "var"),
            "PRESENCE_SWEEP_INTERVAL": "0.05",
            "PRESENCE_SUPERVISOR_FLUSH": "0.05",
            # on a cluster, a replica starved of CPU by a busy test machine
            # may take longer than the 1 s default to acknowledge a change
            "PRESENCE_REDIS_WAIT_TIMEOUT": "5",
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "presence",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                logs = self.logs()
                error = PortTaken if f"port {self.port} is already in use" in logs else RuntimeError
                raise error(f"server exited with {self.proc.returncode}:\n{logs}")
            try:
                if http().get(f"{self.http}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9: the process dies at whatever line it is on."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP: the process freezes; its sockets stay open and go silent."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        os.killpg(self.proc.pid, signal.SIGCONT)  # a paused server handles the SIGTERM too
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    def check(self) -> list[str]:
        """Run `presence check` against this server's Redis and center."""
        env = {**os.environ, "REDIS_URL": self.redis_url, "PRESENCE_CONFIG": str(self.config)}
        out = subprocess.run(
            [sys.executable, "-m", "presence", "check"], env=env, capture_output=True, text=True, timeout=60
        )
        breaches = [line for line in out.stdout.splitlines() if line.startswith("BREACH")]
        if out.returncode != 0 and not breaches:
            breaches = [f"checker failed ({out.returncode}): {out.stdout}{out.stderr}"]
        return breaches


class DrivenClock:
    """The wall clock plus an offset that only the test moves (forward).

    Time still flows (items age, offers carry real stamps); `advance`
    jumps it, and the server's next sweep (every 0.05 s in the tests) sees
    the new time.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "the clock only goes forward"
        self.offset += seconds


class InProcessServer(ServerProcess):
    """The app served by uvicorn from a thread of the test process, with
    `clock` as its store's clock (``create_app(clock=...)``).

    The same face as `ServerProcess` (``http``, ``ws``, ``logs()``,
    ``check()``, ``stop()``); a process of its own is what it does not
    have: no `kill`, `pause` or several workers (use `ServerProcess`).
    The socket leases default to an hour: a lease is stamped by the same
    clock, and a jump of the clock past it would count this process's own
    sockets as gone.
    """

    def __init__(self, redis_url: str, config: Path, clock: DrivenClock, **kw: Any) -> None:
        super().__init__(redis_url, config, **kw)
        self.clock = clock
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._log: logging.Handler | None = None
        self._levels: dict[str, int] = {}
        self._gc = gc.get_threshold()
        self.failure: BaseException | None = None

    def start(self, timeout: float = 20.0) -> InProcessServer:
        from presence.app import create_app
        from presence.cli import wire_options

        env = {
            "REDIS_URL": self.redis_url,
            "PRESENCE_SECRET": SECRET,
            "PRESENCE_CONFIG": str(self.config),
            "PRESENCE_DATA_DIR": str(self.config.parent / "var"),
            "PRESENCE_SWEEP_INTERVAL": "0.05",
            "PRESENCE_SUPERVISOR_FLUSH": "0.05",
            "PRESENCE_LEASE_SECONDS": "3600",
            # as for a server process (ServerProcess.start)
            "PRESENCE_REDIS_WAIT_TIMEOUT": "5",
            **self.extra_env,
        }
        # the settings come from this mapping; anything else a server reads
        # from its environment (a webhook's secret_env) would not be there
        others = [k for k in self.extra_env if not k.startswith("PRESENCE_")]
        assert not others, f"an in-process server reads only PRESENCE_* settings, not {others}"
        settings = Settings.from_env(env)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        self._log = logging.FileHandler(self.log_path, encoding="utf-8")
        self._log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._levels = {name: logging.getLogger(name).level for name in ("presence", "uvicorn")}
        for name in self._levels:
            logging.getLogger(name).addHandler(self._log)
            logging.getLogger(name).setLevel(logging.INFO)
        # the wire `presence serve` runs (presence/cli.py), ping budget included
        config = uvicorn.Config(
            create_app(settings, clock=self.clock),
            log_config=None,
            access_log=False,
            **wire_options(settings),
        )
        self._server = uvicorn.Server(config)
        server = self._server

        def run() -> None:
            # a failed start ends in SystemExit (uvicorn's); start() reports it with the log
            try:
                server.run(sockets=[sock])
            except BaseException as exc:
                self.failure = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                self.stop()
                raise RuntimeError(
                    f"in-process server stopped while starting ({self.failure!r}):\n{self.logs()}"
                )
            try:
                if http().get(f"{self.http}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"in-process server not ready after {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            if self._thread.is_alive():
                # where it hangs (seen once in CI after uvicorn had finished: the
                # loop's own shutdown, not the app's): the thread's stack says
                frame = sys._current_frames().get(self._thread.ident or 0)
                stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)"
                raise AssertionError(f"in-process server did not stop; its thread:\n{stack}\n{self.logs()}")
            self._server = self._thread = None
            # the app tunes the collector for a server (app.GC_THRESHOLDS);
            # this process goes on running tests
            gc.unfreeze()
            gc.set_threshold(*self._gc)
        if self._log is not None:
            for name, level in self._levels.items():
                logging.getLogger(name).removeHandler(self._log)
                logging.getLogger(name).setLevel(level)
            self._log.close()
            self._log = None
        return 0

    def kill(self) -> None:
        raise NotImplementedError("an in-process server has no process to kill: use ServerProcess")

    def pause(self) -> None:
        raise NotImplementedError("an in-process server has no process to pause: use ServerProcess")

    def resume(self) -> None:
        raise NotImplementedError("an in-process server has no process to resume: use ServerProcess")


class WsClient:
    """A real websocket client speaking the presence protocol."""

    _refs = itertools.count(1)
    # every client opened by a test; tests/integration/conftest.py closes them
    opened: ClassVar[list[WsClient]] = []

    def __init__(self, conn: ClientConnection, subprotocol: str, path: str = "") -> None:
        self.conn = conn
        self.subprotocol = subprotocol
        # what the server may send here: a message outside it fails the test
        self.outbound = next((e.outbound for e in protocol.ENDPOINTS if e.path == path), None)
        self.inbox: list[dict[str, Any]] = []
        self.snapshot: dict[str, Any] = {}

    @classmethod
    async def connect(
        cls,
        server: ServerProcess | str,
        path: str,
        tok: str,
        *,
        subprotocol: str = JSON,
        via_header: bool = False,
        expect_snapshot: bool = True,
    ) -> WsClient:
        base = server.ws if isinstance(server, ServerProcess) else server
        url = f"{base}{path}" if via_header else f"{base}{path}?token={tok}"
        headers = {"Authorization": f"Bearer {tok}"} if via_header else None
        conn = await websockets.connect(
            url,
            subprotocols=[subprotocol],  # type: ignore[list-item]
            additional_headers=headers,
            max_size=2**24,
        )
        client = cls(conn, subprotocol, path)
        cls.opened.append(client)
        if expect_snapshot:
            client.snapshot = await client.expect("snapshot")
        return client

    def encode(self, msg: dict[str, Any]) -> str | bytes:
        if self.subprotocol == JSON:
            return orjson.dumps(msg).decode()
        return msgpack.packb(msg, use_bin_type=True)  # type: ignore[no-any-return]

    def decode(self, frame: str | bytes) -> dict[str, Any]:
        if isinstance(frame, str):
            assert self.subprotocol == JSON, "text frame on a msgpack socket"
            msg: dict[str, Any] = orjson.loads(frame)
        else:
            assert self.subprotocol == MSGPACK, "binary frame on a JSON socket"
            msg = msgpack.unpackb(frame, raw=False)
        if self.outbound is not None:
            try:
                msgspec.convert(msg, self.outbound)
            except msgspec.ValidationError as exc:
                raise AssertionError(f"a message its schema does not describe ({exc}): {msg}") from None
        return msg

    async def send(self, msg: dict[str, Any]) -> None:
        await self.conn.send(self.encode(msg))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.conn.send(frame)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.conn.recv(), timeout)
        return self.decode(frame)

    async def expect(
        self, kind: str | Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """The first message (kept or new) matching a type or predicate."""
        match = (lambda m: m.get("type") == kind) if isinstance(kind, str) else kind
        for i, m in enumerate(self.inbox):
            if match(m):
                return self.inbox.pop(i)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {kind!r} within {timeout}s; got {self.inbox[-5:]}")
            try:
                m = await self.recv(left)
            except TimeoutError:
                raise TimeoutError(f"no {kind!r} within {timeout}s; got {self.inbox[-5:]}") from None
            if match(m):
                return m
            self.inbox.append(m)

    async def request(self, msg: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send with a fresh ref and wait for the reply echoing it."""
        ref = next(self._refs)
        await self.send({**msg, "ref": ref})
        return await self.expect(lambda m: m.get("ref") == ref, timeout)

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Collect whatever arrives within `seconds`."""
        got: list[dict[str, Any]] = []
        try:
            while True:
                got.append(await self.recv(seconds))
        except TimeoutError:
            pass
        self.inbox.extend(got)
        return got

    async def close(self) -> None:
        await self.conn.close()


async def agent(server: ServerProcess | str, agent_id: str, center: str | None = None, **kw: Any) -> WsClient:
    return await WsClient.connect(server, "/ws/agent", token("agent", agent_id, center=center), **kw)


async def supervisor(
    server: ServerProcess | str, name: str = "sue", center: str | None = None, **kw: Any
) -> WsClient:
    return await WsClient.connect(server, "/ws/supervisor", token("supervisor", name, center=center), **kw)


async def sockets_of(server: ServerProcess, agent_id: str, conns: int, timeout: float = 5.0) -> None:
    """Wait until the server counts `conns` sockets of the agent in Redis.

    After `close()` the server releases the socket on its own time; a grace
    period runs from that release, so a test that then advances a driven
    clock waits for it first.
    """
    key = Keys(server.center_id).agent(agent_id)
    with redis_sync(server.redis_url) as client:
        deadline = time.monotonic() + timeout
        while int(client.hget(key, "conns") or 0) != conns:
            assert time.monotonic() < deadline, f"{agent_id} still has a socket count other than {conns}"
            await asyncio.sleep(0.01)


async def available(client: WsClient, status: str = "Available", reason: str = "") -> None:
    reply = await client.request({"type": "status.set", "status": status, "reason": reason})
    assert reply["type"] == "ok", reply


def post_work(
    server: ServerProcess,
    *,
    channel: str = "chat",
    queue: str = "support",
    skills: dict[str, int] | None = None,
    priority: int = 0,
    subject: str = "help",
    idem: str | None = None,
    center: str | None = None,
    **extra: Any,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token('service', 'crm', center=center)}"}
    if idem:
        headers["Idempotency-Key"] = idem
    body = {
        "channel": channel,
        "queue": queue,
        "skills": skills or {},
        "priority": priority,
        "subject": subject,
        **extra,
    }
    return http().post(f"{server.http}/api/v1/work", json=body, headers=headers, timeout=10)


def get_work(server: ServerProcess, work_id: str) -> dict[str, Any]:
    r = http().get(
        f"{server.http}/api/v1/work/{work_id}",
        headers={"Authorization": f"Bearer {token('service', 'crm')}"},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]
