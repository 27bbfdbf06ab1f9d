"""Connection benchmark: memory per idle agent socket, and a reconnect storm.

Starts a private Redis and ONE `presence serve` process, seeds --agents agents,
and from --clients load-generator processes:

1. connects every agent (handshake, token check, ``conn_open.lua``, snapshot)
   and leaves them idle; the server process's RSS before (after a small
   warm-up) and after, divided by the number of sockets, is the memory per
   idle connection; then, for --idle seconds with no traffic but the
   websocket keep-alive pings, the CPU of the server and of Redis together
   (percent of one core: the idle cost of that many connected agents);
2. drops every socket at once (no close frame: a network blip), waits for
   the server to notice, then reconnects all of them as fast as the clients
   can: connections per second from the first reconnect to the last
   snapshot received.

The open-files limit is raised (RLIMIT_NOFILE) for this process, the server
and the clients, which inherit it.

    python -m loadtests.bench_connections --agents 10000 --clients 4
    python -m loadtests.bench_connections --agents 1000 --clients 1 --idle 30   # the idle cost
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from loadtests.common import (
    BENCH_CENTER,
    RawWs,
    Stack,
    raise_nofile,
    seed_agents,
    table,
    use_uvloop,
)


async def _client(host: str, port: int, creds: list[str], inflight: int, cmd: Any, out: Any) -> None:
    mono = time.monotonic
    socks: list[RawWs] = []
    errors: list[str] = []

    async def connect_all() -> tuple[float, float, int]:
        sem = asyncio.Semaphore(inflight)
        t0 = mono()
        done = {"n": 0}

        async def one(tok: str) -> None:
            # connected = the snapshot arrived; a refused or dropped attempt
            # (e.g. 1013 when the server's Redis pool is saturated) is retried
            # like a real client would, after a short backoff
            async with sem:
                for attempt in range(6):
                    snap: asyncio.Future[None] = asyncio.get_running_loop().create_future()

                    def on(m: dict[str, Any], snap: asyncio.Future[None] = snap) -> None:
                        if m.get("type") == "snapshot" and not snap.done():
                            snap.set_result(None)

                    try:
                        ws = await RawWs.connect(host, port, f"/ws/agent?token={tok}", on, timeout=60)
                        await asyncio.wait({snap, ws.closed}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
                        if snap.done():
                            socks.append(ws)
                            done["n"] += 1
                            return
                        ws.abort()
                        raise ConnectionError("closed before the snapshot")
                    except (OSError, ConnectionError, TimeoutError) as exc:
                        if attempt == 5:
                            errors.append(f"{type(exc).__name__}: {exc}")
                            return
                        await asyncio.sleep(0.1 * (attempt + 1))

        await asyncio.gather(*(one(t) for t in creds))
        return t0, mono(), done["n"]

    loop = asyncio.get_running_loop()
    while True:
        what = await loop.run_in_executor(None, cmd.get)
        if what == "connect":
            t0, t1, n = await connect_all()
            out.put(("connected", t0, t1, n, errors[:5]))
        elif what == "drop":
            for ws in socks:
                ws.abort()
            socks.clear()
            await asyncio.sleep(0.2)
            out.put(("dropped",))
        elif what == "quit":
            for ws in socks:
                ws.close()
            await asyncio.sleep(0.2)
            out.put(("bye",))
            return


def _client_proc(host: str, port: int, creds: list[str], inflight: int, cmd: Any, out: Any) -> None:
    raise_nofile()
    use_uvloop()
    asyncio.run(_client(host, port, creds, inflight, cmd, out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=10000, help="agent sockets (default 10000)")
    p.add_argument("--clients", type=int, default=4, help="load-generator processes (default 4)")
    p.add_argument("--inflight", type=int, default=200, help="handshakes in flight per client (default 200)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds idle before reading RSS (default 3)")
    p.add_argument(
        "--idle", type=float, default=10.0, help="seconds of idle CPU measured once connected (default 10)"
    )
    p.add_argument("--profile", help="py-spy the server during the reconnect storm (.svg, or .txt raw)")
    a = p.parse_args(argv)
    limit = raise_nofile(max(65536, a.agents * 2 + 1024))
    if limit < a.agents + 1024:
        print(f"open-files limit is {limit}; raise the hard limit (ulimit -Hn) for {a.agents} sockets")
        return 2
    stack = Stack(
        center_body=BENCH_CENTER.format(weight=10, strategy="most_available", auto_accept="true"),
        # the drop test waits for the server to notice dead sockets, not for leases
        env={"PRESENCE_HEARTBEAT_TIMEOUT": "600"},
    )
    ctx = mp.get_context("fork")
    procs: list[Any] = []
    cmds: list[Any] = []
    out = ctx.Queue()
    rows: list[list[Any]] = [["measure", "value", "target"]]
    failed = False
    try:
        stack.start()
        assert stack.redis_url is not None
        ids = [f"c{i:05d}" for i in range(a.agents)]
        asyncio.run(seed_agents(stack.redis_url, stack.center_id, ids, ["bench"]))
        server = psutil.Process(stack.server_pids()[0])
        redis = psutil.Process(stack.redis.pid) if stack.redis and stack.redis.pid else None
        host, port = stack.host_port
        k = max(1, a.clients)
        toks = [stack.token("agent", aid, 7200) for aid in ids]
        for i in range(k):
            q = ctx.Queue()
            pr = ctx.Process(
                target=_client_proc, args=(host, port, toks[i::k], a.inflight, q, out), daemon=True
            )
            pr.start()
            procs.append(pr)
            cmds.append(q)
        gc.collect()

        def phase(what: str, expect: str) -> list[tuple[Any, ...]]:
            for q in cmds:
                q.put(what)
            got = [out.get(timeout=300) for _ in range(k)]
            assert all(g[0] == expect for g in got), got
            return got

        time.sleep(a.settle)
        rss0 = server.memory_info().rss
        got = phase("connect", "connected")
        t0 = min(g[1] for g in got)
        t1 = max(g[2] for g in got)
        n = sum(g[3] for g in got)
        errs = [e for g in got for e in g[4]]
        time.sleep(a.settle)
        rss1 = server.memory_info().rss
        per = (rss1 - rss0) / max(1, n)
        rows.append(["agents connected (snapshot received)", f"{n}", f"{a.agents}"])
        rows.append(["server RSS idle, before", f"{rss0 / 2**20:.1f} MiB", ""])
        rows.append(["server RSS with all connected", f"{rss1 / 2**20:.1f} MiB", ""])
        rows.append(["memory per idle agent connection", f"{per / 1024:.1f} KiB", "<= 40 KB"])
        rows.append(["first connect rate", f"{n / (t1 - t0):.0f} conn/s", ""])
        if a.idle > 0:
            procs_idle = [server, *([redis] if redis is not None else [])]
            cpu0 = [sum(p.cpu_times()[:2]) for p in procs_idle]
            w0 = time.monotonic()
            time.sleep(a.idle)
            wall = time.monotonic() - w0
            used = [sum(p.cpu_times()[:2]) - c for p, c in zip(procs_idle, cpu0, strict=True)]
            rows.append(
                [
                    f"idle CPU, {n} agents connected, {wall:.0f} s: server + Redis",
                    f"{100 * sum(used) / wall:.2f} % of one core "
                    f"({100 * used[0] / wall:.2f} + {100 * sum(used[1:]) / wall:.2f})",
                    "<= 3 % (1,000 agents)",
                ]
            )
        phase("drop", "dropped")
        time.sleep(a.settle)  # the server sees the resets and runs conn_close for each
        spy = stack.profile(a.profile, 8) if a.profile else None
        got = phase("connect", "connected")
        if spy is not None:
            spy.wait(30)
        t0 = min(g[1] for g in got)
        t1 = max(g[2] for g in got)
        n2 = sum(g[3] for g in got)
        errs += [e for g in got for e in g[4]]
        rows.append(["reconnected after a drop of all sockets", f"{n2}", f"{a.agents}"])
        rows.append(["reconnect rate", f"{n2 / (t1 - t0):.0f} conn/s", ">= 1500 conn/s"])
        rows.append(["reconnect storm duration", f"{t1 - t0:.2f} s", ""])
        rss2 = server.memory_info().rss
        rows.append(["server RSS after the storm", f"{rss2 / 2**20:.1f} MiB", ""])
        phase("quit", "bye")
        code, check_out = stack.check()
        failed = code != 0 or n < a.agents or n2 < a.agents
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.kill()
        stack.stop()
    print(f"\nbench_connections: {a.agents} agents, {k} client processes, one server process\n")
    print(table(rows))
    for e in errs[:5]:
        print(f"  error: {e}")
    print(f"presence check: {check_out.splitlines()[-1] if check_out else '?'} (exit {code})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
