"""Many centers on one process: what idle centers cost.

Starts a private Redis and ONE `presence serve` process, then measures, in
the same run, the CPU of the server process and of Redis together (and the
Redis commands they exchange) while everything is idle:

1. **baseline**: the default center alone, with `--agents` connected idle
   agents;
2. **many**: `--centers` centers (the default one and `--centers - 1`
   created through ``PUT /api/v1/centers/{center}``), each with `--agents`
   connected idle agents.

Each window is `--seconds` long and starts `--settle` seconds after the
last socket connected (so that every center has gone quiet: its loops then
tick at PRESENCE_IDLE_INTERVAL). The figure the issue asks for is the
"many" row's CPU, as a percentage of one core; its target is at most 10 %.
Commands per second are a count, not a timing, so they do not depend on how
busy the machine is.

    python -m loadtests.bench_centers --centers 200 --agents 5 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil
from redis import Redis as SyncRedis

from loadtests.common import RawWs, Stack, cpu_seconds, raise_nofile, table
from presence.auth import mint

CENTER = """
[[queues]]
name = "support"
"""


def _doc(agents: int) -> dict[str, Any]:
    return {
        "queues": [{"name": "support"}],
        "agents": [{"id": f"a{i}", "queues": ["support"]} for i in range(agents)],
    }


def _commands(url: str) -> int:
    with SyncRedis.from_url(url) as r:
        return int(r.info("stats")["total_commands_processed"])


async def _connect(stack: Stack, centers: list[str | None], agents: int, socks: list[RawWs]) -> None:
    """Connect every agent; each socket joins `socks` (and its keep-alive) at once."""
    host, port = stack.host_port
    sem = asyncio.Semaphore(50)

    async def one(center: str | None, aid: str) -> None:
        tok = mint(stack.secret, aid, "agent", 3600, center=center)
        got: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_message(msg: Any) -> None:
            if isinstance(msg, dict) and msg.get("type") == "snapshot" and not got.done():
                got.set_result(None)

        async with sem:
            ws = await RawWs.connect(host, port, f"/ws/agent?token={tok}", on_message)
            await asyncio.wait_for(got, 30)
        socks.append(ws)

    await asyncio.gather(*(one(c, f"a{i}") for c in centers for i in range(agents)))


async def _keepalive(socks: list[RawWs], stop: asyncio.Event) -> None:
    """A ping per socket every 20 s (the server closes sockets silent for 60 s)."""
    while not stop.is_set():
        try:
            async with asyncio.timeout(20):
                await stop.wait()
        except TimeoutError:
            for s in socks:
                if s.is_open:
                    s.send({"type": "ping", "ts": int(time.time() * 1000)})


def _calls(url: str) -> dict[str, int]:
    with SyncRedis.from_url(url) as r:
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in r.info("commandstats").items()}


BREAKDOWN: list[str] = []


def _measure(stack: Stack, procs: list[psutil.Process], seconds: float) -> tuple[float, float]:
    assert stack.redis_url is not None
    calls0 = _calls(stack.redis_url)
    c0, n0, t0 = cpu_seconds(procs), _commands(stack.redis_url), time.monotonic()
    time.sleep(seconds)
    c1, n1, t1 = cpu_seconds(procs), _commands(stack.redis_url), time.monotonic()
    calls1 = _calls(stack.redis_url)
    rates = {k: (v - calls0.get(k, 0)) / (t1 - t0) for k, v in calls1.items()}
    top = sorted(((r, k) for k, r in rates.items() if r > 0), reverse=True)[:8]
    BREAKDOWN.append(", ".join(f"{k} {r:.1f}/s" for r, k in top))
    return 100 * (c1 - c0) / (t1 - t0), (n1 - n0) / (t1 - t0)


async def _window(
    stack: Stack, procs: list[psutil.Process], settle: float, seconds: float
) -> tuple[float, float]:
    await asyncio.sleep(settle)
    return await asyncio.to_thread(_measure, stack, procs, seconds)


async def main_async(args: argparse.Namespace) -> int:
    raise_nofile(65536)
    stack = Stack(
        center_body=CENTER
        + "".join(f'\n[[agents]]\nid = "a{i}"\nqueues = ["support"]\n' for i in range(args.agents)),
        env={"PRESENCE_IDLE_INTERVAL": str(args.idle)},
    ).start()
    rows: list[list[Any]] = [
        ["run", "centers", "sockets", "server+Redis CPU (% of one core)", "Redis commands/s"]
    ]
    stop = asyncio.Event()
    socks: list[RawWs] = []
    keep = asyncio.create_task(_keepalive(socks, stop))
    try:
        assert stack.redis is not None and stack.redis.pid and stack.server is not None
        procs = [psutil.Process(pid) for pid in stack.server_pids()] + [psutil.Process(stack.redis.pid)]
        await _connect(stack, [None], args.agents, socks)
        cpu, cmds = await _window(stack, procs, args.settle, args.seconds)
        rows.append(["baseline", 1, len(socks), f"{cpu:.1f}", f"{cmds:.0f}"])

        platform = mint(stack.secret, "ops", "platform", 3600)
        names = [f"c{i:04d}" for i in range(args.centers - 1)]
        async with httpx.AsyncClient(base_url=stack.url or "", timeout=30) as http:
            for name in names:
                r = await http.put(
                    f"/api/v1/centers/{name}",
                    json=_doc(args.agents),
                    headers={"Authorization": f"Bearer {platform}"},
                )
                r.raise_for_status()
        await _connect(stack, list(names), args.agents, socks)
        cpu, cmds = await _window(stack, procs, args.settle, args.seconds)
        rows.append(["many", args.centers, len(socks), f"{cpu:.1f}", f"{cmds:.0f}"])
        alive = sum(1 for s in socks if s.is_open)
        print(table(rows))
        for name, line in zip(("baseline", "many"), BREAKDOWN, strict=False):
            print(f"{name}: {line}")
        print(f"sockets still open at the end: {alive} of {len(socks)}")
        verdict = float(rows[-1][3]) <= args.target
        print(
            f"target: at most {args.target:.0f} % of one core with {args.centers} idle centers: "
            f"{'met' if verdict else 'MISSED'}"
        )
        if alive != len(socks):
            print("server log (end):\n" + stack.logs()[-3000:])
        return 0 if alive == len(socks) else 1
    finally:
        stop.set()
        await keep
        for s in socks:
            s.abort()
        stack.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--centers", type=int, default=200)
    p.add_argument("--agents", type=int, default=5, help="connected idle agents per center")
    p.add_argument("--seconds", type=float, default=30.0, help="each measuring window")
    p.add_argument(
        "--settle", type=float, default=15.0, help="wait after the last connect (centers go quiet)"
    )
    p.add_argument("--idle", type=float, default=2.0, help="PRESENCE_IDLE_INTERVAL for the server")
    p.add_argument("--target", type=float, default=10.0)
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
