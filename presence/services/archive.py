"""The archive of finished cases: compressed NDJSON files, one per day.

`presence archive --since DATE` (and, with ``PRESENCE_ARCHIVE_DIR`` set, the
server once a day) writes every item that ended on a day (completed or
abandoned; the center's time zone, ``PRESENCE_TIMEZONE``) with its history,
case, comments and customer messages to
``<dir>/<center>/<YYYY-MM-DD>.ndjson.gz``: one JSON object per line
(`presence.store.archive.records`), in the order the items ended. Run it
within the retention (``PRESENCE_RETENTION_DAYS``): after that the items are
gone from Redis.

Running it again for a day merges: a line whose item is still in Redis is
replaced by its present state, one whose item has expired since is kept, so
an archive is never made smaller by a later run. Each file is written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from presence.store import Store
from presence.store import archive as reads
from presence.store.lock import Lock
from presence.tasks import Periodic

log = logging.getLogger("presence.archive")

# the scheduled run: looked at hourly; the lock outlives a long run
CHECK_EVERY = 3600.0
LOCK_TTL_MS = 30 * 60_000


def day_file(folder: Path, center: str, day: date) -> Path:
    return folder / center / f"{day.isoformat()}.ndjson.gz"


def read_day(path: Path) -> list[dict[str, Any]]:
    """The records of one archive file (an absent file holds none)."""
    if not path.exists():
        return []
    with gzip.open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def _default(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    raise TypeError(f"cannot archive a {type(v).__name__}")


def write_day(path: Path, new: list[dict[str, Any]]) -> int:
    """Merge `new` into the day's file (see the module docstring); returns its line count."""
    merged = {r["work"]["work_id"]: r for r in read_day(path)}
    merged.update((r["work"]["work_id"], r) for r in new)
    rows = sorted(merged.values(), key=lambda r: (r["work"].get("ended_at") or 0, r["work"]["work_id"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wb") as f:
        for r in rows:
            f.write(orjson.dumps(r, default=_default) + b"\n")
    os.replace(tmp, path)
    return len(rows)


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _midnight(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


async def archive(
    store: Store, folder: Path, since: date, until: date, timezone: str = "UTC"
) -> dict[date, int]:
    """Archive the days since..until (both included); returns the items each
    day's file holds now, for the days with any."""
    tz = ZoneInfo(timezone)
    start, end = _midnight(since, tz), _midnight(until + timedelta(days=1), tz)
    ended = await reads.finished_between(store, start, end)
    by_day: dict[date, list[str]] = {}
    for ts, wid in ended:
        by_day.setdefault(datetime.fromtimestamp(ts / 1000, tz).date(), []).append(wid)
    out: dict[date, int] = {}
    for day, ids in sorted(by_day.items()):
        rows = await reads.records(store, ids)
        out[day] = await asyncio.to_thread(write_day, day_file(folder, store.keys.center, day), rows)
    return out


class Archiver(Periodic):
    """The scheduled archive (PRESENCE_ARCHIVE_DIR): once a day, in one
    process at a time (a leader lock), the days since the last run up to
    yesterday; the last day done is kept in Redis (``archive:state``)."""

    name = "archive"
    tick_first = True

    def __init__(
        self, store: Store, folder: Path, *, timezone: str = "UTC", every: float = CHECK_EVERY
    ) -> None:
        super().__init__(every)
        self.store = store
        self.folder = folder
        self.timezone = timezone
        self.lock = Lock(store, store.keys.kpi_lock("archive"), LOCK_TTL_MS)

    async def run_once(self) -> dict[date, int] | None:
        """Archive the days due; None when another process holds the task or none is due."""
        k = self.store.keys
        today = datetime.fromtimestamp(self.store.now_ms() / 1000, ZoneInfo(self.timezone)).date()
        yesterday = today - timedelta(days=1)
        raw = await self.store.redis.hget(k.archive_state, "day")
        since = date.fromisoformat(_text(raw)) + timedelta(days=1) if raw else yesterday
        if since > yesterday or not await self.lock.acquire():
            return None
        try:
            done = await archive(self.store, self.folder, since, yesterday, self.timezone)
            await self.store.redis.hset(k.archive_state, "day", yesterday.isoformat())
            log.info("archived %d items of %s..%s into %s", sum(done.values()), since, yesterday, self.folder)
            return done
        finally:
            await self.lock.release()

    async def tick(self) -> None:
        await self.run_once()
