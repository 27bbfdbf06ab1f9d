"""Router benchmark: sustained assignments per second and intake-to-agent latency.

Starts a private Redis on a free port and `presence serve --workers W` against
it (or targets an existing pair with --url/--redis-url/--secret/--center),
seeds N agents in one auto-accept queue, connects them on real websockets
(msgpack) and makes them Available. A producer then posts work items over HTTP
at a target rate; every agent completes each item after --handle-ms, which
frees its capacity and wakes the router again.

Measured, in one run:

* intake -> agent: from the moment the producer wrote the HTTP request to the
  moment the agent's socket decoded the `work.assigned` (or `offer`) frame.
  It includes the HTTP request, `work_create.lua`, the dispatcher's wake-up
  and `route.lua`, the pub/sub hop, the hub's fan-out and the websocket send,
  plus the load generator's own scheduling delay on a shared CPU.
* baseline: a websocket echo through the same server stack (`ping` -> `pong`
  on agent sockets of this run), idle before the load and during it.
* sustained assignments/s over the steady part of the run (after --warmup).

After the run the agents drain their work and `presence check` verifies the
routing invariants; the script exits 1 on any breach (or on errors).

    python -m loadtests.bench_assign --agents 1000 --rate 5000 --duration 10

With `--centers M` the same agents and load are spread over M centers of
the one deployment (the server's own and M - 1 made with `PUT
/api/v1/centers/{center}`, each with the queue `bench`): agent i belongs
to center i mod M, and the producer posts item n to center n mod M with
that center's service token. With `--cluster` the centers then live on
several shards at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import multiprocessing as mp
import os
import sys
import time
import tomllib
from collections import deque
from collections.abc import Sequence
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson

from loadtests.common import (
    BENCH_CENTER,
    RawHttp,
    RawWs,
    RedisWork,
    Stack,
    ms,
    pct,
    raise_nofile,
    seed_agents,
    table,
    use_uvloop,
)
from presence.gcpause import GcPauses

QUEUE = "bench"
CHANNEL = "bench"


# -- the agents (one or more client processes) -------------------------------------


async def _wait_event(ev: MpEvent, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not ev.is_set():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def _agents(
    host: str,
    port: int,
    creds: list[tuple[str, str]],
    handle: float,
    ping_rate: float,
    out: Any,
    start: MpEvent,
    stop: MpEvent,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    mono = time.monotonic
    lat: list[tuple[float, float]] = []  # (intake time, latency)
    pings: list[tuple[float, float]] = []  # (sent, rtt)
    errors: list[str] = []
    st = {"held": 0, "ok": 0, "snap": 0, "last": 0.0, "assigned": 0, "seen": 0.0}
    socks: list[RawWs] = []

    def on_message_for(ws_ref: list[RawWs]) -> Any:
        def on_message(m: dict[str, Any]) -> None:
            t = m.get("type")
            st["seen"] = mono()
            if t == "work.assigned":
                now = mono()
                if m.get("via") == "auto":
                    sent = (m.get("payload") or {}).get("t")
                    if sent is not None:
                        lat.append((sent, now - sent))
                st["held"] += 1
                st["assigned"] += 1
                st["last"] = now
                loop.call_later(handle, ws_ref[0].send, {"type": "work.complete", "work_id": m["work_id"]})
            elif t == "offer":
                now = mono()
                sent = (m.get("payload") or {}).get("t")
                if sent is not None:
                    lat.append((sent, now - sent))
                ws_ref[0].send({"type": "offer.accept", "work_id": m["work_id"]})
            elif t == "work.updated":
                st["held"] -= 1
            elif t == "pong":
                sent = m.get("ts")
                if sent is not None:
                    pings.append((sent, mono() - sent))
            elif t == "ok":
                if m.get("ref") == "avail":
                    st["ok"] += 1
            elif t == "snapshot":
                st["snap"] += 1
            elif t == "error":
                if len(errors) < 20:
                    errors.append(f"{m.get('code')}: {m.get('message')}")
                else:
                    errors.append("")

        return on_message

    sem = asyncio.Semaphore(100)

    async def connect(aid: str, tok: str) -> None:
        ref: list[RawWs] = []
        async with sem:
            for attempt in range(5):
                try:
                    ws = await RawWs.connect(host, port, f"/ws/agent?token={tok}", on_message_for(ref))
                    break
                except (OSError, ConnectionError, TimeoutError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
        ref.append(ws)
        socks.append(ws)

    await asyncio.gather(*(connect(a, t) for a, t in creds))
    deadline = mono() + 60
    while st["snap"] < len(creds) and mono() < deadline:  # noqa: ASYNC110 - counters fed by protocol callbacks
        await asyncio.sleep(0.01)
    for ws in socks:
        ws.send({"type": "status.set", "status": "Available", "ref": "avail"})
    while st["ok"] < len(creds) and mono() < deadline:  # noqa: ASYNC110 - counters fed by protocol callbacks
        await asyncio.sleep(0.01)
    # quiet first: the login wave (status and load events of every agent)
    # must be over before the idle baseline and the load start
    while mono() - st["seen"] < 0.5 and mono() < deadline:  # noqa: ASYNC110 - fed by callbacks
        await asyncio.sleep(0.05)
    # A load generator's own pauses are counted as latency. Under load the
    # default collector thresholds made full collections of everything the
    # login built (89-131 ms at saturation with 1,000 sockets): freeze it and
    # collect rarely, as the server does (presence/app.py). The longest
    # collection during the load is reported.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    gc_pauses = GcPauses()
    gc_pauses.install()
    out.put(("ready", len(socks), st["ok"]))

    # pings round-robin over the agents, idle (before the load) and during it
    rr = itertools.cycle(socks)
    every = 1.0 / ping_rate if ping_rate > 0 else 0.0

    async def pinger() -> None:
        while every:
            next(rr).send({"type": "ping", "ts": mono()})
            await asyncio.sleep(every)

    ping_task = asyncio.create_task(pinger())
    await _wait_event(start, 120)
    await _wait_event(stop, 3600)
    ping_task.cancel()
    # drain: every item in hand completed, nothing arriving for a moment
    deadline = mono() + 20
    while mono() < deadline:
        if st["held"] == 0 and mono() - st["last"] > 0.5:
            break
        await asyncio.sleep(0.05)
    gc_pauses.uninstall()
    result = {
        "gc_max": gc_pauses.take_longest(),
        "lat": lat,
        "pings": pings,
        "errors": errors,
        "held": st["held"],
        "assigned": st["assigned"],
    }
    for ws in socks:
        ws.close()
    await asyncio.sleep(0.1)
    return result


def _agent_proc(
    host: str,
    port: int,
    creds: list[tuple[str, str]],
    handle: float,
    ping_rate: float,
    out: Any,
    start: MpEvent,
    stop: MpEvent,
) -> None:
    raise_nofile()
    use_uvloop()
    try:
        res = asyncio.run(_agents(host, port, creds, handle, ping_rate, out, start, stop))
        out.put(("result", res))
    except BaseException as exc:
        out.put(("failed", f"{type(exc).__name__}: {exc}"))
        raise


# -- the producer --------------------------------------------------------------------


async def produce(
    host: str,
    port: int,
    tokens: Sequence[str],
    rate: float,
    duration: float,
    conns: int,
    batch: int,
    subject: str,
) -> dict[str, Any]:
    """Post items at `rate`/s for `duration` s over `conns` keep-alive
    connections; request n with ``tokens[n % len(tokens)]`` (one per center)."""
    mono = time.monotonic
    pool = [await RawHttp.connect(host, port) for _ in range(conns)]
    free: deque[RawHttp] = deque(pool)
    auths = [[("Authorization", f"Bearer {token}")] for token in tokens]
    requests = itertools.count()
    ok_by = [0] * len(tokens)  # items accepted, per token (center)
    st = {"sent": 0, "ok": 0, "err": 0, "max_lag": 0, "stopping": 0}
    rtts: list[float] = []
    errors: list[str] = []
    backlog = 0
    path = "/api/v1/work:batch" if batch > 1 else "/api/v1/work"

    def item(now: float) -> dict[str, Any]:
        return {
            "channel": CHANNEL,
            "queue": QUEUE,
            "skills": {},
            "subject": subject,
            "payload": {"t": now},
        }

    def send(conn: RawHttp, n: int) -> None:
        now = mono()
        if batch > 1:
            body = orjson.dumps({"items": [item(now) for _ in range(n)]})
        else:
            body = orjson.dumps(item(now))
        st["sent"] += n
        to = next(requests) % len(auths)
        fut = conn.request("POST", path, body, auths[to])
        fut.add_done_callback(lambda f, c=conn, t=now, k=n, i=to: done(c, f, t, k, i))

    def done(conn: RawHttp, fut: asyncio.Future[tuple[int, bytes]], t: float, n: int, to: int) -> None:
        rtts.append(mono() - t)
        exc = fut.exception()
        if exc is not None:
            st["err"] += n
            if len(errors) < 10:
                errors.append(str(exc))
        else:
            status, body = fut.result()
            if status in (200, 201):
                st["ok"] += n
                ok_by[to] += n
            elif status == 207:
                res = orjson.loads(body).get("items", [])
                good = sum(1 for r in res if r.get("status") in (200, 201))
                st["ok"] += good
                ok_by[to] += good
                st["err"] += n - good
            else:
                st["err"] += n
                if len(errors) < 10:
                    errors.append(f"{status} {body[:200]!r}")
        # back in the pool even after an error: a connection lost is
        # replaced when next taken (`pump`), not dropped for the rest of the run
        free.append(conn)
        pump()

    reopening: set[asyncio.Task[None]] = set()

    async def reopen_and_send(old: RawHttp, n: int) -> None:
        conn = await RawHttp.connect(host, port)
        pool[pool.index(old)] = conn
        send(conn, n)

    def pump() -> None:
        nonlocal backlog
        while backlog > 0 and free and not st["stopping"]:
            n = min(backlog, batch) if batch > 1 else 1
            backlog -= n
            conn = free.popleft()
            if conn.closed:
                # the server closed it while idle: a new one takes its place
                task = asyncio.create_task(reopen_and_send(conn, n))
                reopening.add(task)
                task.add_done_callback(reopening.discard)
                continue
            send(conn, n)

    t0 = mono()
    scheduled = 0
    while True:
        now = mono()
        if now - t0 >= duration:
            break
        due = int((now - t0) * rate) - scheduled
        if due > 0:
            scheduled += due
            backlog += due
            st["max_lag"] = max(st["max_lag"], backlog)
            pump()
        await asyncio.sleep(0.001)
    elapsed = mono() - t0
    st["stopping"] = 1  # what is still in the backlog is reported as not sent in time
    # let requests in flight finish
    deadline = mono() + 10
    while len(free) < len(pool) and mono() < deadline:  # noqa: ASYNC110 - counters fed by protocol callbacks
        await asyncio.sleep(0.01)
    for c in pool:
        c.close()
    return {
        **st,
        "unsent": backlog,
        "scheduled": scheduled,
        "elapsed": elapsed,
        "t0": t0,
        "rtts": rtts,
        "errors": errors[:10],
        "ok_by": ok_by,
    }


# -- the run -------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used by each part of the stack between two readings."""

    def __init__(
        self,
        stack: Stack,
        agent_pids: list[int],
        redis_pids: list[int] | None = None,
        replica_pids: list[int] | None = None,
    ) -> None:
        import psutil

        if redis_pids is None:
            redis_pids = [stack.redis.pid] if stack.redis and stack.redis.pid else []
        self.procs: dict[str, list[Any]] = {
            "server": [psutil.Process(p) for p in stack.server_pids()],
            "redis": [psutil.Process(p) for p in redis_pids],
            "load-generator": [psutil.Process(p) for p in [os.getpid(), *agent_pids]],
            # of "redis": the replicas' share (a cluster's), apart
            "replicas": [psutil.Process(p) for p in replica_pids or []],
        }
        self.t0 = time.monotonic()
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        out = {}
        for name, procs in self.procs.items():
            total = 0.0
            for p in procs:
                with contextlib.suppress(Exception):
                    t = p.cpu_times()
                    total += t.user + t.system
            out[name] = total
        return out

    def used(self) -> dict[str, float]:
        now = self._read()
        res = {k: now[k] - self.start[k] for k in now if self.procs[k]}
        res["wall"] = time.monotonic() - self.t0
        return res


