"""`presence serve` as an operator runs it: health and readiness, several
workers on one port, bad settings failing at start naming the variable, and
the embedded mode (no REDIS_URL: a private Redis, a secret file, demo links,
data surviving a restart; `presence check` and `presence token` on it, and
refusing a folder with no data). What `serve` prints is right the first
time: each link once, only once the port is bound, a port in use named, and
every worker's log lines."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from presence.store.keys import Keys
from tests.harness import DEFAULT_CENTER, ServerProcess, WsClient, agent, token, write_center
from tests.helpers import free_port
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]


def keys_of(server: ServerProcess) -> Keys:
    return Keys(server.center_id)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRESENCE_", "REDIS_URL"))}
    env.update(extra)
    return env


def request(method: str, url: str, **kw: Any) -> httpx.Response:
    """A blocking request (the server under test is another process)."""
    return httpx.request(method, url, timeout=kw.pop("timeout", 8), **kw)


def presence(
    *args: str, env: dict[str, str], timeout: float = 30, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    if cwd is not None:  # this checkout's presence, whatever the folder
        env = {**env, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "presence", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_health_and_readiness(server: ServerProcess) -> None:
    r = request("GET", f"{server.http}/healthz", timeout=5)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = request("GET", f"{server.http}/readyz", timeout=5)
    assert (r.status_code, r.json()) == (200, {"status": "ready"})


async def test_two_workers_share_the_port(redis_server: str, server_factory: ServerFactory) -> None:
    server = server_factory(workers=2)
    k = keys_of(server)
    with redis.Redis.from_url(redis_server) as r:
        # each worker runs its own lifespan: one pub/sub listener each
        for _ in range(200):
            if r.pubsub_shardnumsub(k.events_channel)[0][1] >= 2:
                break
            await asyncio.sleep(0.05)
        assert r.pubsub_shardnumsub(k.events_channel)[0][1] == 2
    for _ in range(5):
        assert request("GET", f"{server.http}/readyz", timeout=5).status_code == 200
    # sockets land on both workers (a socket's lease names its process)
    processes: set[str] = set()
    clients: list[WsClient] = []
    for _ in range(40):
        clients.append(await agent(server, "alice"))
        with redis.Redis.from_url(redis_server, decode_responses=True) as r:
            processes = {m.split("|")[1].split("-")[0] for m in r.zrange(k.leases, 0, -1)}
        if len(processes) == 2:
            break
    assert len(processes) == 2, processes
    # and every tab on either worker hears a change made on the other
    reply = await clients[0].request({"type": "status.set", "status": "Available"})
    assert reply["type"] == "ok"
    for c in clients:
        await c.expect(lambda m: m["type"] == "status" and m["status"] == "Available")


@pytest.mark.parametrize(
    ("env", "args", "needle"),
    [
        ({"PRESENCE_PORT": "eighty"}, [], "PRESENCE_PORT"),
        ({"PRESENCE_GRACE_SECONDS": "-3"}, [], "PRESENCE_GRACE_SECONDS"),
        ({"REDIS_URL": "localhost:6379"}, [], "REDIS_URL"),
        ({}, ["--port", "70000"], "--port"),
        ({}, ["--host", "bad host"], "--host"),
        ({"PRESENCE_HOST": "http://x/"}, [], "PRESENCE_HOST"),
    ],
)
def test_bad_setting_fails_at_start(
    tmp_path: Path, env: dict[str, str], args: list[str], needle: str
) -> None:
    out = presence("serve", *args, env=clean_env(PRESENCE_DATA_DIR=str(tmp_path), **env))
    assert out.returncode == 2, out
    assert needle in out.stderr and "configuration error" in out.stderr
    assert not (tmp_path / "redis").exists()  # failed before starting anything


def test_bad_center_file_fails_at_start(tmp_path: Path) -> None:
    cfg, _ = write_center(tmp_path / "center.toml", DEFAULT_CENTER + '\n[channels.chat]\nweight = "heavy"\n')
    out = presence("serve", env=clean_env(PRESENCE_DATA_DIR=str(tmp_path), PRESENCE_CONFIG=str(cfg)))
    assert out.returncode == 2
    assert "channels.chat.weight" in out.stderr and str(cfg) in out.stderr


class Embedded:
    """`presence serve [args]` with no REDIS_URL and no PRESENCE_SECRET."""

    def __init__(self, data: Path, config: Path | None, *args: str) -> None:
        self.data = data
        self.config = config
        self.args = args
        self.port = free_port()
        self.log = data.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = clean_env(PRESENCE_DATA_DIR=str(self.data))
        if self.config is not None:
            env["PRESENCE_CONFIG"] = str(self.config)
        return env

    def spawn(self) -> None:
        self.data.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "presence", "serve", "--port", str(self.port), *self.args],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for(self, done: Callable[[str], bool], timeout: float = 30, poll: float = 0.05) -> str:
        """The output so far, once `done` holds for it."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            out = self.log.read_text("utf-8", "replace")
            if done(out):
                return out
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}:\n{out}"
            assert time.monotonic() < deadline, f"not within {timeout}s:\n{out}"
            time.sleep(poll)

    def start(self) -> str:
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if request("GET", f"{self.http}/readyz", timeout=1).status_code == 200:
                    return self.log.read_text()
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready:\n{self.log.read_text()}")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


