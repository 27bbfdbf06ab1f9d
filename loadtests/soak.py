"""Soak test: does a server that runs for a long time stay flat?

N agents (default 1,000) and W wallboards (default 20) on one `presence
serve`, R items/s (default 200) posted for D minutes (default 20), with
random disconnects (an agent socket aborted and reconnected every few
seconds). A short retention is set for the run (PRESENCE_RETENTION_DAYS,
fractional), so finished items expire while it runs, and a short one for
the raw event streams (PRESENCE_HISTORY_DAYS) with the roll-up in parts of
a minute (PRESENCE_ROLLUP_MINUTES), so the streams are rolled up and
trimmed while it runs too; the trim keeps PRESENCE_CLOCK_MARGIN_SECONDS
behind the roll-up's cursor, 30 s here (the server and Redis share one
host's clock), not the default 5 minutes, so the streams are full within
the warm-up.

Every sample interval (default 60 s) it records the server's RSS, Redis
``used_memory`` and the part of it the raw event streams take, the AOF size
(``aof_current_size``), the server's longest GC pause of the last minute
(its ``presence_gc_pause_max_seconds`` on /metrics), the load generator's
own, the p99 intake-to-offer latency of that interval and the load
average; writes them to a CSV and draws a PNG (a tiny pure-Python PNG
writer, no matplotlib). At the end it checks the targets (after the first
5 samples, RSS and used_memory grow by less than 5 %; every later p99
within 1.5x the p99 of the first 5 samples' latencies) and runs the invariant checker (`presence check`). With
``--census`` it also writes, after each sample, Redis's keys, keys without
a TTL and bytes by key family (``work:*:history``) to ``<out>.keys.jsonl``.

    python loadtests/soak.py                       # the full run (~22 min)
    python loadtests/soak.py --agents 200 --rate 50 --minutes 5 --out /tmp/soak

Not part of the default test suite; tests/integration/test_loadtests_smoke.py
runs it for a few seconds. Exit code 1 when a target or the checker fails.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import os
import random
import re
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from redis import Redis as SyncRedis

from loadtests.common import RawHttp, RawWs, Stack, pct, raise_nofile, seed_agents, use_uvloop
from presence.gcpause import GcPauses

QUEUE = "soak"
CENTER = """
[channels.soak]
weight = 10
cap = 0

[[queues]]
name = "soak"
strategy = "most_available"
auto_accept = false
push_timeout = 30
wrapup_seconds = 0
"""
FIELDS = [
    "minute",
    "rss_mb",
    "redis_used_mb",
    "redis_streams_mb",
    "aof_mb",
    "server_gc_pause_max_ms",
    "loadgen_gc_pause_max_ms",
    "p99_ms",
    "offers",
    "posted",
    "errors",
    "agents_open",
    "server_closed",
    "load1",
]
# the raw event streams: kept PRESENCE_HISTORY_DAYS (--history-days) and
# never trimmed past the roll-up's cursor less the clock margin
# (--clock-margin-seconds), so they fill for that long and then stay flat;
# measured apart from the rest
STREAMS = ("stream:events", "stream:status")


def server_gc_max_ms(base_url: str) -> float:
    """The server's longest GC pause of the last minute, from its /metrics
    (presence_gc_pause_max_seconds; the max over its processes)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"{base_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return float("nan")
    for fam in text_string_to_metric_families(text):
        if fam.name == "presence_gc_pause_max_seconds":
            return round(max((smp.value for smp in fam.samples), default=0.0) * 1000, 1)
    return float("nan")


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# -- what Redis holds, by key family ------------------------------------------------

_ID = re.compile(r"\d|^.{24,}$")  # an id, a ref, a date: one family whatever its value


def family(key: bytes, prefix: str) -> str:
    """`work:*:history` for `presence:{c}:work:1a2b:history`: ids become `*`."""
    rest = key.decode("utf-8", "replace").removeprefix(prefix)
    return ":".join("*" if _ID.search(part) else part for part in rest.split(":"))