def _shard_url(url: str, center: str) -> str:
    """The URL of the primary that holds `center`'s keys where `url` names a
    cluster node; `url` itself for a standalone Redis."""
    from redis import Redis as SyncRedis
    from redis.cluster import RedisCluster as SyncCluster

    from presence.store.keys import Keys

    with SyncRedis.from_url(url) as r:
        if not int(r.info("cluster").get("cluster_enabled", 0) or 0):
            return url
    with SyncCluster.from_url(url) as c:
        node = c.get_node_from_key(Keys(center).prefix)
    return f"redis://{node.host}:{node.port}/0"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=1000, help="agents on websockets (default 1000)")
    p.add_argument("--rate", type=float, default=5000, help="items posted per second (default 5000)")
    p.add_argument("--duration", type=float, default=10, help="seconds of load (default 10)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds excluded from the figures (default 1)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    p.add_argument("--handle-ms", type=float, default=20, help="agent handle time per item (default 20)")
    p.add_argument("--capacity", type=int, default=10, help="items an agent can hold at once (default 10)")
    p.add_argument("--clients", type=int, default=1, help="load-generator processes for agents (default 1)")
    p.add_argument("--http-conns", type=int, default=32, help="producer keep-alive connections (default 32)")
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        help="items per request: 1 posts /api/v1/work, more posts /api/v1/work:batch (default 1)",
    )
    p.add_argument("--ping-rate", type=float, default=200, help="baseline pings per second (default 200)")
    p.add_argument("--no-auto-accept", action="store_true", help="offer, and accept at once, instead")
    p.add_argument("--url", help="target this server (http://host:port) instead of starting one")
    p.add_argument("--redis-url", help="the Redis of --url (or: use this Redis for the started server)")
    p.add_argument("--secret", help="the server's PRESENCE_SECRET (with --url)")
    p.add_argument("--center", help="the server's center id (with --url)")
    p.add_argument("--config", help="the server's PRESENCE_CONFIG (with --url; for presence check)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument(
        "--centers",
        type=int,
        default=1,
        help="spread the agents and the items over this many centers of the one deployment (default 1)",
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="compare: the same load on a standalone Redis, on one with a replica, on a local "
        "cluster (3 primaries with a replica each) without WAIT, and with WAIT, in alternating rounds",
    )
    p.add_argument(
        "--no-replica-row",
        action="store_true",
        help="--cluster: leave out the standalone Redis with one replica (the like for like of a "
        "cluster shard, its replica's CPU counted)",
    )
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of --cluster (default 2)")
    p.add_argument(
        "--no-wait-row",
        action="store_true",
        help="--cluster: leave out the cluster + WAIT 1 setup (standalone against cluster only)",
    )
    p.add_argument("--profile", help="py-spy a server process during the load (.svg, or .txt raw)")
    p.add_argument(
        "--samples",
        help="also write every latency sample to this CSV (seconds since the load began, ms): "
        "where in time the tail falls tells a periodic stall from queueing",
    )
    a = p.parse_args(argv)
    if a.cluster and (a.url or a.redis_url):
        p.error("--cluster starts its own Redis and cluster: leave out --url and --redis-url")
    if a.centers < 1 or a.centers > a.agents:
        p.error("--centers must be at least 1 and at most --agents (every center gets agents)")
    if a.centers > 1 and a.url:
        p.error("--centers makes centers on the server it starts: leave out --url")
    if a.url and not (a.redis_url and a.secret and a.center):
        p.error("--url needs --redis-url, --secret and --center (the queue 'bench' must be in its center)")
    return a


