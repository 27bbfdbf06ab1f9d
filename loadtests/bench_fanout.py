"""Wallboard fan-out benchmark: a presence change's trip to 100 wallboards.

Starts a private Redis and one `presence serve` process per flush interval
(``--flush 0.1,0.01``: the default PRESENCE_SUPERVISOR_FLUSH and a small
one), connects --agents agent sockets and --wallboards supervisor sockets,
then changes presence at --rate changes/s (agents alternate Available and
Away, one change in flight per agent) for --duration seconds.

Beside the latencies it prints, per change, the server's and Redis's CPU
(the server's also per frame delivered) and the frames each change cost
(to the agent's own socket, and to the wallboards), with the p99 of the
agent's own socket: a change's cost before any fan-out, and each frame's.

For each change: from the moment its ``status.set`` frame was written to the
moment the *last* wallboard decoded a view of that agent at that version (or
newer: the hub coalesces views per agent, newest ``ver`` wins). Also shown,
from the same run: the change's arrival at the agent's own socket (no
coalescing) and a websocket echo (supervisor ``ping`` -> ``pong``) as the
baseline.

The coalescing interval is a deliberate design choice: a wallboard gets at
most one ``agents`` frame per interval however many agents change, so a burst
costs each wallboard one frame. It bounds the fan-out latency from below (on
average half an interval, at worst a whole one), which is why the figure is
given for the default and for a small interval.

    python -m loadtests.bench_fanout --wallboards 100 --rate 500 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.common import (
    BENCH_CENTER,
    RawWs,
    RedisWork,
    Stack,
    cpu_seconds,
    ms,
    pct,
    raise_nofile,
    seed_agents,
    table,
    use_uvloop,
)

# The head of a msgpack `kpis` message as the server encodes it: a map whose
# first key is "type" (protocol.kpis builds it so).
_KPIS_HEAD = b"\xa4type\xa4kpis"


class BoardWs(RawWs):
    """A wallboard that does not decode the live KPIs (`kpis`, ~1 s apart,
    every fifth with every agent's row: ~100 KB for 500 agents). One load
    generator stands in for 100 wallboards: decoding 100 copies of each
    stalled it for 0.3-0.7 s every 5 s, which showed as the server's latency
    on every socket of the run. A real wallboard decodes its own, on its own
    machine; the server's cost of sending them is still in the run's CPU."""

    __slots__ = ()

    def on_frame(self, payload: bytes) -> None:
        if payload[1:11] == _KPIS_HEAD:
            return
        super().on_frame(payload)


async def run_load(stack: Stack, ids: list[str], a: argparse.Namespace) -> dict[str, Any]:
    host, port = stack.host_port
    mono = time.monotonic
    # sightings[aid][w] = [(ver, time)], in arrival order (ver never decreases)
    sightings: dict[str, list[list[tuple[int, float]]]] = {
        aid: [[] for _ in range(a.wallboards)] for aid in ids
    }
    sent_at: dict[str, float] = {}
    changes: list[tuple[str, int, float, float]] = []  # aid, ver, sent, seen by own socket
    idle: deque[str] = deque()
    pings: list[tuple[float, float]] = []
    errors: list[str] = []
    snaps = {"n": 0}
    frames = {"agents": 0, "boards": 0}  # frames decoded during the load
    next_status: dict[str, str] = {}

    def agent_handler(aid: str) -> Any:
        def on(m: dict[str, Any]) -> None:
            t = m.get("type")
            frames["agents"] += 1
            if t == "status":
                s = sent_at.pop(aid, None)
                if s is not None:
                    changes.append((aid, int(m.get("ver", 0)), s, mono()))
            elif t == "ok" and m.get("ref") == "c":
                idle.append(aid)
            elif t == "snapshot":
                snaps["n"] += 1
            elif t == "error":
                errors.append(f"{m.get('code')}: {m.get('message')}")

        return on

    def board_handler(w: int) -> Any:
        def on(m: dict[str, Any]) -> None:
            t = m.get("type")
            if t == "agents":
                frames["boards"] += 1
                now = mono()
                for v in m["agents"]:
                    per = sightings.get(v.get("agent_id"))
                    if per is not None:
                        per[w].append((int(v.get("ver", 0)), now))
            elif t == "pong":
                ts = m.get("ts")
                if ts is not None:
                    pings.append((ts, mono() - ts))
            elif t == "snapshot":
                snaps["n"] += 1

        return on

    agent_socks: dict[str, RawWs] = {}
    sem = asyncio.Semaphore(100)

    async def connect(path: str, handler: Any, kind: type[RawWs] = RawWs) -> RawWs:
        async with sem:
            return await kind.connect(host, port, path, handler)

    tok = {aid: stack.token("agent", aid) for aid in ids}
    socks = await asyncio.gather(*(connect(f"/ws/agent?token={tok[aid]}", agent_handler(aid)) for aid in ids))
    agent_socks = dict(zip(ids, socks, strict=True))
    sup = stack.token("supervisor", "wallboard")
    boards = await asyncio.gather(
        *(connect(f"/ws/supervisor?token={sup}", board_handler(w), BoardWs) for w in range(a.wallboards))
    )
    deadline = mono() + 60
    while snaps["n"] < len(ids) + a.wallboards and mono() < deadline:  # noqa: ASYNC110 - counters fed by protocol callbacks
        await asyncio.sleep(0.01)
    # everybody starts Away, so each change is a real one
    for aid, s in agent_socks.items():
        s.send({"type": "status.set", "status": "Away", "ref": "c"})
        next_status[aid] = "Available"
    while len(idle) < len(ids) and mono() < deadline:  # noqa: ASYNC110 - counters fed by protocol callbacks
        await asyncio.sleep(0.01)
    await asyncio.sleep(max(0.5, 3 * max(a.flush_list)))  # the initial views reach the boards
    for per in sightings.values():
        for lst in per:
            lst.clear()

    async def pinger() -> None:
        i = 0
        while True:
            boards[i % len(boards)].send({"type": "ping", "ts": mono()})
            i += 1
            await asyncio.sleep(1 / max(1.0, a.ping_rate))

    # This process keeps every sighting (millions of tuples by the end of a
    # run): the collector's full passes over them stalled the load
    # generator for 0.5-0.7 s every few seconds, and the stall showed as the
    # server's latency (own socket and wallboards alike). Nothing it keeps
    # is a cycle: collection is off for the load, on again after it.
    gc.collect()
    gc.disable()
    ping_task = asyncio.create_task(pinger())
    spy = stack.profile(a.profile, a.duration) if a.profile else None
    import psutil  # the load extra, as in bench_assign

    server = [psutil.Process(p) for p in stack.server_pids()]
    redis = [psutil.Process(stack.redis.pid)] if stack.redis and stack.redis.pid else []

    cpu0 = (cpu_seconds(server), cpu_seconds(redis))
    io0 = _syscalls(server)
    redis0 = RedisWork.read(stack.redis_url) if stack.redis_url else None
    for k in frames:
        frames[k] = 0
    t0 = mono()
    done = 0
    starved = 0
    lags: list[float] = []  # how late each of this loop's 1 ms sleeps woke up
    woke = t0
    while True:
        now = mono()
        lags.append(now - woke)
        if now - t0 >= a.duration:
            break
        due = int((now - t0) * a.rate) - done
        while due > 0:
            if not idle:
                starved += due
                done += due
                break
            aid = idle.popleft()
            st = next_status[aid]
            next_status[aid] = "Away" if st == "Available" else "Available"
            sent_at[aid] = mono()
            agent_socks[aid].send({"type": "status.set", "status": st, "ref": "c"})
            due -= 1
            done += 1
        slept = mono()
        await asyncio.sleep(0.001)
        woke = slept + 0.001
    t1 = mono()
    # the last changes' frames are counted, and their CPU with them
    await asyncio.sleep(max(1.0, 3 * max(a.flush_list)))
    cpu_server, cpu_redis = cpu_seconds(server) - cpu0[0], cpu_seconds(redis) - cpu0[1]
    io1 = _syscalls(server)
    redis_work = RedisWork.read(stack.redis_url).since(redis0) if stack.redis_url and redis0 else None
    counted = dict(frames)
    ping_task.cancel()
    gc.enable()
    if spy is not None:
        spy.wait(30)
    for s in [*agent_socks.values(), *boards]:
        s.close()

    last: list[float] = []
    first: list[float] = []
    worst_of: list[float | None] = []  # per change, in order
    missing = 0
    for aid, ver, sent, _own in changes:
        worst, best = 0.0, float("inf")
        for lst in sightings[aid]:
            i = bisect.bisect_left(lst, (ver, -1.0))
            if i == len(lst):
                worst = float("inf")
                break
            dt = lst[i][1] - sent
            worst, best = max(worst, dt), min(best, dt)
        if worst == float("inf"):
            missing += 1
            worst_of.append(None)
        else:
            last.append(worst)
            first.append(best)
            worst_of.append(worst)
    own_lat = [own - sent for _, _, sent, own in changes]
    if a.samples:
        # one line per change: when it was sent (s into the load), its own
        # socket's and its last wallboard's latency (ms; empty: never seen)
        with open(f"{a.samples}.{a.flush_now:g}.csv", "w") as f:  # noqa: ASYNC230 - after the load
            f.write("sent_s,own_ms,last_wallboard_ms\n")
            for (_aid, _ver, sent, own), lw in zip(changes, worst_of, strict=True):
                cell = "" if lw is None else f"{lw * 1e3:.2f}"
                f.write(f"{sent - t0:.4f},{(own - sent) * 1e3:.2f},{cell}\n")
    return {
        "changes": len(changes),
        "rate": len(changes) / (t1 - t0),
        "starved": starved,
        "missing": missing,
        "last": last,
        "first": first,
        "own": own_lat,
        "pings": [d for s, d in pings if t0 <= s <= t1],
        "errors": errors,
        "cpu_server": cpu_server,
        "cpu_redis": cpu_redis,
        "reads": io1[0] - io0[0],
        "writes": io1[1] - io0[1],
        "frames": counted,
        "lags": lags,
        "redis": redis_work,
    }


def _redis_work(work: RedisWork | None, n: int) -> str:
    """Redis's exact work per change: script calls (the changes' batched
    calls, the dispatcher's route.lua and the KPI tasks' reads) and the
    commands run, inside the scripts or not."""
    if work is None:
        return ""
    per = work.per(n)
    return f"; Redis per change: {per['script_calls']:.3f} script calls, {per['commands']:.1f} commands"


def _syscalls(procs: list[Any]) -> tuple[int, int]:
    """The read and write system calls the processes have made so far
    (Linux's /proc/<pid>/io; zeros where psutil cannot tell)."""
    reads = writes = 0
    for p in procs:
        try:
            io = p.io_counters()
        except (AttributeError, OSError):
            continue
        reads, writes = reads + io.read_count, writes + io.write_count
    return reads, writes


def _report_stalls(log: str, path: str) -> None:
    """Print how many stalls the server's watchdog logged (and the longest
    seen when reported), and write every report to `path`."""
    reports = [r for r in log.split("WARNING") if "event loop stalled" in r]
    lags = [float(r.split("stalled ", 1)[1].split(" ", 1)[0]) for r in reports]
    Path(path).write_text("\n".join(reports))
    longest = f", longest {max(lags):.0f} ms when reported" if lags else ""
    print(f"  event-loop stalls: {len(reports)}{longest} (reports in {path})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wallboards", type=int, default=100, help="supervisor sockets (default 100)")
    p.add_argument("--agents", type=int, default=500, help="agents whose status changes (default 500)")
    p.add_argument("--rate", type=float, default=500, help="presence changes per second (default 500)")
    p.add_argument("--duration", type=float, default=10, help="seconds of changes (default 10)")
    p.add_argument(
        "--flush",
        default="0.1,0.01",
        help="PRESENCE_SUPERVISOR_FLUSH values, comma-separated (default 0.1,0.01: the smallest allowed)",
    )
    p.add_argument("--ping-rate", type=float, default=100, help="baseline pings per second (default 100)")
    p.add_argument("--profile", help="py-spy the server during the load into this file (.svg, or .txt raw)")
    p.add_argument(
        "--stalls",
        type=float,
        metavar="MS",
        help="PRESENCE_STALL_MS for the server: count its event-loop stalls this long and write them to "
        "<--samples or /tmp/bench_fanout>.<flush>.stalls.txt (where the own socket's tail comes from)",
    )
    p.add_argument(
        "--samples",
        help="write every change's latencies with its time into <this>.<flush>.csv (where the tail falls)",
    )
    a = p.parse_args(argv)
    a.flush_list = [float(x) for x in a.flush.split(",") if x.strip()]
    raise_nofile()
    use_uvloop()
    rows: list[list[Any]] = [
        [
            "flush s",
            "changes/s",
            "to last wallboard p50",
            "p99",
            "max",
            "to first p50",
            "own socket p99",
            "ping->pong p50",
            "p99",
            "unseen",
        ]
    ]
    failed = False
    for flush in a.flush_list:
        a.flush_now = flush
        stack = Stack(
            center_body=BENCH_CENTER.format(weight=10, strategy="most_available", auto_accept="true"),
            env={
                "PRESENCE_SUPERVISOR_FLUSH": str(flush),
                **({"PRESENCE_STALL_MS": f"{a.stalls:g}"} if a.stalls else {}),
            },
        )
        try:
            stack.start()
            assert stack.redis_url is not None
            ids = [f"f{i:05d}" for i in range(a.agents)]
            asyncio.run(seed_agents(stack.redis_url, stack.center_id, ids, ["bench"]))
            r = asyncio.run(run_load(stack, ids, a))
            code, _ = stack.check()
            if a.stalls:
                _report_stalls(stack.logs(), f"{a.samples or '/tmp/bench_fanout'}.{flush:g}.stalls.txt")
        finally:
            stack.stop()
        failed |= code != 0 or bool(r["errors"]) or r["missing"] > 0
        rows.append(
            [
                f"{flush:g}",
                f"{r['rate']:.0f}",
                ms(pct(r["last"], 50)),
                ms(pct(r["last"], 99)),
                ms(max(r["last"]) if r["last"] else float("nan")),
                ms(pct(r["first"], 50)),
                ms(pct(r["own"], 99)),
                ms(pct(r["pings"], 50)),
                ms(pct(r["pings"], 99)),
                r["missing"],
            ]
        )
        n = max(1, r["changes"])
        nframes = r["frames"]["agents"] + r["frames"]["boards"]
        print(
            f"flush {flush:g}s: {r['changes']} changes, {r['starved']} skipped (no idle agent), "
            f"errors {len(r['errors'])}, presence check exit {code}\n"
            f"  CPU per change: server {r['cpu_server'] / n * 1e6:.0f} us, "
            f"Redis {r['cpu_redis'] / n * 1e6:.0f} us; "
            f"frames per change: {r['frames']['agents'] / n:.2f} to the agent, "
            f"{r['frames']['boards'] / n:.2f} to wallboards; "
            f"server CPU per frame {r['cpu_server'] / max(1, nframes) * 1e6:.1f} us; "
            f"the agent's own socket p99 {ms(pct(r['own'], 99))} ms\n"
            f"  server system calls per change (exact, unlike the CPU): {r['reads'] / n:.2f} reads, "
            f"{r['writes'] / n:.2f} writes{_redis_work(r['redis'], n)}\n"
            f"  the load generator's own loop (one process for every socket) woke late by "
            f"p99 {ms(pct(r['lags'], 99))} / max {ms(max(r['lags'], default=float('nan')))} ms: "
            f"a frame to any socket can wait that long in it before it is seen",
            flush=True,
        )
        for e in r["errors"][:3]:
            print(f"  error: {e}")
    print(
        f"\nbench_fanout: {a.wallboards} wallboards, {a.agents} agents, target {a.rate:.0f} changes/s "
        f"for {a.duration:.0f}s, one server process (latencies in ms)\n"
    )
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