def census(redis: SyncRedis, prefix: str, sample: int = 20) -> dict[str, dict[str, Any]]:
    """Per key family: keys, keys with no TTL (every key asked), and bytes
    (MEMORY USAGE of up to `sample` keys, scaled to the family's count;
    streams measured in full)."""
    fams: dict[str, list[bytes]] = {}
    for k in redis.scan_iter(match=f"{prefix}*", count=2000):
        fams.setdefault(family(k, prefix), []).append(k)
    out: dict[str, dict[str, Any]] = {}
    for fam, ks in sorted(fams.items()):
        no_ttl = 0
        for i in range(0, len(ks), 5000):
            with redis.pipeline(transaction=False) as pipe:
                for k in ks[i : i + 5000]:
                    pipe.pttl(k)
                no_ttl += sum(1 for t in pipe.execute() if t == -1)
        picked = random.sample(ks, min(sample, len(ks)))
        with redis.pipeline(transaction=False) as pipe:
            pipe.type(picked[0])
            for k in picked:
                pipe.memory_usage(k, samples=0 if fam.startswith("stream") else 5)
            kind, *sizes = pipe.execute()
        out[fam] = {
            "type": kind.decode(),
            "keys": len(ks),
            "no_ttl": no_ttl,
            "mb": round(len(ks) * sum(s or 0 for s in sizes) / len(picked) / 2**20, 3),
        }
    return out


# -- a tiny PNG writer ---------------------------------------------------------------


def _png(path: Path, w: int, h: int, px: bytearray) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + bytes(px[y * w * 3 : (y + 1) * w * 3]) for y in range(h))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


COLOURS = {
    "rss_mb": (200, 40, 40),
    "redis_used_mb": (40, 90, 200),
    "aof_mb": (40, 160, 60),
    "p99_ms": (230, 140, 0),
    "server_gc_pause_max_ms": (130, 60, 170),
}


def plot(path: Path, rows: list[dict[str, float]]) -> None:
    """One panel per series (each scaled to its own 0..max), samples on x; the
    legend is the colour order of COLOURS (documented in RELIABILITY.md)."""
    w, ph, pad = 640, 90, 10
    series = list(COLOURS)
    h = pad + len(series) * (ph + pad)
    px = bytearray(b"\xff" * (w * h * 3))

    def dot(x: int, y: int, c: tuple[int, int, int]) -> None:
        if 0 <= x < w and 0 <= y < h:
            i = (y * w + x) * 3
            px[i : i + 3] = bytes(c)

    n = max(2, len(rows))
    for k, name in enumerate(series):
        top = pad + k * (ph + pad)
        for x in range(pad, w - pad):  # the panel's frame: base line and top line
            dot(x, top + ph, (0, 0, 0))
            dot(x, top, (220, 220, 220))
        vals = [float(r[name]) for r in rows]
        hi = max([*vals, 1e-9])
        pts = [
            (pad + int(i * (w - 2 * pad - 1) / (n - 1)), top + ph - int(v / hi * (ph - 2)))
            for i, v in enumerate(vals)
        ]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for s in range(steps + 1):
                x, y = x0 + (x1 - x0) * s // steps, y0 + (y1 - y0) * s // steps
                for dx in (0, 1):
                    for dy in (0, 1):
                        dot(x + dx, y + dy, COLOURS[name])
        for x, y in pts:
            for dx in range(-2, 3):
                for dy in range(-2, 3):
                    dot(x + dx, y + dy, COLOURS[name])
    _png(path, w, h, px)


# -- the run -------------------------------------------------------------------------