def _make_centers(stack: Stack, n: int, weight: int, no_auto_accept: bool) -> list[str]:
    """`n` more centers on the server, each with the bench queue and channel
    (`PUT /api/v1/centers/{center}`, the platform's); their ids."""
    doc = tomllib.loads(
        BENCH_CENTER.format(
            weight=weight, strategy="most_available", auto_accept="false" if no_auto_accept else "true"
        )
    )
    auth = {"Authorization": f"Bearer {stack.token('platform', 'bench', 3600)}"}
    ids = [f"{stack.center_id[:24]}-{i}" for i in range(1, n + 1)]
    with httpx.Client(base_url=stack.url or "", timeout=30) as http:
        for cid in ids:
            r = http.put(f"/api/v1/centers/{cid}", json=doc, headers=auth)
            if r.status_code not in (200, 201):
                raise RuntimeError(f"PUT /api/v1/centers/{cid}: {r.status_code} {r.text[:300]}")
    return ids


def run(
    a: argparse.Namespace, redis_pids: list[int] | None = None, replica_pids: list[int] | None = None
) -> dict[str, Any]:
    """One run; its figures, with "exit" (1 on a breach or errors).
    `redis_pids`: the Redis processes to meter when --redis-url names them."""
    raise_nofile()
    weight = 10
    stack = Stack(
        url=a.url,
        redis_url=a.redis_url,
        workers=a.workers,
        env=dict(getattr(a, "env", {})),
        center_body=BENCH_CENTER.format(
            weight=weight,
            strategy="most_available",
            auto_accept="false" if a.no_auto_accept else "true",
        ),
    )
    if a.secret:
        stack.secret = a.secret
    if a.center:
        stack.center_id = a.center
    if a.config:
        stack.config = Path(a.config)
    ids = [f"a{i:05d}" for i in range(a.agents)]
    procs: list[mp.process.BaseProcess] = []
    try:
        stack.start()  # starts only what --url / --redis-url did not name
        assert stack.redis_url is not None
        t = time.monotonic()
        # the server's own center (None: its tokens name no center) and the others
        others = _make_centers(stack, a.centers - 1, weight, a.no_auto_accept)
        centers: list[str | None] = [None, *others]
        center_of = {aid: centers[i % len(centers)] for i, aid in enumerate(ids)}
        for c in centers:
            mine = [aid for aid in ids if center_of[aid] == c]
            cid = c or stack.center_id
            asyncio.run(seed_agents(stack.redis_url, cid, mine, [QUEUE], a.capacity * weight))
        seed_s = time.monotonic() - t
        host, port = stack.host_port
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        start, stop = ctx.Event(), ctx.Event()
        k = max(1, a.clients)
        for i in range(k):
            creds = [(aid, stack.token("agent", aid, 7200, center_of[aid])) for aid in ids[i::k]]
            pr = ctx.Process(
                target=_agent_proc,
                args=(host, port, creds, a.handle_ms / 1000, a.ping_rate / k, out, start, stop),
                daemon=True,
            )
            pr.start()
            procs.append(pr)
        t = time.monotonic()
        ready = 0
        while ready < k:
            msg = out.get(timeout=180)
            if msg[0] == "failed":
                raise RuntimeError(f"an agent process failed: {msg[1]}")
            ready += 1
        connect_s = time.monotonic() - t
        if redis_pids is None:
            stack.compact_aof()
        time.sleep(1.0)  # idle baseline pings
        rewrites_before = stack.aof_rewrites() if redis_pids is None else 0
        cpu = CpuMeter(stack, [pr.pid for pr in procs if pr.pid is not None], redis_pids, replica_pids)
        # on a cluster: the primary that holds the center (the commands, the
        # script time), not the node the URL names
        work_url = _shard_url(stack.redis_url, stack.center_id) if redis_pids is not None else stack.redis_url
        redis0 = RedisWork.read(work_url)
        load_t0 = time.monotonic()
        load_wall = time.time()
        start.set()
        spy = stack.profile(a.profile, a.duration) if a.profile else None
        use_uvloop()
        prod = asyncio.run(
            produce(
                host,
                port,
                [stack.token("service", "bench", 7200, c) for c in centers],
                a.rate,
                a.duration,
                a.http_conns,
                a.batch,
                "benchmark item",
            )
        )
        load_t1 = time.monotonic()
        cpu_used = cpu.used()
        redis_work = RedisWork.read(work_url).since(redis0)
        rewrites = stack.aof_rewrites() - rewrites_before if redis_pids is None else 0
        stop.set()
        if spy is not None:
            spy.wait(30)
        results: list[dict[str, Any]] = []
        while len(results) < k:
            msg = out.get(timeout=120)
            if msg[0] == "failed":
                raise RuntimeError(f"an agent process failed: {msg[1]}")
            if msg[0] == "result":
                results.append(msg[1])
        for pr in procs:
            pr.join(10)
        code, check_out = stack.check(others)
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.kill()
        # the server's log goes with its run's files: its last traceback
        # first, so a 500 says what it was
        logged = stack.logs()
        if "Traceback" in logged:
            print("server log, last traceback:\n" + logged[logged.rindex("Traceback") :][-4000:])
        stack.stop()

    lo, hi = load_t0 + a.warmup, load_t1
    lat = [x for r in results for x in r["lat"]]
    steady = [d for s, d in lat if lo <= s <= hi]
    if a.samples:
        with open(a.samples, "w") as f:
            f.write(f"# load began at {load_wall:.3f} (Unix time)\nt_s,latency_ms\n")
            f.writelines(f"{s - load_t0:.4f},{d * 1000:.3f}\n" for s, d in sorted(lat))
    pings = [x for r in results for x in r["pings"]]
    idle = [d for s, d in pings if s < load_t0]
    busy = [d for s, d in pings if lo <= s <= hi]
    arrivals_steady = sum(1 for s, d in lat if lo <= s + d <= hi)
    window = max(1e-9, hi - lo)
    errors = [e for r in results for e in r["errors"]]
    assigned = sum(r["assigned"] for r in results)
    held = sum(r["held"] for r in results)
    rtts = prod["rtts"]
    fig = {
        "agents": a.agents,
        "workers": a.workers,
        "rate_target": a.rate,
        "duration": a.duration,
        "handle_ms": a.handle_ms,
        "batch": a.batch,
        "intake_rate": prod["ok"] / prod["elapsed"],
        "intake_errors": prod["err"],
        "unsent": prod["unsent"],
        "assign_rate": arrivals_steady / window,
        "assigned_total": assigned,
        "created_ok": prod["ok"],
        "created_by_center": prod["ok_by"],
        "lat_p50": pct(steady, 50),
        "lat_p99": pct(steady, 99),
        "lat_p999": pct(steady, 99.9),
        "lat_max": max(steady) if steady else float("nan"),
        "http_p50": pct(rtts, 50),
        "http_p99": pct(rtts, 99),
        "ping_idle_p50": pct(idle, 50),
        "ping_idle_p99": pct(idle, 99),
        "ping_load_p50": pct(busy, 50),
        "ping_load_p99": pct(busy, 99),
        "ws_errors": len(errors),
        "seed_s": seed_s,
        "connect_s": connect_s,
        "check_exit": code,
    }
    print(
        f"\nbench_assign: {a.agents} agents, {a.workers} server process(es), target {a.rate:.0f}/s "
        f"for {a.duration:.0f}s (first {a.warmup:.0f}s excluded), handle {a.handle_ms:.0f} ms, "
        f"batch {a.batch}, {k} agent client process(es)"
        + (f", {a.centers} centers (agents and items spread evenly)" if a.centers > 1 else "")
    )
    print(f"seeded in {seed_s:.1f}s, {a.agents} agents connected and Available in {connect_s:.1f}s\n")
    rows: list[list[Any]] = [
        ["measure", "value", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "samples"],
        ["intake accepted/s (HTTP 201)", f"{fig['intake_rate']:.0f}", "", "", "", "", prod["ok"]],
        ["assignments/s (steady)", f"{fig['assign_rate']:.0f}", "", "", "", "", arrivals_steady],
        [
            "intake -> work.assigned at agent",
            "",
            ms(fig["lat_p50"]),
            ms(fig["lat_p99"]),
            ms(fig["lat_p999"]),
            ms(fig["lat_max"]),
            len(steady),
        ],
        ["HTTP POST round trip", "", ms(fig["http_p50"]), ms(fig["http_p99"]), "", "", len(rtts)],
        [
            "baseline ws ping->pong, idle",
            "",
            ms(fig["ping_idle_p50"]),
            ms(fig["ping_idle_p99"]),
            ms(pct(idle, 99.9)),
            "",
            len(idle),
        ],
        [
            "baseline ws ping->pong, under load",
            "",
            ms(fig["ping_load_p50"]),
            ms(fig["ping_load_p99"]),
            ms(pct(busy, 99.9)),
            "",
            len(busy),
        ],
    ]
    print(table(rows))
    done_in_load = sum(1 for s, d in lat if load_t0 <= s + d <= load_t1)
    if done_in_load:
        parts = ", ".join(f"{k} {v / done_in_load * 1e6:.0f}" for k, v in cpu_used.items() if k != "wall")
        # "replicas" is inside "redis": counted once
        busy = sum(v for k, v in cpu_used.items() if k not in ("wall", "replicas"))
        busy_pct = busy / cpu_used["wall"] * 50
        print(
            f"\nCPU per assignment during the load, microseconds: {parts} "
            f"(these processes kept {busy_pct:.0f}% of the 2 cores busy)"
        )
        fig["cpu_us_per_assignment"] = {k: v / done_in_load * 1e6 for k, v in cpu_used.items()}
        # exact counts beside the noisy CPU times: a new design's cost shows in any run
        per = redis_work.per(done_in_load)
        top = ", ".join(f"{k} {v / done_in_load:.1f}" for k, v in list(redis_work.commands().items())[:8])
        print(
            f"Redis work per assignment during the load: {per['script_calls']:.2f} script calls, "
            f"{per['commands']:.1f} commands ({top}), {per['aof_bytes']:.0f} bytes of AOF, "
            f"{per['script_us']:.0f} us in scripts"
        )
        fig["redis_per_assignment"] = per
    print(
        f"\nitems created {prod['ok']}, assigned {assigned}, still held after drain {held}, "
        f"intake errors {prod['err']}, not sent in time {prod['unsent']}, "
        f"producer backlog max {prod['max_lag']}, websocket errors {len(errors)}, "
        f"Redis AOF rewrites during the load {rewrites}, "
        f"longest collection in an agent process {max(r['gc_max'] for r in results) * 1000:.1f} ms"
    )
    fig["aof_rewrites"] = rewrites
    for e in (prod["errors"] + [e for e in errors if e])[:5]:
        print(f"  error: {e}")
    # one summary line per center checked (the last line alone named only the last center)
    verdicts = [ln for ln in check_out.splitlines() if ln.startswith("all invariants") or "breach(es)" in ln]
    print(f"presence check: {'; '.join(verdicts or check_out.splitlines()[-1:]) or '?'} (exit {code})")
    if a.json:
        Path(a.json).write_text(json.dumps(fig, indent=2) + "\n")
    failed = code != 0 or prod["err"] > 0 or any(errors) or assigned == 0
    fig["exit"] = 1 if failed else 0
    return fig


