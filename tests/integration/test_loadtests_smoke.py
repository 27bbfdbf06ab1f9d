"""The load-test harness cannot rot: a small headless Locust run against a real
server, and a tiny router benchmark, both ending with the invariant checker.

Locust imports gevent and monkey-patches the process, so it only ever runs
as a subprocess (`python -m locust`), never inside pytest.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from presence.store.keys import Keys
from tests.harness import SECRET, ServerProcess, agent, available, post_work, token
from tests.integration.conftest import ServerFactory

REPO = Path(__file__).resolve().parents[2]


def _stats(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def run_locust(
    server: ServerProcess, users: int, seconds: int, *args: str
) -> subprocess.CompletedProcess[str]:
    """`locust -f loadtests/locustfile.py --headless` against `server`, as a subprocess."""
    env = {
        **os.environ,
        "PRESENCE_SECRET": SECRET,
        "REDIS_URL": server.redis_url,
        "PRESENCE_CONFIG": str(server.config),
    }
    return subprocess.run(
        [
            sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless",
            "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
            "--host", server.http, "--lt-agents", str(users), "--only-summary", *args,
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )  # fmt: skip


def test_locust_headless_smoke(server_factory: ServerFactory, tmp_path: Path) -> None:
    server: ServerProcess = server_factory()
    prefix = tmp_path / "lt"
    out = run_locust(server, 20, 10, "--stop-timeout", "5", "--lt-handle", "0.5", "--csv", str(prefix))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "presence check exit 0" in log, log[-2000:]
    stats = _stats(Path(f"{prefix}_stats.csv"))
    assert int(stats["POST /api/v1/work"]["Request Count"]) > 0, stats.keys()
    assert int(stats["POST /api/v1/work"]["Failure Count"]) == 0
    # the custom metrics made it into Locust's own statistics
    assert int(stats["intake→offer"]["Request Count"]) > 0, stats.keys()
    assert int(stats["offer→accept"]["Request Count"]) > 0, stats.keys()
    assert "presence→wallboard" in stats, stats.keys()


def test_locust_exits_1_on_a_breach(server_factory: ServerFactory, tmp_path: Path) -> None:
    """A breach found by `presence check` at test stop makes the run exit 1."""
    server: ServerProcess = server_factory()
    cid = server.center_id
    alice = Keys(cid).agent("alice")
    client = redis.Redis.from_url(server.redis_url)
    # alice holds nothing, so a load of 30 is a breach (load != weights held)
    client.hset(alice, "load", 30)
    try:
        out = run_locust(server, 2, 2)
    finally:
        client.hset(alice, "load", 0)
        client.close()
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    assert "presence check FAILED" in log and "BREACH" in log, log[-3000:]


def _bench(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m loadtests.<module> args`` from the checkout; it must succeed."""
    out = subprocess.run(
        [sys.executable, "-m", f"loadtests.{module}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out


def test_bench_assign_tiny(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    samples = tmp_path / "samples.csv"
    out = _bench(
        "bench_assign",
        "--agents",
        "50",
        "--rate",
        "200",
        "--duration",
        "3",
        "--ping-rate",
        "50",
        "--json",
        str(report),
        "--samples",
        str(samples),
    )
    fig = json.loads(report.read_text())
    assert fig["assigned_total"] > 0
    assert fig["assigned_total"] == fig["created_ok"]
    assert fig["check_exit"] == 0
    assert fig["aof_rewrites"] == 0
    assert "intake -> work.assigned" in out.stdout
    assert "longest collection in an agent process" in out.stdout
    lines = samples.read_text().splitlines()
    assert lines[0].startswith("# load began at") and lines[1] == "t_s,latency_ms"
    rows = [tuple(map(float, line.split(","))) for line in lines[2:]]
    assert len(rows) == fig["assigned_total"]
    assert all(t >= 0 and ms > 0 for t, ms in rows)


def test_bench_assign_over_several_centers(tmp_path: Path) -> None:
    """--centers 3: the agents and the items spread over three centers of the
    one deployment, each item routed inside its own center, each checked."""
    report = tmp_path / "bench.json"
    argv = ["--centers", "3", "--agents", "30", "--rate", "150", "--duration", "2", "--ping-rate", "20"]
    out = _bench("bench_assign", *argv, "--json", str(report))
    fig = json.loads(report.read_text())
    assert fig["check_exit"] == 0 and fig["assigned_total"] == fig["created_ok"] > 0, fig
    by_center = fig["created_by_center"]
    assert len(by_center) == 3 and min(by_center) > 0 and sum(by_center) == fig["created_ok"], by_center
    assert out.stdout.count("all invariants hold in center") == 3, out.stdout[-2000:]


@pytest.mark.cluster
@pytest.mark.slow
def test_bench_assign_cluster_tiny(tmp_path: Path) -> None:
    """--cluster: the same load on standalone, standalone with a replica,
    cluster and cluster + WAIT, one table, each cluster row against both
    standalone ones."""
    report = tmp_path / "cluster.json"
    argv = ["--cluster", "--rounds", "1", "--agents", "20", "--rate", "100", "--duration", "2"]
    out = _bench("bench_assign", *argv, "--ping-rate", "20", "--json", str(report), timeout=400)
    fig = json.loads(report.read_text())
    assert set(fig) == {"standalone", "standalone + replica", "cluster, no WAIT", "cluster + WAIT 1"}
    assert all(f["assign_rate"] > 0 and f["redis_us"] > 0 for f in fig.values()), fig
    # the standalone's replica is metered as the cluster's replicas are
    assert fig["standalone"]["replicas_us"] == 0 and fig["standalone + replica"]["replicas_us"] > 0, fig
    # the Redis work of the cluster's rows is read from every primary (it
    # once read the node of the URL alone, and showed 0 commands): the same
    # scripts run, so about as many commands per assignment as standalone
    cmds = {label: f["redis_commands"] for label, f in fig.items()}
    assert cmds["standalone"] > 5, cmds
    for label in ("standalone + replica", "cluster, no WAIT", "cluster + WAIT 1"):
        assert 0.8 * cmds["standalone"] < cmds[label] < 1.3 * cmds["standalone"], cmds
    assert "server+redis µs" in out.stdout and "(shard 127.0.0.1:" in out.stdout
    assert "vs standalone + replica" in out.stdout


def _bench_lua(*extra: str) -> dict[str, str]:
    out = _bench("bench_lua", "--agents", "5", "--batch", "4", "--rounds", "5", *extra)
    figures = {"stdout": out.stdout}
    for line in out.stdout.splitlines():
        label, _, value = line.strip().rpartition(" ")
        if label:
            figures[label.strip()] = value
    return figures


def test_bench_lua_tiny() -> None:
    # per round of 4: the intake call, which routes its items, and the four
    # completions in one call
    figures = _bench_lua()
    assert float(figures["script calls per assignment"]) == 0.5
    # routed by route.lua instead: one call more per round
    assert float(_bench_lua("--no-inline")["script calls per assignment"]) == 0.75
    assert float(figures["commands run by scripts"]) > 10
    aof = float(figures["bytes appended to the AOF"])
    assert aof > 0
    # the AOF's bytes by command, read back from the files: they add up
    lines = figures["stdout"].splitlines()
    at = next(i for i, line in enumerate(lines) if "bytes appended to the AOF" in line)
    by = dict(part.split() for part in lines[at + 1].strip().split(", "))
    assert {"xadd", "hset", "multi", "exec"} <= by.keys()
    assert abs(sum(map(float, by.values())) - aof) <= len(by)


def test_bench_rollup_tiny() -> None:
    out = _bench("bench_rollup", "--rate", "2", "--minutes", "3", "--runs", "1")
    assert "sums equal: True" in out.stdout, out.stdout
    assert [line.split()[1] for line in out.stdout.splitlines() if line.startswith("    1 ")] == [
        "full",
        "streamed",
    ]


# One assignment's cost in Redis, one item per call (`bench_lua --batch 1`,
# docs/PERFORMANCE.md): the counts are exact, so a change that adds a
# command or bytes to every assignment shows here. The bounds are today's
# (25 commands, ~2,160 bytes with these agents; 2,356 before the short history
# entries, `at` and the arrivals counted once) and the ceiling they may
# not pass.
MAX_COMMANDS_PER_ASSIGNMENT = 25.0
MAX_AOF_BYTES_PER_ASSIGNMENT = 2200


def test_bench_lua_one_item_per_call_stays_within_its_commands_and_bytes() -> None:
    figures = _bench_lua("--batch", "1", "--rounds", "20")
    assert float(figures["script calls per assignment"]) == 2.0
    assert float(figures["commands run by scripts"]) <= MAX_COMMANDS_PER_ASSIGNMENT, figures["stdout"]
    assert float(figures["bytes appended to the AOF"]) <= MAX_AOF_BYTES_PER_ASSIGNMENT, figures["stdout"]


def test_bench_floor_tiny() -> None:
    out = _bench("bench_floor", "--queues", "2", "--waiting", "30", "--items", "40")
    rows = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0] in ("commands", "reply", "script"):
            rows.setdefault(parts[0], []).append((float(parts[-2]), float(parts[-1])))
    (figures, life), (reply,), (calls,) = rows["commands"], rows["reply"], rows["script"]
    # 25 of each queue's 30 listed: one HMGET each, and a ZRANGE for each of the 4 queues
    assert figures[1] - figures[0] == 2 * 25 + 4, figures
    assert reply[1] > reply[0] and calls[0] == calls[1]
    assert life[1] - life[0] <= 2, life  # a queue with hours reads its plan, nothing more


def _batch(server: ServerProcess, items: object) -> httpx.Response:
    return httpx.post(
        f"{server.http}/api/v1/work:batch",
        json={"items": items},
        headers={"Authorization": f"Bearer {token('service', 'crm')}"},
        timeout=10,
    )


@pytest.mark.in_process
async def test_work_batch_validates_and_dedupes_per_item(server: ServerProcess) -> None:
    """`POST /api/v1/work:batch`: each item validated and idempotent on its own."""
    alice = await agent(server, "alice")
    await available(alice)
    good = {"channel": "chat", "queue": "support", "skills": {}, "subject": "one"}
    r = _batch(
        server,
        [
            {**good, "idempotency_key": "k-1"},
            {**good, "queue": "nope"},  # unknown queue
            {**good, "skills": {"english": 11}},  # level out of range
            {**good, "idempotency_key": "k-1"},  # the same item again
            "not an object",
        ],
    )
    assert r.status_code == 207, r.text
    res = r.json()["items"]
    assert [x["status"] for x in res][1:3] == [422, 422] and res[4]["status"] == 400
    # the two items with one key run concurrently: one creates it, the other finds it
    assert sorted([res[0]["status"], res[3]["status"]]) == [200, 201]
    assert res[0]["id"] == res[3]["id"]
    assert "queued" in (res[0].get("state"), res[3].get("state"))
    assert res[1]["problem"]["field"] == "items[1].queue"
    assert res[2]["problem"]["field"] == "items[2].skills.english"
    # exactly one item was stored, and it is routed like any other
    offer = await alice.expect("offer")
    assert offer["work_id"] == res[0]["id"] and offer["subject"] == "one"
    extra = await alice.quiet(0.3)
    assert not [m for m in extra if m["type"] == "offer"]
    # a repeat of the key through the single-item endpoint finds the same item
    again = post_work(server, idem="k-1", subject="one")
    assert again.status_code == 200 and again.json()["id"] == res[0]["id"]


@pytest.mark.in_process
def test_work_batch_refuses_bad_envelopes(server: ServerProcess) -> None:
    assert _batch(server, []).status_code == 400
    assert _batch(server, "x").status_code == 400
    big = [{"channel": "chat", "queue": "support", "skills": {}}] * 501
    r = _batch(server, big)
    assert r.status_code == 413 and r.json()["field"] == "items"
    r = httpx.post(
        f"{server.http}/api/v1/work:batch",
        json={"items": [{"channel": "chat", "queue": "support", "skills": {}}]},
        headers={"Authorization": f"Bearer {token('agent', 'alice')}"},
        timeout=10,
    )
    assert r.status_code == 403


def test_verified_token_cache_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify() remembers tokens that verified (a hot-path saving) but still expires them."""
    from presence import auth

    tok = auth.mint(SECRET, "alice", "agent", ttl=60)
    assert auth.verify(SECRET, tok).sub == "alice"
    assert auth.verify(SECRET, tok).sub == "alice"  # from the cache
    with pytest.raises(auth.AuthError, match="not valid"):
        auth.verify(SECRET[::-1], tok)  # another secret never hits the cache
    real = time.time
    monkeypatch.setattr(auth.time, "time", lambda: real() + 61)
    with pytest.raises(auth.AuthError, match="expired"):
        auth.verify(SECRET, tok)
    assert (SECRET, tok) not in auth._verified


def test_soak_tiny(tmp_path: Path) -> None:
    """The soak script runs end to end in seconds: samples, CSV, PNG, checker."""
    prefix = tmp_path / "soak"
    out = subprocess.run(
        [
            sys.executable, "-m", "loadtests.soak", "--agents", "20", "--wallboards", "2", "--rate", "10",
            "--minutes", "0.15", "--sample", "3", "--warm", "1", "--out", str(prefix), "--census",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    log = out.stdout + out.stderr
    assert "invariant checker: exit 0" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    with Path(f"{prefix}.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 2, rows
    assert all(float(r["rss_mb"]) > 0 and float(r["redis_used_mb"]) > 0 for r in rows), rows
    assert sum(int(r["offers"]) for r in rows) > 0, rows
    assert all(int(r["agents_open"]) >= 18 for r in rows), rows  # 20, less one being reconnected
    # the server's own GC figure, read from its /metrics (nan: not found)
    assert all(float(r["server_gc_pause_max_ms"]) >= 0 for r in rows), rows
    assert all(float(r["redis_streams_mb"]) > 0 for r in rows), rows
    census = [orjson.loads(line) for line in Path(f"{prefix}.keys.jsonl").read_bytes().splitlines()]
    assert census, "no census written"
    assert census[-1]["families"]["work:*"]["keys"] > 0, census[-1]
    assert Path(f"{prefix}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_bench_rollup_report_tiny() -> None:
    out = _bench("bench_rollup", "--rate", "2", "--minutes", "3", "--runs", "1", "--group", "15m")
    assert "report by 15m" in out.stdout and "sums equal: True" in out.stdout, out.stdout
