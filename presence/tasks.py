"""Stopping the background loops of a process (dispatcher, sweeper, hub,
KPI, webhook and demo tasks) reliably at shutdown."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

log = logging.getLogger("presence.tasks")


async def stop_task(task: asyncio.Task[None] | None, *, patience: float = 5.0) -> None:
    """Cancel a background loop and wait until it has really ended.

    A cancellation that lands while redis-py is mid-command can come out of
    the command as a `RedisError` (the connection is torn down), which a loop
    built to survive Redis errors would swallow and carry on; a single
    `cancel()` then waits forever. So cancel again until the task is done,
    within `patience` seconds.
    """
    if task is None or task.done():
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.done():
        log.error("background task %s did not stop within %.0fs", task.get_name(), patience)
    elif not task.cancelled() and task.exception() is not None:
        log.error("background task %s had failed: %r", task.get_name(), task.exception())


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*(stop_task(t) for t in tasks))


class Periodic:
    """A background loop of this process: `tick()` every `interval` seconds.

    It survives a Redis outage (logged once per failed tick, retried on the
    next) and any bug in a tick (logged with its traceback), so one failure
    never silently ends a loop the product depends on; `stop()` ends it
    reliably (see `stop_task`).
    """

    name = "periodic"
    # Run the first tick at once (True) or after one interval (False).
    tick_first = False

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await stop_task(self._task)

    async def _run(self) -> None:
        if not self.tick_first:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("%s postponed, Redis unavailable: %s", self.name, exc)
            except Exception:
                log.exception("%s failed; retrying", self.name)
            await asyncio.sleep(self.interval)