# -- standalone against cluster ------------------------------------------------------

# (label, on what Redis, server environment): WAIT is what the cluster's
# replicas cost on top of the cluster itself, so it is measured on its own.
# "replica": a standalone Redis with one replica, the cluster shard's like
# for like (3 primaries with 1 replica each): replication paid on both
# sides, without WAIT as the cluster row it is set against.
SETUPS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("standalone", "bare", {}),
    ("standalone + replica", "replica", {"PRESENCE_REDIS_WAIT_REPLICAS": "0"}),
    ("cluster, no WAIT", "cluster", {"PRESENCE_REDIS_WAIT_REPLICAS": "0"}),
    ("cluster + WAIT 1", "cluster", {"PRESENCE_REDIS_WAIT_REPLICAS": "auto"}),
)
REPLICA_ROW = "standalone + replica"


def _profile_path(path: str, label: str, rnd: int) -> str:
    """`path` with the setup and the round before its suffix (a.svg -> a.cluster-no-wait.1.svg)."""
    p = Path(path)
    slug = "-".join("".join(c if c.isalnum() else " " for c in label).split())
    return str(p.with_name(f"{p.stem}.{slug}.{rnd + 1}{p.suffix}"))


def compare_cluster(a: argparse.Namespace) -> int:
    """The same load on a standalone Redis, on a standalone Redis with one
    replica, and on a local cluster (3 primaries, 1 replica each;
    tests/cluster.py), without and with WAIT, in alternating rounds of one
    run: CPU per assignment and p99."""
    import copy
    import statistics
    import tempfile

    from loadtests.common import ReplicatedRedis
    from tests.cluster import LocalCluster

    setups = [
        s
        for s in SETUPS
        if not (a.no_wait_row and "WAIT 1" in s[0]) and not (a.no_replica_row and s[0] == REPLICA_ROW)
    ]
    rows: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in setups}
    code = 0
    # the nodes keep an AOF as the standalone Redis does: without one a
    # primary answers sooner, the batches of the hot path get smaller and
    # the cluster pays for more script calls per assignment, not for being
    # a cluster
    with contextlib.ExitStack() as up:
        cluster = up.enter_context(
            LocalCluster(Path(tempfile.mkdtemp(prefix="presence-bench-cluster-")), aof=True)
        )
        pids = [n.proc.pid for n in cluster.nodes if n.proc is not None]
        primaries = {n.port for n in cluster.primaries()}
        replicas = [n.proc.pid for n in cluster.nodes if n.proc is not None and n.port not in primaries]
        pair = None
        if not a.no_replica_row:
            pair = up.enter_context(ReplicatedRedis(Path(tempfile.mkdtemp(prefix="presence-bench-replica-"))))
        # (Redis URL, its processes metered, of them the replicas): None for
        # the bare standalone, which each run starts and meters itself
        where: dict[str, tuple[str | None, list[int] | None, list[int] | None]] = {
            "bare": (None, None, None),
            "cluster": (cluster.url, pids, replicas),
        }
        if pair is not None:
            where["replica"] = (pair.url, [pair.primary_pid, pair.replica_pid], [pair.replica_pid])
        for rnd in range(a.rounds):
            for label, kind, env in setups:
                sub = copy.copy(a)
                sub.env, sub.json, sub.samples = env, None, None
                # one profile per setup and round: the cluster's cost is read
                # from two profiles side by side (standalone, cluster)
                sub.profile = _profile_path(a.profile, label, rnd) if a.profile else None
                sub.redis_url, redis_pids, replica_pids = where[kind]
                print(f"\n=== round {rnd + 1}/{a.rounds}: {label}")
                fig = run(sub, redis_pids, replica_pids)
                code |= fig["exit"]
                rows[label].append(fig)

    def med(figs: list[dict[str, Any]], f: Any) -> float:
        return float(statistics.median(f(x) for x in figs))

    def cpu(part: str) -> Any:
        return lambda x: x.get("cpu_us_per_assignment", {}).get(part, float("nan"))

    def total(x: dict[str, Any]) -> float:
        c = x.get("cpu_us_per_assignment", {})
        return float(c.get("server", 0) + c.get("redis", 0))

    base = med(rows["standalone"], total)
    # the like-for-like base: replication paid by the standalone side too
    paired = med(rows[REPLICA_ROW], total) if rows.get(REPLICA_ROW) else 0.0

    def versus(t: float, b: float) -> str:
        return f"{(t / b - 1) * 100:+.0f} %" if b else ""

    table_rows: list[list[Any]] = [
        [
            "setup",
            "assign/s",
            "p50 ms",
            "p99 ms",
            "server µs",
            "redis µs",
            "of it replicas µs",
            "server+redis µs",
            "vs standalone",
            "vs standalone + replica",
            "Redis commands",
        ]
    ]
    summary = {}
    for label, figs in rows.items():
        t = med(figs, total)
        summary[label] = {
            "assign_rate": med(figs, lambda x: x["assign_rate"]),
            "lat_p50_ms": med(figs, lambda x: x["lat_p50"]) * 1000,
            "lat_p99_ms": med(figs, lambda x: x["lat_p99"]) * 1000,
            "server_us": med(figs, cpu("server")),
            "redis_us": med(figs, cpu("redis")),
            "replicas_us": med(figs, lambda x: x.get("cpu_us_per_assignment", {}).get("replicas", 0.0)),
            "total_us": t,
            # exact, unlike the CPU times: the cluster's (summed over its
            # primaries) must equal standalone's, the same scripts running
            "redis_commands": med(figs, lambda x: x.get("redis_per_assignment", {}).get("commands", 0.0)),
        }
        s_ = summary[label]
        table_rows.append(
            [
                label,
                f"{s_['assign_rate']:.0f}",
                f"{s_['lat_p50_ms']:.1f}",
                f"{s_['lat_p99_ms']:.1f}",
                f"{s_['server_us']:.0f}",
                f"{s_['redis_us']:.0f}",
                f"{s_['replicas_us']:.0f}",
                f"{t:.0f}",
                versus(t, base) if label != "standalone" else "",
                versus(t, paired) if label.startswith("cluster") else "",
                f"{s_['redis_commands']:.1f}",
            ]
        )
    print(
        f"\nbench_assign --cluster: {a.agents} agents, {a.rate:.0f}/s for {a.duration:.0f}s, "
        f"{a.rounds} alternating round(s), medians (redis: every Redis process metered, "
        "the replicas included: the cluster's six nodes, the standalone's primary and replica)"
    )
    print(table(table_rows))
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.cluster:
        return compare_cluster(a)
    return int(run(a)["exit"])


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    os._exit(130)
