"""Locust load test of the presence hot path: intake, offers, agents, wallboards.

Three user classes behave like the real clients:

* `AgentUser`: an agent on ``/ws/agent`` (msgpack, websocket-client under
  gevent). Goes Available, accepts offers after a think time, sometimes
  declines one or lets it time out, wraps up and completes after a handle
  time, takes breaks, and now and then drops its connection and comes back
  (picking up its offers and work in hand from the snapshot).
* `IntakeUser`: posts work items over HTTP on every channel with a realistic
  mix of queues, skills and priorities; each item has an Idempotency-Key and
  network errors are retried with the same key. Now and then a caller hangs
  up (cancel).
* `SupervisorUser`: holds a wallboard socket on ``/ws/supervisor`` and counts
  the deltas it receives.

Custom metrics go through Locust's request event, so they appear in its
statistics, CSV files and web UI (request type ``METRIC``):

* ``intake→offer``: from the intake request being sent (``sent_at`` in the
  item's payload, wall clock) to the offer decoded at the agent's socket;
* ``offer→accept``: from ``offer.accept`` being sent to ``work.assigned``
  arriving (the think time is excluded: it is the agent's, not the server's);
* ``presence→wallboard``: from a status change's commit (the view's ``since``,
  set by the server's clock) to the view decoded at a wallboard.

Across machines these need synchronised clocks; on one machine they are exact.

Before the run the master (or the local runner) seeds queues and agents
through the admin API (`loadtests/seed.py`); tokens come from the server's
secret (``--presence-secret`` / PRESENCE_SECRET) or a tokens file written by
the seed CLI (``--tokens-file``). When the run stops, the master runs
``presence check`` against the server's Redis (REDIS_URL, PRESENCE_CONFIG;
or the embedded Redis of PRESENCE_DATA_DIR) and the process exits 1 on any
breach. See loadtests/README.md for headless, web UI and distributed runs.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
import msgpack
import websocket
from gevent.event import AsyncResult
from locust import FastHttpUser, User, between, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import seed as seeding
from presence.auth import mint

log = logging.getLogger("loadtest")
MSGPACK = "presence.v1.msgpack"
# ws errors that are a normal race in a contact center, not a server failure:
# an offer that timed out or was rescinded just before the agent answered
EXPECTED_CODES = {"conflict", "not_found", "not_yours"}

# channel -> share of traffic (about what a mid-size omni-channel center sees)
CHANNELS = (
    ("chat", 35),
    ("voice", 20),
    ("email", 15),
    ("sms", 10),
    ("social", 8),
    ("web", 8),
    ("video", 4),
)
QUEUE_MIX = (("lt-support", 50), ("lt-billing", 20), ("lt-sales", 20), ("lt-vip", 10))


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    g = parser.add_argument_group("presence")
    g.add_argument(
        "--presence-secret",
        default=os.environ.get("PRESENCE_SECRET", ""),
        help="the server's PRESENCE_SECRET, to seed and mint tokens (or use --tokens-file)",
    )
    g.add_argument("--tokens-file", default="", help="tokens written by `python -m loadtests.seed --out`")
    g.add_argument("--lt-agents", type=int, default=200, help="agents seeded and driven (default 200)")
    g.add_argument("--lt-prefix", default=seeding.PREFIX, help="agent id prefix (default lt)")
    g.add_argument("--lt-workers", type=int, default=1, help="locust workers, to split the agents")
    g.add_argument("--lt-no-seed", action="store_true", help="do not seed (already done by seed.py)")
    g.add_argument("--lt-no-check", action="store_true", help="skip `presence check` at the end")
    g.add_argument("--lt-handle", type=float, default=2.0, help="mean handle time in seconds (default 2)")
    g.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", ""),
        help="the server's Redis for `presence check` (default REDIS_URL; else the embedded one)",
    )
    g.add_argument(
        "--presence-config",
        default=os.environ.get("PRESENCE_CONFIG", ""),
        help="the server's center TOML for `presence check` (default PRESENCE_CONFIG)",
    )


# -- shared helpers ------------------------------------------------------------


class Tokens:
    """Where tokens come from: the secret, or a file from the seed CLI."""

    _file: dict[str, Any] | None = None

    @classmethod
    def _load(cls, env: Environment) -> dict[str, Any] | None:
        path = env.parsed_options.tokens_file if env.parsed_options else ""
        if path and cls._file is None:
            cls._file = json.loads(Path(path).read_text("utf-8"))
        return cls._file

    @classmethod
    def secret(cls, env: Environment) -> str:
        s: str = env.parsed_options.presence_secret if env.parsed_options else ""
        if not s and cls._load(env) is None:
            raise RuntimeError("set --presence-secret (PRESENCE_SECRET) or --tokens-file")
        return s

    @classmethod
    def agent(cls, env: Environment, aid: str) -> str:
        f = cls._load(env)
        if f is not None and aid in f["agents"]:
            return str(f["agents"][aid])
        return seeding.agent_token(cls.secret(env), aid)

    @classmethod
    def role(cls, env: Environment, role: str) -> str:
        f = cls._load(env)
        if f is not None:
            return str(f[role])
        sub = "loadtest" if role == "service" else "loadtest-sup"
        return mint(cls.secret(env), sub, role, 12 * 3600)


def metric(
    env: Environment, name: str, seconds: float, length: int = 0, exc: Exception | None = None
) -> None:
    env.events.request.fire(
        request_type="METRIC",
        name=name,
        response_time=max(0.0, seconds * 1000.0),
        response_length=length,
        exception=exc,
        context={},
    )


def weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def ws_url(host: str, path: str, token: str) -> str:
    base = host.replace("https://", "wss://").replace("http://", "ws://").rstrip("/")
    return f"{base}{path}?token={token}"


class PresenceSocket:
    """A msgpack websocket whose frames are read by one greenlet."""

    def __init__(self, env: Environment, url: str, on_message: Any, name: str, report: bool = True) -> None:
        self.env = env
        self.on_message = on_message
        self.closed = False
        t = time.time()
        try:
            self.ws = websocket.create_connection(
                url, subprotocols=[MSGPACK], timeout=15, enable_multithread=True
            )
            first = self._recv()
        except Exception as exc:
            if report:
                env.events.request.fire(
                    request_type="WS", name=name, response_time=(time.time() - t) * 1000,
                    response_length=0, exception=exc, context={},
                )  # fmt: skip
            raise
        if first is None or first.get("type") != "snapshot":
            err = ConnectionError(f"no snapshot, got {first!r}")
            self.ws.close()
            env.events.request.fire(
                request_type="WS", name=name, response_time=(time.time() - t) * 1000,
                response_length=0, exception=err, context={},
            )  # fmt: skip
            raise err
        env.events.request.fire(
            request_type="WS", name=name, response_time=(time.time() - t) * 1000,
            response_length=0, exception=None, context={},
        )  # fmt: skip
        self.snapshot = first
        self.ws.settimeout(None)
        self.reader = gevent.spawn(self._read)

    def _recv(self) -> dict[str, Any] | None:
        op, data = self.ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            raise ConnectionError(f"closed by the server: {code} {data[2:].decode('utf-8', 'replace')}")
        if op in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT):
            obj = msgpack.unpackb(data, raw=False)
            return obj if isinstance(obj, dict) else None
        return None

    def _read(self) -> None:
        while not self.closed:
            try:
                m = self._recv()
            except Exception:
                self.closed = True
                return
            if m is not None:
                try:
                    self.on_message(m)
                except Exception:
                    log.exception("message handler failed on %r", m.get("type"))

    def send(self, msg: dict[str, Any]) -> bool:
        if self.closed:
            return False
        try:
            self.ws.send(msgpack.packb(msg, use_bin_type=True), opcode=websocket.ABNF.OPCODE_BINARY)
            return True
        except Exception:
            self.closed = True
            return False

    def close(self, abrupt: bool = False) -> None:
        self.closed = True
        try:
            if abrupt and self.ws.sock is not None:
                self.ws.sock.close()  # no close frame: a network drop
            else:
                self.ws.close()
        except Exception:
            pass
        self.reader.kill(block=False)


# -- agents --------------------------------------------------------------------------


class AgentUser(User):
    """An agent on the agent panel (or a softphone): offers, work, breaks, drops."""

    weight = 6
    wait_time = between(1.0, 3.0)
    _counter = itertools.count()

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        n = opts.lt_agents if opts else 200
        workers = max(1, opts.lt_workers if opts else 1)
        widx = getattr(self.environment.runner, "worker_index", 0) or 0
        k = next(AgentUser._counter)
        # distinct agents per worker; more users than agents share agents (several tabs)
        ids = seeding.agent_ids(n, opts.lt_prefix if opts else seeding.PREFIX)
        self.agent_id = ids[(widx + k * workers) % n]
        self.rng = random.Random(f"{self.agent_id}-{k}")
        self.handle_mean = opts.lt_handle if opts else 2.0
        self._refs = itertools.count(1)
        self.pending: dict[int, AsyncResult] = {}
        self.accepting: dict[str, float] = {}
        self.offers: dict[str, dict[str, Any]] = {}
        self.busy: set[str] = set()
        self.sock: PresenceSocket | None = None
        self.connect()
        self.set_status("Available")

    def on_stop(self) -> None:
        if self.sock is not None:
            self.sock.close()

    # connection -------------------------------------------------------

    def connect(self) -> None:
        url = ws_url(self.host or "", "/ws/agent", Tokens.agent(self.environment, self.agent_id))
        for attempt in range(8):
            try:
                self.sock = PresenceSocket(
                    self.environment, url, self.on_message, "/ws/agent connect", report=attempt == 7
                )
                break
            except Exception:
                if attempt == 7:
                    raise
                gevent.sleep(0.25 * (attempt + 1))  # e.g. the master is still seeding
        assert self.sock is not None
        snap = self.sock.snapshot
        for o in snap.get("offers", []):
            self.on_offer(o, time.time(), measure=False)
        for w in snap.get("work", []):
            self.take(w["work_id"])

    def request(self, msg: dict[str, Any], name: str, timeout: float = 10.0) -> dict[str, Any] | None:
        """Send with a ref, wait for ok/error; report as a WS request."""
        if self.sock is None:
            return None
        ref = next(self._refs)
        res: AsyncResult = AsyncResult()
        self.pending[ref] = res
        t = time.time()
        if not self.sock.send({**msg, "ref": ref}):
            self.pending.pop(ref, None)
            return None  # the connection dropped; the reconnect picks things up
        try:
            reply: dict[str, Any] = res.get(timeout=timeout)
        except gevent.Timeout:
            reply = {"type": "error", "code": "timeout", "message": f"no reply within {timeout}s"}
        finally:
            self.pending.pop(ref, None)
        exc = None
        if reply.get("type") == "error" and reply.get("code") not in EXPECTED_CODES:
            exc = RuntimeError(f"{reply.get('code')}: {reply.get('message')}")
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=(time.time() - t) * 1000,
            response_length=0, exception=exc, context={},
        )  # fmt: skip
        return reply

    def set_status(self, status: str, reason: str = "") -> None:
        self.request({"type": "status.set", "status": status, "reason": reason}, f"status.set {status}")

    # events from the server --------------------------------------------

    def on_message(self, m: dict[str, Any]) -> None:
        t = m.get("type")
        if t == "offer":
            self.on_offer(m, time.time())
        elif t == "work.assigned":
            wid = m["work_id"]
            sent = self.accepting.pop(wid, None)
            if sent is not None:
                metric(self.environment, "offer→accept", time.time() - sent)
            self.offers.pop(wid, None)
            if m.get("via") == "auto":
                self.take(wid)
        elif t == "offer.rescinded":
            self.offers.pop(m["work_id"], None)
        elif t in ("ok", "error", "pong") and m.get("ref") in self.pending:
            self.pending[m["ref"]].set(m)

    def on_offer(self, m: dict[str, Any], now: float, measure: bool = True) -> None:
        wid = m["work_id"]
        sent = (m.get("payload") or {}).get("sent_at")
        if measure and isinstance(sent, int | float):
            metric(self.environment, "intake→offer", now - sent)
        self.offers[wid] = m
        gevent.spawn(self.answer, wid)

    def answer(self, wid: str) -> None:
        r = self.rng.random()
        if r < 0.05:
            return  # away from the desk: the push timeout rescinds it
        gevent.sleep(self.rng.uniform(0.1, 0.8))  # think time
        if wid not in self.offers:
            return  # rescinded meanwhile (timeout, Break)
        if r < 0.12:
            self.request({"type": "offer.decline", "work_id": wid, "reason": "busy"}, "offer.decline")
            return
        self.accepting[wid] = time.time()
        reply = self.request({"type": "offer.accept", "work_id": wid}, "offer.accept")
        if reply is None or reply.get("type") != "ok":
            self.accepting.pop(wid, None)
            return
        self.take(wid)

    def take(self, wid: str) -> None:
        if wid in self.busy:
            return
        self.busy.add(wid)
        gevent.spawn(self.handle, wid)

    def handle(self, wid: str) -> None:
        try:
            gevent.sleep(self.rng.expovariate(1.0 / self.handle_mean))
            if self.rng.random() < 0.5:
                self.request({"type": "work.wrapup", "work_id": wid}, "work.wrapup")
                gevent.sleep(self.rng.uniform(0.2, 1.0))
            self.request(
                {"type": "work.complete", "work_id": wid, "disposition": "resolved"}, "work.complete"
            )
        finally:
            self.busy.discard(wid)

    # what the agent does between offers ----------------------------------

    @task(20)
    def stay(self) -> None:
        if self.sock is None or self.sock.closed:
            self.reconnect()
        else:
            self.request({"type": "ping", "ts": time.time()}, "ping")

    @task(2)
    def take_a_break(self) -> None:
        self.set_status("Break", "Coffee")
        gevent.sleep(self.rng.uniform(1.0, 4.0))
        self.set_status("Available")

    @task(1)
    def drop_and_reconnect(self) -> None:
        if self.sock is not None:
            self.sock.close(abrupt=True)
        gevent.sleep(self.rng.uniform(0.1, 1.0))
        self.reconnect()

    def reconnect(self) -> None:
        for res in list(self.pending.values()):
            res.set({"type": "error", "code": "not_found", "message": "connection dropped"})
        self.offers.clear()
        self.connect()
        self.set_status("Available")


# -- intake -----------------------------------------------------------------------------


class IntakeUser(FastHttpUser):
    """A CTI, web form or CRM posting work items."""

    weight = 3
    wait_time = between(0.1, 0.6)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.auth = {"Authorization": f"Bearer {Tokens.role(self.environment, 'service')}"}
        self.recent: list[str] = []

    def item(self) -> dict[str, Any]:
        rng = self.rng
        skills: dict[str, int] = {"english": rng.randint(1, 3)}
        queue = weighted(rng, QUEUE_MIX)
        if queue == "lt-billing" and rng.random() < 0.6:
            skills["billing"] = rng.randint(1, 2)
        if rng.random() < 0.1:
            skills = {"spanish": rng.randint(1, 2)}
        if rng.random() < 0.05:
            skills["tech"] = 1
        n = rng.randint(1, 10**6)
        return {
            "channel": weighted(rng, CHANNELS),
            "queue": queue,
            "priority": rng.choices([0, 1, 5, 10], weights=[80, 10, 7, 3])[0],
            "skills": skills,
            "subject": rng.choice(["Where is my order?", "Invoice question", "Cancel my plan", "予約の変更"]),
            "customer": {"id": f"c{n}", "name": f"Customer {n}", "phone": f"+1555{n:07d}"},
            "payload": {"sent_at": time.time(), "source": "locust"},
        }

    @task(30)
    def post_work(self) -> None:
        body = self.item()
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        for attempt in range(3):
            body["payload"]["sent_at"] = time.time()
            with self.client.post(
                "/api/v1/work", json=body, headers=headers, name="POST /api/v1/work", catch_response=True
            ) as r:
                if r.status_code in (200, 201):
                    r.success()
                    self.recent = [r.json()["id"], *self.recent][:20]
                    return
                network = r.status_code == 0 or r.status_code >= 502
                if network and attempt < 2:
                    # retried below with the same key; shown apart, not as a failure
                    r.request_meta["name"] = "POST /api/v1/work (network error, retried)"
                    r.success()
                    gevent.sleep(0.2 * (attempt + 1))
                    continue
                r.failure(f"{r.status_code}: {r.text[:200] if r.text else r.error}")
                return

    @task(1)
    def caller_hangs_up(self) -> None:
        if not self.recent:
            return
        wid = self.recent.pop()
        with self.client.post(
            f"/api/v1/work/{wid}/cancel",
            json={"reason": "caller hung up"},
            headers=self.auth,
            name="POST /api/v1/work/{id}/cancel",
            catch_response=True,
        ) as r:
            # an item already completed or cancelled refuses: that is the rule, not a failure
            if r.status_code in (200, 409):
                r.success()
            else:
                r.failure(f"{r.status_code}: {r.text[:200] if r.text else r.error}")


# -- supervisors --------------------------------------------------------------------------


class SupervisorUser(User):
    """A wallboard: one socket, counting deltas and how fresh they are."""

    weight = 1
    wait_time = between(2.0, 5.0)

    def on_start(self) -> None:
        self.since: dict[str, int] = {}
        self.deltas = 0
        self.views = 0
        url = ws_url(self.host or "", "/ws/supervisor", Tokens.role(self.environment, "supervisor"))
        self.sock = PresenceSocket(self.environment, url, self.on_message, "/ws/supervisor connect")
        for a in self.sock.snapshot.get("agents", []):
            self.since[a["agent_id"]] = a.get("since", 0)

    def on_stop(self) -> None:
        self.sock.close()
        log.info("wallboard saw %d deltas, %d agent views", self.deltas, self.views)

    def on_message(self, m: dict[str, Any]) -> None:
        if m.get("type") != "agents":
            return
        now_ms = time.time() * 1000
        self.deltas += 1
        self.views += len(m["agents"])
        for v in m["agents"]:
            since = v.get("since", 0)
            if since and since != self.since.get(v["agent_id"]):
                self.since[v["agent_id"]] = since
                metric(self.environment, "presence→wallboard", (now_ms - since) / 1000)
        metric(self.environment, "wallboard delta (views)", 0, length=len(m["agents"]))

    @task
    def watch(self) -> None:
        if self.sock.closed:
            self.on_start()


# -- seeding before, invariants after --------------------------------------------------------


def _is_worker(env: Environment) -> bool:
    return isinstance(env.runner, WorkerRunner)


@events.test_start.add_listener
def _seed(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if _is_worker(environment) or opts is None or opts.lt_no_seed:
        return
    host = environment.host or opts.host
    t = time.time()
    try:
        seeding.seed(host, Tokens.role(environment, "service"), opts.lt_agents, opts.lt_prefix)
    except Exception:
        log.exception("seeding failed; the run cannot mean anything")
        environment.process_exit_code = 1
        raise
    log.info("seeded %d agents in %.1fs", opts.lt_agents, time.time() - t)


@events.test_stop.add_listener
def _check(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if _is_worker(environment) or opts is None or opts.lt_no_check:
        return
    env = dict(os.environ)
    if opts.redis_url:
        env["REDIS_URL"] = opts.redis_url
    if opts.presence_config:
        env["PRESENCE_CONFIG"] = opts.presence_config
    out = subprocess.run(
        [sys.executable, "-m", "presence", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    text = (out.stderr + out.stdout).strip()  # the verdict is the last line of stdout
    if out.returncode != 0:
        log.error("presence check FAILED (exit %d):\n%s", out.returncode, text)
        environment.process_exit_code = 1
    else:
        log.info("presence check: %s", text.splitlines()[-1] if text else "ok")
    print(f"presence check exit {out.returncode}: {text.splitlines()[-1] if text else ''}", flush=True)