async def soak(a: argparse.Namespace, stack: Stack, ids: list[str]) -> tuple[list[dict[str, float]], float]:
    """The samples, and the p99 of every intake-to-offer of the first `warm`
    samples taken together (the p99 target's baseline)."""
    loop = asyncio.get_running_loop()
    mono = time.monotonic
    host, port = stack.host_port
    lat: list[float] = []
    st = {"offers": 0, "posted": 0, "errors": 0, "server_closed": 0}
    socks: dict[str, RawWs] = {}
    gc_pauses = GcPauses()

    def complete(ws: RawWs, wid: str) -> None:
        if ws.is_open:
            ws.send({"type": "work.complete", "work_id": wid})

    def on_message_for(aid: str) -> Any:
        def on_message(m: dict[str, Any]) -> None:
            t = m.get("type")
            ws = socks.get(aid)
            if ws is None:
                return
            if t == "offer":
                sent = (m.get("payload") or {}).get("t")
                if sent is not None:
                    lat.append(mono() - sent)
                st["offers"] += 1
                ws.send({"type": "offer.accept", "work_id": m["work_id"]})
            elif t == "work.assigned":
                wid = m["work_id"]
                loop.call_later(a.handle, complete, ws, wid)
            elif t == "snapshot":
                ws.send({"type": "status.set", "status": "Available"})
            elif t == "error" and m.get("code") not in ("not_found", "conflict"):
                st["errors"] += 1

        return on_message

    sem = asyncio.Semaphore(50)

    connecting: set[str] = set()

    async def connect(aid: str) -> None:
        if aid in connecting:  # the heartbeat and a random disconnect at once: one socket
            return
        connecting.add(aid)
        try:
            async with sem:
                for attempt in range(10):
                    try:
                        tok = stack.token("agent", aid, 7200)
                        socks[aid] = await RawWs.connect(
                            host, port, f"/ws/agent?token={tok}", on_message_for(aid)
                        )
                        return
                    except (OSError, ConnectionError, TimeoutError):
                        await asyncio.sleep(0.2 * (attempt + 1))
        finally:
            connecting.discard(aid)

    await asyncio.gather(*(connect(aid) for aid in ids))
    boards: list[RawWs] = []

    async def board(i: int) -> RawWs:
        tok = stack.token("supervisor", f"board{i}", 7200)
        return await RawWs.connect(host, port, f"/ws/supervisor?token={tok}", lambda m: None)

    boards += [await board(i) for i in range(a.wallboards)]

    gc_pauses.install()
    http = [await RawHttp.connect(host, port) for _ in range(4)]
    auth = [("Authorization", f"Bearer {stack.token('service', 'soak', 7200)}")]
    stop_at = mono() + a.minutes * 60

    async def producer(conn: RawHttp, rate: float) -> None:
        nxt = mono()
        while mono() < stop_at:
            body = orjson.dumps({"channel": "soak", "queue": QUEUE, "skills": {}, "payload": {"t": mono()}})
            try:
                status, _ = await asyncio.wait_for(conn.request("POST", "/api/v1/work", body, auth), 10)
                st["posted"] += 1
                if status not in (200, 201):
                    st["errors"] += 1
            except (OSError, ConnectionError, TimeoutError):
                st["errors"] += 1
            nxt += 1 / rate
            await asyncio.sleep(max(0.0, nxt - mono()))

    async def disconnects() -> None:
        rnd = random.Random(16)
        while mono() < stop_at:
            await asyncio.sleep(a.disconnect_every)
            aid = rnd.choice(ids)
            ws = socks.pop(aid, None)
            if ws is not None:
                ws.abort()
            await connect(aid)

    async def heartbeat() -> None:
        """Every socket sends a `ping` every `--ping-every` seconds, as the
        panel and the wallboard do (the server closes a socket silent for
        PRESENCE_HEARTBEAT_TIMEOUT); one the server closed anyway is counted
        and opened again, as a panel would."""
        slices = 20
        for n in itertools.count():
            if mono() >= stop_at:
                return
            await asyncio.sleep(a.ping_every / slices)
            for aid in ids[n % slices :: slices]:
                ws = socks.get(aid)
                if ws is not None and ws.is_open:
                    ws.send({"type": "ping", "ts": 0})
                elif ws is not None and ws.closed.done() and socks.get(aid) is ws:
                    st["server_closed"] += 1
                    del socks[aid]
                    reconnecting.add(asyncio.create_task(connect(aid)))
            for i in range(n % slices, len(boards), slices):
                if boards[i].is_open:
                    boards[i].send({"type": "ping", "ts": 0})
                elif boards[i].closed.done():
                    st["server_closed"] += 1
                    boards[i] = await board(i)

    reconnecting: set[asyncio.Task[None]] = set()
    redis = SyncRedis.from_url(stack.redis_url or "")
    rows: list[dict[str, float]] = []
    keys_log = Path(f"{a.out}.keys.jsonl")
    prefix = f"presence:{{{stack.center_id}}}:"
    censuses: list[asyncio.Task[None]] = []
    warm_lat: list[float] = []

    def take_census(minute: float) -> None:
        # its own connection, in a thread: a SCAN of the keyspace must not
        # hold up the agents' sockets (their offers' latency is measured)
        with SyncRedis.from_url(stack.redis_url or "") as r:
            fams = census(r, prefix)
        with keys_log.open("ab" if len(censuses) > 1 else "wb") as f:
            f.write(orjson.dumps({"minute": minute, "families": fams}) + b"\n")

    async def sampler() -> None:
        minute = 0
        while mono() < stop_at - 0.5:
            await asyncio.sleep(min(a.sample, max(0.1, stop_at - mono())))
            minute += 1
            mem = redis.info("memory")
            per = redis.info("persistence")
            streams = sum(redis.memory_usage(prefix + name, samples=0) or 0 for name in STREAMS)
            window, loadgen_gc = lat[:], gc_pauses.take_longest()
            if minute <= a.warm:
                warm_lat.extend(window)
            lat.clear()
            server_gc = await asyncio.to_thread(server_gc_max_ms, stack.url or "")
            row = {
                "minute": minute * a.sample / 60,
                "rss_mb": round(rss_mb(stack.server_pids()), 1),
                "redis_used_mb": round(int(mem["used_memory"]) / 2**20, 2),
                "redis_streams_mb": round(streams / 2**20, 2),
                "aof_mb": round(int(per.get("aof_current_size", 0)) / 2**20, 2),
                "server_gc_pause_max_ms": server_gc,
                "loadgen_gc_pause_max_ms": round(loadgen_gc * 1000, 1),
                "p99_ms": round(pct(window, 99) * 1000, 1) if window else 0.0,
                "offers": len(window),
                "posted": st["posted"],
                "errors": st["errors"],
                "agents_open": sum(1 for ws in socks.values() if ws.is_open),
                "server_closed": st["server_closed"],
                "load1": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            if a.census and (not censuses or censuses[-1].done()):
                # not awaited: the next sample keeps its time
                censuses.append(asyncio.create_task(asyncio.to_thread(take_census, row["minute"])))

    per_conn = a.rate / len(http)
    await asyncio.gather(sampler(), disconnects(), heartbeat(), *(producer(c, per_conn) for c in http))
    await asyncio.gather(*reconnecting)
    gc_pauses.uninstall()
    await asyncio.gather(*censuses)
    warm_p99 = round(pct(warm_lat, 99) * 1000, 1) if warm_lat else 0.0
    for ws in [*socks.values(), *boards]:
        ws.close()
    for c in http:
        c.close()
    return rows, warm_p99


def verdict(rows: list[dict[str, float]], warm: int, warm_p99: float) -> list[str]:
    """The targets' breaches (empty: met), after `warm` samples; `warm_p99`:
    the p99 of all the first `warm` samples' latencies together."""
    if len(rows) <= warm:
        return [f"only {len(rows)} samples: targets need more than {warm}"]
    out = []
    base, last = rows[warm - 1], rows[-1]
    for name in ("rss_mb", "redis_used_mb"):
        growth = (last[name] - base[name]) / max(base[name], 1e-9)
        if growth >= 0.05:
            out.append(f"{name} grew {growth:.1%} after sample {warm} ({base[name]} -> {last[name]})")
    worst = max(r["p99_ms"] for r in rows[warm:])
    if worst > 1.5 * warm_p99:
        out.append(f"p99 {worst} ms > 1.5 x {warm_p99} ms (the p99 of the first {warm} samples)")
    return out


def growth(rows: list[dict[str, float]], warm: int) -> str:
    """Each memory series' growth after `warm` samples, the streams apart
    (not a target: what tells the retention window from a leak)."""
    if len(rows) <= warm:
        return ""
    base, last = rows[warm - 1], rows[-1]

    def g(name: str, b: float, e: float) -> str:
        return f"{name} {b:.2f} -> {e:.2f} ({(e - b) / max(b, 1e-9):+.1%})"

    # MEMORY USAGE of a stream overstates it by a few %: used_memory less
    # the streams is no measure of the rest (--census is)
    return "; ".join(
        [
            g("rss_mb", base["rss_mb"], last["rss_mb"]),
            g("redis_used_mb", base["redis_used_mb"], last["redis_used_mb"]),
            g("redis_streams_mb", base["redis_streams_mb"], last["redis_streams_mb"]),
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--wallboards", type=int, default=20)
    p.add_argument("--rate", type=float, default=200.0, help="items per second")
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    p.add_argument("--warm", type=int, default=5, help="samples before the growth baseline")
    p.add_argument("--handle", type=float, default=0.5, help="seconds an agent holds an item")
    p.add_argument("--disconnect-every", type=float, default=2.0, help="seconds between random disconnects")
    p.add_argument(
        "--ping-every", type=float, default=4.0, help="seconds between a socket's pings (the panel's: 4)"
    )
    p.add_argument("--retention-days", default="0.0007", help="PRESENCE_RETENTION_DAYS for the run (~1 min)")
    p.add_argument(
        "--history-days",
        default="0.0014",
        help="PRESENCE_HISTORY_DAYS for the run (~2 min: the streams then hold ~3, with the clock margin)",
    )
    p.add_argument(
        "--clock-margin-seconds",
        default="30",
        help="PRESENCE_CLOCK_MARGIN_SECONDS of the run (kept behind the roll-up cursor; one clock here)",
    )
    p.add_argument(
        "--rollup-minutes", default="1", help="PRESENCE_ROLLUP_MINUTES for the run (a roll-up part a minute)"
    )
    p.add_argument("--out", default="soak", help="prefix of the CSV and PNG")
    p.add_argument(
        "--census",
        action="store_true",
        help="after each sample, count Redis's keys and bytes by key family to <out>.keys.jsonl",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    raise_nofile()
    use_uvloop()
    stack = Stack(
        center_body=CENTER,
        env={
            "PRESENCE_RETENTION_DAYS": a.retention_days,
            "PRESENCE_HISTORY_DAYS": a.history_days,
            "PRESENCE_ROLLUP_MINUTES": a.rollup_minutes,
            "PRESENCE_CLOCK_MARGIN_SECONDS": a.clock_margin_seconds,
        },
    )
    ids = [f"s{i:05d}" for i in range(a.agents)]
    try:
        stack.start()
        assert stack.redis_url is not None
        asyncio.run(seed_agents(stack.redis_url, stack.center_id, ids, [QUEUE], 10))
        rows, warm_p99 = asyncio.run(soak(a, stack, ids))
        time.sleep(2)  # the last completions land
        code, out = stack.check()
    finally:
        stack.stop()
    csv_path, png_path = Path(f"{a.out}.csv"), Path(f"{a.out}.png")
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=FIELDS)
        wr.writeheader()
        wr.writerows(rows)
    plot(png_path, rows)
    breaches = verdict(rows, a.warm, warm_p99)
    print(f"wrote {csv_path} and {png_path}")
    print(f"invariant checker: exit {code}")
    if code != 0:
        print(out[-2000:])
    print(f"growth after sample {a.warm}: {growth(rows, a.warm)}")
    later = max((r["p99_ms"] for r in rows[a.warm :]), default=0.0)
    print(f"p99 of the first {a.warm} samples: {warm_p99} ms; worst later sample: {later} ms")
    print("targets: " + ("met" if not breaches else "; ".join(breaches)))
    return 0 if code == 0 and not breaches else 1


if __name__ == "__main__":
    sys.exit(main())
