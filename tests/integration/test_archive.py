"""The archive: finished items (completed, cancelled) with their history,
case, comments and messages, written per day to gzip NDJSON, read back and
compared with what Redis held; a later run keeps the lines of items that
expired since; the scheduled run does yesterday once; the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from presence.center import parse_center
from presence.services.archive import Archiver, archive, day_file, read_day
from presence.store import Store, new_work_id
from presence.store import cases as case_store
from tests.harness import write_center
from tests.integration.conftest import ServerFactory

DAY1 = date(2026, 3, 9)
T1 = datetime(2026, 3, 9, 10, 0, tzinfo=UTC).timestamp()
CENTER = {
    "queues": [{"name": "q", "auto_accept": False}],
    "agents": [{"id": "a0", "queues": ["q"], "capacity": 100}],
}


class Clocked:
    def __init__(self, store: Store, clock: list[float]) -> None:
        self.store, self.clock = store, clock


@pytest.fixture
async def center(redis_server: str) -> AsyncIterator[Clocked]:
    clock = [T1]
    store = Store(Redis.from_url(redis_server), f"arc{uuid.uuid4().hex[:8]}", clock=lambda: clock[0])
    c = parse_center(CENTER)
    await store.sync_center(c)
    await case_store.sync_config(store, c)
    await store.conn_open("a0", "c0", 10 * 86400)
    await store.set_status("a0", "Available", "", "a0")
    yield Clocked(store, clock)
    await store.redis.aclose()


async def _handled(store: Store, note: str) -> str:
    wid = (
        await store.intake_work(new_work_id(), "q", "chat", 0, {"customer": {"name": "山田 花子"}}, {})
    ).work_id
    await store.route(["q"])
    await store.accept("a0", wid)
    await case_store.add_note(store, wid, "a0", note)
    await store.complete("a0", wid, "solved")
    return wid


async def _expected(store: Store, wid: str) -> dict[str, object]:
    work = await store.get_work(wid)
    assert work is not None
    return {"work": work, "comments": await case_store.comments(store, wid)}


async def test_archive_writes_each_day_and_reads_back(center: Clocked, tmp_path: Path) -> None:
    store, clock = center.store, center.clock
    first = await _handled(store, "電話で解決")
    cancelled = (await store.intake_work(new_work_id(), "q", "voice", 0, {}, {"french": 9})).work_id
    await store.cancel(cancelled, "hangup")
    clock[0] += 86400  # the next day
    second = await _handled(store, "second day")
    still_open = (await store.intake_work(new_work_id(), "q", "email", 0, {}, {"french": 9})).work_id

    done = await archive(store, tmp_path, DAY1, DAY1 + timedelta(days=2))
    assert done == {DAY1: 2, DAY1 + timedelta(days=1): 1}
    day1 = read_day(day_file(tmp_path, store.keys.center, DAY1))
    assert [r["work"]["work_id"] for r in day1] == [first, cancelled]
    for r in day1 + read_day(day_file(tmp_path, store.keys.center, DAY1 + timedelta(days=1))):
        want = await _expected(store, r["work"]["work_id"])
        assert {"work": r["work"], "comments": r["comments"]} == want
    day2 = read_day(day_file(tmp_path, store.keys.center, DAY1 + timedelta(days=1)))
    assert [r["work"]["work_id"] for r in day2] == [second]
    assert day1[0]["comments"][0]["text"] == "電話で解決"
    assert [h["ev"] for h in day1[0]["work"]["history"]][-1] == "complete"
    assert day1[1]["work"]["state"] == "abandoned"
    assert still_open not in {r["work"]["work_id"] for r in day1}

    # one item expires, another changes: a later run keeps the first, updates the second
    k = store.keys
    await store.redis.delete(k.work(first), k.work_history(first), k.case_comments(first))
    await case_store.add_note(store, cancelled, "sue", "called back")
    assert await archive(store, tmp_path, DAY1, DAY1) == {DAY1: 2}  # lines in the file
    again = read_day(day_file(tmp_path, store.keys.center, DAY1))
    assert [r["work"]["work_id"] for r in again] == [first, cancelled]
    assert again[0] == day1[0]
    assert [c["text"] for c in again[1]["comments"]] == ["called back"]
    await store.set_status("a0", "Break", "", "a0")
    await store.cancel(still_open, "gone")


async def test_the_scheduled_archive_does_yesterday_once(center: Clocked, tmp_path: Path) -> None:
    store, clock = center.store, center.clock
    wid = await _handled(store, "yesterday")
    clock[0] += 86400
    task = Archiver(store, tmp_path)
    assert await task.run_once() == {DAY1: 1}
    assert await store.redis.hget(store.keys.archive_state, "day") == DAY1.isoformat().encode()
    assert await task.run_once() is None  # nothing due until tomorrow
    assert [r["work"]["work_id"] for r in read_day(day_file(tmp_path, store.keys.center, DAY1))] == [wid]
    clock[0] += 86400
    assert await task.run_once() == {}  # a day without items: no file
    assert (
        await store.redis.hget(store.keys.archive_state, "day")
        == (DAY1 + timedelta(days=1)).isoformat().encode()
    )


async def test_archive_command_and_scheduled_option(
    center: Clocked, tmp_path: Path, redis_server: str, server_factory: ServerFactory
) -> None:
    store = center.store
    wid = await _handled(store, "from the command line")
    path, _ = write_center(tmp_path / "c.toml", center_id=store.keys.center)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "PRESENCE_"))}
    env.update(REDIS_URL=redis_server, PRESENCE_CONFIG=str(path))
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "presence", "archive", "--since", "2026-03-09", "--until", "2026-03-10"],
        env={**env, "PRESENCE_ARCHIVE_DIR": str(tmp_path / "arch")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "2026-03-09: 1 items" in run.stdout
    assert [r["work"]["work_id"] for r in read_day(day_file(tmp_path / "arch", store.keys.center, DAY1))] == [
        wid
    ]
    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "presence", "archive", "--since", "March"],
        env={**env, "PRESENCE_ARCHIVE_DIR": str(tmp_path / "arch")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--since must be a date" in bad.stderr, bad.stderr

    # a server with PRESENCE_ARCHIVE_DIR runs the daily archive (yesterday at start)
    server = server_factory(env={"PRESENCE_ARCHIVE_DIR": str(tmp_path / "served")})
    cid = server.center_id
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat().encode()
    state = None
    for _ in range(100):
        state = await store.redis.hget(f"presence:{{{cid}}}:archive:state", "day")
        if state:
            break
        await asyncio.sleep(0.1)
    assert state == yesterday
