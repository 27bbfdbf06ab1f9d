"""`presence backup` and `presence restore`: a center with agents, queues,
items in every state, their histories and case comments is backed up from
an external Redis, restored into a new data folder (the embedded Redis),
reads back identical key by key (values and expiry), and `presence check`
passes on it; backed up from that embedded Redis and restored over the
original (refused unless --replace), it is identical again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from presence.embedded import EmbeddedRedis
from presence.store.keys import Keys
from tests.harness import ServerProcess, agent, available, post_work, token
from tests.helpers import REDIS_MODES, redis_of, redis_sync
from tests.integration.conftest import ServerFactory

pytestmark = pytest.mark.timeout(120)

CENTER = """
[[queues]]
name = "support"
push_timeout = 60
wrapup_seconds = 600

[[agents]]
id = "alice"
queues = ["support"]
capacity = 100

[[agents]]
id = "bob"
queues = ["support"]
"""


def presence(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "PRESENCE_"))}
    return subprocess.run(
        [sys.executable, "-m", "presence", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(params=REDIS_MODES)
def redis_server(request: pytest.FixtureRequest, redis_server: str) -> str:
    """The external Redis is a standalone one, then a cluster."""
    return redis_of(request, redis_server)


def contents(url: str, center: str) -> dict[bytes, Any]:
    """Every key of the center: its type, value and absolute expiry."""
    r = redis_sync(url)
    try:
        out: dict[bytes, Any] = {}
        for k in r.scan_iter(match=Keys(center).prefix + "*", count=1000):
            kind = r.type(k)
            value: Any
            if kind == b"hash":
                value = r.hgetall(k)
            elif kind == b"list":
                value = r.lrange(k, 0, -1)
            elif kind == b"set":
                value = sorted(r.smembers(k))
            elif kind == b"zset":
                value = r.zrange(k, 0, -1, withscores=True)
            elif kind == b"stream":
                value = r.xrange(k)
            else:
                value = r.get(k)
            out[k] = (kind, value, r.pexpiretime(k))
        return out
    finally:
        r.close()


def lasting(keys: dict[bytes, Any], margin_ms: int = 10_000) -> dict[bytes, Any]:
    """The keys that do not expire within `margin_ms` (short-lived ones, such
    as an action's retry record, may expire between two reads; a restored key
    keeps its absolute expiry, so both copies lose them at the same moment)."""
    now = int(time.time() * 1000)
    return {k: v for k, v in keys.items() if v[2] == -1 or v[2] > now + margin_ms}


def _post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token('service', 'crm')}"}
    return httpx.post(f"{server.http}{path}", json=body, headers=auth, timeout=10)


async def _center_in_every_state(server: ServerProcess) -> dict[str, str]:
    alice = await agent(server, "alice")
    await available(alice)
    states: dict[str, str] = {}

    async def offered_to_alice(**kw: Any) -> str:
        wid = str((await asyncio.to_thread(post_work, server, **kw)).json()["id"])
        await alice.expect(lambda m: m["type"] == "offer" and m["work_id"] == wid, timeout=10)
        return wid

    for state in ("completed", "wrapup", "assigned"):
        wid = await offered_to_alice(subject=state, customer={"name": "山田 花子"})
        assert (await alice.request({"type": "offer.accept", "work_id": wid}))["type"] == "ok"
        note = await alice.request({"type": "work.note", "work_id": wid, "text": f"note on {state}"})
        assert note["type"] == "ok", note
        if state == "completed":
            assert (await alice.request({"type": "work.complete", "work_id": wid}))["type"] == "ok"
        elif state == "wrapup":
            assert (await alice.request({"type": "work.wrapup", "work_id": wid}))["type"] == "ok"
        states[state] = wid
    states["offered"] = await offered_to_alice(subject="offered")
    # nobody has the skill: it waits; another one is abandoned
    for state in ("queued", "abandoned"):
        r = await asyncio.to_thread(post_work, server, subject=state, skills={"french": 9})
        states[state] = r.json()["id"]
    r = await asyncio.to_thread(
        _post, server, f"/api/v1/work/{states['abandoned']}/cancel", {"reason": "hangup"}
    )
    assert r.status_code == 200, r.text
    await alice.close()
    return states


async def test_backup_restore_into_a_new_data_folder_and_back(
    server_factory: ServerFactory, redis_server: str, tmp_path: Path
) -> None:
    server = server_factory(CENTER)
    cid = server.center_id
    states = await _center_in_every_state(server)
    server.stop()  # a still center, so that the copies can be compared
    original = contents(redis_server, cid)
    k = Keys(cid)
    for wid in states.values():
        # (each item's history is in its record: `h:<stream entry id>` fields)
        assert any(f.startswith(b"h:") for f in original[k.work(wid).encode()][1]), wid
    assert original[k.work(states["completed"]).encode()][1][b"state"] == b"completed"
    assert original[k.work(states["wrapup"]).encode()][1][b"state"] == b"wrapup"

    # backed up from the external Redis (servers may be running: one step)
    external = {"REDIS_URL": redis_server, "PRESENCE_CONFIG": str(server.config)}
    done = presence("backup", str(tmp_path / "bk"), env=external)
    assert done.returncode == 0, done.stderr
    copied = int(done.stdout.split(": ")[1].split(" keys")[0])
    assert len(lasting(original)) <= copied <= len(original), done.stdout

    # restored into a new data folder: its embedded Redis
    new = {"PRESENCE_DATA_DIR": str(tmp_path / "new"), "PRESENCE_CONFIG": str(server.config)}
    done = presence("restore", str(tmp_path / "bk"), env=new)
    assert done.returncode == 0, done.stdout + done.stderr
    check = presence("check", env=new)
    assert check.returncode == 0 and "all invariants hold" in check.stdout, check.stdout + check.stderr
    embedded = EmbeddedRedis(tmp_path / "new")
    try:
        url = embedded.start()
        assert lasting(contents(url, cid)) == lasting(original)
    finally:
        embedded.stop()

    # and back: from the embedded Redis over the original, which is refused
    # unless --replace
    done = presence("backup", str(tmp_path / "bk2"), env=new)
    assert done.returncode == 0, done.stderr
    refused = presence("restore", str(tmp_path / "bk2"), env=external)
    assert refused.returncode == 2 and "--replace" in refused.stderr, refused.stderr
    r = redis_sync(redis_server)
    try:
        r.hset(k.agent("alice"), "status", "Scribbled")  # a change the restore undoes
        r.set(k.prefix + "stray", "1")  # and a key the backup does not have
    finally:
        r.close()
    done = presence("restore", "--replace", str(tmp_path / "bk2"), env=external)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lasting(contents(redis_server, cid)) == lasting(original)


def test_a_damaged_or_missing_backup_is_refused(tmp_path: Path, redis_server: str) -> None:
    env = {"REDIS_URL": redis_server}
    missing = presence("restore", str(tmp_path / "nothing"), env=env)
    assert missing.returncode == 2 and "manifest.json" in missing.stderr, missing.stderr
    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "manifest.json").write_text(
        '{"format": 1, "center": "c1", "keys": 1, "file": "c1.keys.gz", "sha256": "00"}', "utf-8"
    )
    (tmp_path / "bk" / "c1.keys.gz").write_bytes(b"not gzip")
    damaged = presence("restore", str(tmp_path / "bk"), env=env)
    assert damaged.returncode == 2 and "damaged" in damaged.stderr, damaged.stderr