async def test_embedded_mode(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg, _ = write_center(tmp_path / "center.toml")
    first = Embedded(data, cfg)
    second = Embedded(data, cfg)
    try:
        out = first.start()
        secret_file = data / "secret"
        assert secret_file.is_file() and oct(secret_file.stat().st_mode & 0o777) == "0o600"
        secret = secret_file.read_text().strip()
        assert len(secret) >= 32
        assert "created a new signing secret" in out
        assert f"embedded Redis: unix://{data / 'redis' / 'redis.sock'}" in out
        links = re.search(r"agent panel \(alice\): (\S+)/agent#token=(\S+)", out)
        wall = re.search(r"wallboard: +(\S+)/wallboard#token=(\S+)", out)
        assert links and wall, out
        assert links.group(1) == f"http://localhost:{first.port}"
        # the printed links work
        panel = await WsClient.connect(first.ws, "/ws/agent", links.group(2))
        assert panel.snapshot["agent"]["agent_id"] == "alice"
        board = await WsClient.connect(first.ws, "/ws/supervisor", wall.group(2))
        assert {a["agent_id"] for a in board.snapshot["agents"]} == {"alice", "bob"}
        await panel.close()
        await board.close()
        sup = {"Authorization": f"Bearer {token('supervisor', 'sue', secret=secret)}"}
        r = request(
            "PUT", f"{first.http}/api/v1/agents/carol", json={"queues": ["support"]}, headers=sup, timeout=5
        )
        assert r.status_code == 201, r.text
        state = json.loads((data / "redis" / "embedded.json").read_text())
        assert first.stop() == 0
        assert not (data / "redis" / "embedded.json").exists()  # its Redis stopped with it
        with pytest.raises(ProcessLookupError):
            os.kill(state["pid"], 0)

        # `presence check` on the same data folder, no REDIS_URL
        check = presence("check", env=first.env())
        assert check.returncode == 0, check
        assert "all invariants hold" in check.stdout

        # the whole thing again: same secret, same data
        out = second.start()
        assert "created a new signing secret" not in out
        assert secret_file.read_text().strip() == secret
        r = request("GET", f"{second.http}/api/v1/agents/carol", headers=sup, timeout=5)
        assert r.status_code == 200 and r.json()["queues"] == ["support"]

        # `presence token` signs with the data folder's secret
        tok = presence("token", "--role", "agent", "--sub", "alice", env=second.env())
        assert tok.returncode == 0, tok
        alice = await WsClient.connect(second.ws, "/ws/agent", tok.stdout.strip())
        assert alice.snapshot["agent"]["agent_id"] == "alice"
        await alice.close()

        # `presence check` while the server runs shares its Redis and leaves it running
        check = presence("check", env=second.env())
        assert check.returncode == 0 and "all invariants hold" in check.stdout, check
        assert request("GET", f"{second.http}/readyz").status_code == 200

        # readiness follows Redis; health does not
        pid = json.loads((data / "redis" / "embedded.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while request("GET", f"{second.http}/readyz", timeout=8).status_code != 503:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        r = request("GET", f"{second.http}/readyz", timeout=8)
        assert r.headers["content-type"] == "application/problem+json"
        assert request("GET", f"{second.http}/healthz", timeout=5).status_code == 200
    finally:
        for e in (first, second):
            if e.proc is not None:
                e.stop()


LINK = re.compile(r"^(agent panel \(\w+\)|wallboard): +(\S+)#token=(\S+)$", re.M)


async def test_demo_prints_each_link_once_and_only_once_the_port_is_bound(tmp_path: Path) -> None:
    serve = Embedded(tmp_path / "data", None, "--demo")
    try:
        serve.spawn()
        # poll often: the moment the first link shows, its port must take connections
        serve.wait_for(lambda out: "#token=" in out, poll=0.005)
        socket.create_connection(("127.0.0.1", serve.port), timeout=5).close()
        out = serve.wait_for(lambda out: "demo running" in out)
        assert f"new data folder {serve.data}" in out
        links = LINK.findall(out)
        labels = [label for label, _, _ in links]
        assert labels == ["agent panel (alice)", "agent panel (hanako)", "wallboard"], out
        assert out.count("#token=") == 3, out
        base = f"http://localhost:{serve.port}"
        assert [url for _, url, _ in links] == [f"{base}/agent", f"{base}/agent", f"{base}/wallboard"]
        # and each link works: the free agents' panels and the wallboard
        for (_, _, tok), agent_id in zip(links[:2], ("alice", "hanako"), strict=True):
            panel = await WsClient.connect(serve.ws, "/ws/agent", tok)
            assert panel.snapshot["agent"]["agent_id"] == agent_id
            await panel.close()
        board = await WsClient.connect(serve.ws, "/ws/supervisor", links[2][2])
        assert {"alice", "hanako", "bob"} <= {a["agent_id"] for a in board.snapshot["agents"]}
        await board.close()
    finally:
        serve.stop()


def test_a_port_in_use_stops_serve_before_it_prints_a_link(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = presence(
            "serve", "--demo", "--port", str(port), env=clean_env(PRESENCE_DATA_DIR=str(tmp_path / "data"))
        )
    assert out.returncode == 2, out
    assert f"port {port} is already in use" in out.stderr and "--port or PRESENCE_PORT" in out.stderr
    assert "token=" not in out.stdout + out.stderr
    assert not (tmp_path / "data").exists()  # stopped before starting anything


def test_every_worker_logs_that_it_is_ready_and_one_runs_the_demo(tmp_path: Path) -> None:
    serve = Embedded(tmp_path / "data", None, "--demo", "--workers", "2")
    try:
        serve.spawn()
        out = serve.wait_for(
            lambda out: out.count("presence ready: center default") == 2 and "demo running" in out, timeout=60
        )
        assert re.search(
            r"INFO presence\.demo: demo running: \d+ simulated agents; free for you: alice, hanako", out
        ), out
        assert out.count("#token=") == 3, out  # the links once, not once per worker
        assert request("GET", f"{serve.http}/readyz").status_code == 200
    finally:
        code = serve.stop()
    assert code == 0, serve.log.read_text()
    assert out.count("demo running") == 1, out


async def test_check_and_token_refuse_a_data_folder_with_no_data(tmp_path: Path) -> None:
    cfg, cid = write_center(tmp_path / "center.toml")
    server = Embedded(tmp_path / "server" / "data", cfg)
    empty = tmp_path / "empty"
    empty.mkdir()
    try:
        out = server.start()
        assert f"new data folder {server.data}" in out  # serve alone may start one, and says so

        # from an empty folder, with nothing saying where the server's data is
        check = presence("check", env=clean_env(), cwd=empty)
        assert check.returncode == 2, check
        assert f"{empty / 'var' / 'redis'} holds no embedded Redis data" in check.stderr
        assert "PRESENCE_DATA_DIR" in check.stderr and "REDIS_URL" in check.stderr
        assert "invariants" not in check.stdout
        tok = presence("token", "--role", "agent", "--sub", "alice", env=clean_env(), cwd=empty)
        assert tok.returncode == 2 and tok.stdout == "", tok
        assert str(empty / "var" / "secret") in tok.stderr
        assert "PRESENCE_DATA_DIR" in tok.stderr and "PRESENCE_SECRET" in tok.stderr
        assert list(empty.iterdir()) == []  # looked, and left nothing behind

        # the server's Redis, but a center it does not serve (the shipped example's)
        url = json.loads((server.data / "redis" / "embedded.json").read_text())["url"]
        wrong = presence("check", env=clean_env(REDIS_URL=url), cwd=empty)
        assert wrong.returncode == 2, wrong
        assert "center 'default' has no data in the Redis at" in wrong.stderr and "--center" in wrong.stderr

        # pointed at the server's data, both do their job
        here = clean_env(PRESENCE_DATA_DIR=str(server.data), PRESENCE_CONFIG=str(cfg))
        check = presence("check", env=here, cwd=empty)
        assert check.returncode == 0 and f"all invariants hold in center {cid}" in check.stdout, check
        tok = presence("token", "--role", "agent", "--sub", "alice", env=here, cwd=empty)
        assert tok.returncode == 0, tok
        alice = await WsClient.connect(server.ws, "/ws/agent", tok.stdout.strip())
        assert alice.snapshot["agent"]["agent_id"] == "alice"
        await alice.close()
        assert presence("check", env=clean_env(REDIS_URL=url, PRESENCE_CONFIG=str(cfg))).returncode == 0
    finally:
        server.stop()


async def test_dispatcher_stops_even_when_woken_as_it_is_cancelled(redis_server: str) -> None:
    """Shutdown must not hang: a wake-up racing the cancel used to be swallowed
    by asyncio.wait_for on Python 3.11, and stop() then waited forever."""
    from presence.router.dispatcher import Dispatcher
    from presence.store import Store
    from presence.store.client import redis_client

    client = redis_client(redis_server)
    try:
        for _ in range(20):
            dispatcher = Dispatcher(Store(client, "stoptest"))
            dispatcher.start()
            await asyncio.sleep(0.01)
            dispatcher.wake(["support"])  # the event completes as the task is cancelled
            stopping = asyncio.create_task(dispatcher.stop())
            done, _ = await asyncio.wait({stopping}, timeout=2)
            if not done:
                stopping.cancel()  # a second cancel gets it out; the test still fails
            assert done, "the dispatcher ignored its cancellation"
    finally:
        await client.aclose()
