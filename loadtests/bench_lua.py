"""Redis's cost per assignment: what the Lua scripts of one item's life run.

Starts a private Redis (append-only file on, as `presence serve` runs it),
one auto-accept queue and --agents agents, then repeats --rounds times:
create --batch items (`work:batch`'s script), complete each (the batched
`work_complete`), as a server does: the intake call routes the items it
made and the completion call the queue it freed an agent in
(`Scripts.route_inline`), and `route.lua` runs only for a queue they left
with more (`--no-inline`: route.lua every round, as before). It prints, per assignment,
the commands the scripts ran inside Redis (``INFO commandstats``), the
bytes appended to the AOF (also by command, read back from the AOF files),
and the Redis CPU and FCALL time; and, as the
baseline of the same run, the cost of one EVALSHA that only defines the
library's shared helpers (the `_lib_*.lua` parts): the fixed cost every
call would pay if the scripts were EVAL scripts rather than one function
library. It ends with `presence check`'s verdict on what the rounds left
(exit 1 on a breach).

No server process and no sockets to agents: this isolates the Redis side
of `bench_assign`, and its command and byte counts are exact (the same on
any machine), unlike its times.

    python -m loadtests.bench_lua --batch 20 --rounds 100

Times on a shared machine are noisy; for an exact comparison of two trees,
count Redis's instructions instead: give --redis-binary a wrapper script
that runs ``exec valgrind --tool=callgrind --callgrind-out-file=OUT
redis-server "$@"`` and compare the totals (`callgrind_annotate OUT`),
with --no-baseline (the baseline's EVALSHAs would outweigh the rounds) and
two --rounds (200 and 1000, say): their difference over the extra
assignments leaves out every fixed cost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from loadtests.common import RedisWork, free_port
from presence.center import parse_center
from presence.embedded import EmbeddedRedis
from presence.store import NewItem, Store, new_work_id
from presence.store.scripts import helpers


def _aof_files(data: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in data.glob("**/appendonlydir/*.incr.aof")}


def _aof_bytes(data: Path) -> int:
    return sum(_aof_files(data).values())


def aof_by_command(data: Path, since: dict[Path, int]) -> dict[str, int]:
    """The bytes appended to the AOF since `since` (`_aof_files`), by
    command (what the scripts' writes are propagated as: ``PEXPIRE`` as
    ``PEXPIREAT``, ``SET ... PX`` as ``PXAT``, ``MULTI``/``EXEC`` around each
    call), largest first."""
    out: dict[str, int] = {}
    for path, size in _aof_files(data).items():
        buf = path.read_bytes()[since.get(path, 0) : size]
        i = 0
        while i < len(buf):
            start = i
            j = buf.index(b"\r\n", i)
            n, i = int(buf[i + 1 : j]), j + 2
            name = b""
            for k in range(n):
                j = buf.index(b"\r\n", i)
                length, i = int(buf[i + 1 : j]), j + 2
                if k == 0:
                    name = buf[i : i + length]
                i += length + 2
            cmd = name.decode().lower()
            out[cmd] = out.get(cmd, 0) + i - start
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


async def measure(
    url: str,
    data: Path,
    agents: int,
    batch: int,
    rounds: int,
    inline: bool = True,
    baseline: bool = True,
) -> dict[str, Any]:
    r = Redis.from_url(url)
    store = Store(r, "lua")
    await store.sync_center(
        parse_center(
            {
                "queues": [{"name": "q", "auto_accept": True}],
                "agents": [{"id": f"a{i}", "queues": ["q"], "capacity": 10_000} for i in range(agents)],
            }
        )
    )
    for i in range(agents):
        await store.conn_open(f"a{i}", f"c{i}", 3600)
        await store.set_status(f"a{i}", "Available", "", f"a{i}")

    # as a server's dispatcher does: intake and completions route in their
    # own calls, and route.lua runs only for the queues they leave
    more: set[str] = set()
    if inline:
        store.scripts.route_inline(256, 512, more.update)

    async def cycle() -> None:
        ids = [new_work_id() for _ in range(batch)]
        await store.create_work_many([NewItem(w, "q", "chat", 0, {"subject": "bench"}) for w in ids])
        if not inline or more:
            more.clear()
            await store.route(["q"], budget=batch)
        holders = [(await r.hget(store.keys.work(w), "agent") or b"").decode() for w in ids]
        if not all(holders):
            raise RuntimeError(f"routed {sum(map(bool, holders))} of {batch}")
        await asyncio.gather(*(store.complete(a, w, "done") for a, w in zip(holders, ids, strict=True)))

    for _ in range(5):
        await cycle()

    async def reading() -> RedisWork:
        return RedisWork.parse(await r.info("commandstats"), await r.info("persistence"))

    # appendfsync everysec: what the rounds appended is in the files within a second
    await asyncio.sleep(1.2)
    files0 = _aof_files(data)
    before, cpu0, aof0 = await reading(), await r.info("cpu"), sum(files0.values())
    for _ in range(rounds):
        await cycle()
    after, cpu1 = await reading(), await r.info("cpu")
    await asyncio.sleep(1.2)
    aof1, aof_by = _aof_bytes(data), aof_by_command(data, files0)
    work = after.since(before)
    n = batch * rounds
    # the benchmark's own reads: one HGET per item, to find its holder
    own = {"hget": n}
    inside = {k: v / n for k, v in work.commands(own).items()}
    per = work.per(n, own)

    # the baseline: an EVAL script of the shared helpers alone, i.e. what each
    # call would pay on top if the scripts were sent as EVAL scripts
    # (store/scripts.py loads them as one function library instead)
    base: float | None = None
    if baseline:
        empty = r.register_script(helpers() + "\nreturn 1")
        await empty(keys=[store.keys.prefix], args=[0])
        await r.config_resetstat()
        for _ in range(1000):
            await empty(keys=[store.keys.prefix], args=[0])
        base = (await r.info("commandstats"))["cmdstat_evalsha"]["usec_per_call"]
    # every invariant still holds after the rounds (`presence check`'s script)
    breaches = await store.check()
    await r.aclose()
    cpu = sum(cpu1[k] - cpu0[k] for k in ("used_cpu_user", "used_cpu_sys"))
    return {
        "commands": per["commands"],
        "by_command": inside,
        # the AOF files themselves, and Redis's own count (the same unless a
        # rewrite fell in the window)
        "aof_bytes": (aof1 - aof0) / n,
        "aof_by_command": {k: v / n for k, v in aof_by.items()},
        "aof_info_bytes": per["aof_bytes"],
        "redis_cpu_us": cpu / n * 1e6,
        "fcall_us": per["script_us"],
        "script_calls": per["script_calls"],
        "baseline_evalsha_us": base,
        "breaches": breaches,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=100, help="agents in the queue (default 100)")
    p.add_argument("--batch", type=int, default=20, help="items per create/route round (default 20)")
    p.add_argument("--rounds", type=int, default=100, help="rounds measured (default 100)")
    p.add_argument(
        "--no-inline",
        action="store_true",
        help="route every round with route.lua, as before intake and completions routed in their own calls",
    )
    p.add_argument("--redis-binary", help="run this Redis server binary (default: as `presence serve`)")
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="leave out the EVALSHA baseline (under callgrind its 1,000 calls cost more instructions "
        "than the rounds, and more or fewer with the helpers' text)",
    )
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="presence-lua-") as tmp:
        data = Path(tmp)
        redis = EmbeddedRedis(data, port=free_port(), binary=a.redis_binary)
        url = redis.start(timeout=60)
        try:
            fig = asyncio.run(
                measure(url, data, a.agents, a.batch, a.rounds, not a.no_inline, not a.no_baseline)
            )
        finally:
            redis.stop()
    how = "route.lua every round" if a.no_inline else "routed inline, as the server does"
    print(f"bench_lua: {a.agents} agents, {a.batch} items per round, {a.rounds} rounds, {how}")
    print(f"  script calls per assignment        {fig['script_calls']:8.2f}")
    print(f"  commands run by scripts            {fig['commands']:8.1f}")
    print("    " + ", ".join(f"{k} {v:.2f}" for k, v in fig["by_command"].items() if v >= 0.05))
    print(f"  bytes appended to the AOF          {fig['aof_bytes']:8.0f}")
    print("    " + ", ".join(f"{k} {v:.0f}" for k, v in fig["aof_by_command"].items() if v >= 1))
    print(f"  FCALL time per assignment, us      {fig['fcall_us']:8.1f}")
    print(f"  Redis CPU per assignment, us       {fig['redis_cpu_us']:8.1f}")
    if fig["baseline_evalsha_us"] is not None:
        print(
            "  baseline: EVALSHA of the shared helpers alone (a script's fixed cost), us per call "
            f"{fig['baseline_evalsha_us']:.1f}"
        )
    for b in fig["breaches"]:
        print(f"  BREACH: {b}")
    print(
        "  presence check: "
        + (f"{len(fig['breaches'])} breach(es)" if fig["breaches"] else "all invariants hold")
    )
    return 1 if fig["breaches"] else 0


if __name__ == "__main__":
    sys.exit(main())
