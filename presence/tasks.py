"""The background loops of a process (dispatcher, sweeper, hub, KPI,
webhook and demo tasks): a loop that ticks and survives (`Periodic`), how
often a center's loops tick (`Pace`), an outage said once (`Outage`), and
stopping them reliably at shutdown (`stop_task`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from presence.connlost import closed_transport

log = logging.getLogger("presence.tasks")


def redis_unavailable(exc: BaseException) -> bool:
    """Whether `exc` is Redis away or refusing (a loop rides it out), not a bug."""
    return isinstance(exc, RedisError) or closed_transport(exc)


async def stop_task(task: asyncio.Task[None] | None, *, patience: float = 5.0) -> None:
    """Cancel a background loop and wait until it has really ended.

    A cancellation that lands while redis-py is mid-command can come out of
    the command as a `RedisError` (the connection is torn down), which a loop
    built to survive Redis errors would swallow and carry on; a single
    `cancel()` then waits forever. So cancel again until the task is done,
    within `patience` seconds. A loop that had already ended by a failure
    is said so too: nothing else would have retrieved its exception.
    """
    if task is None:
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


class Outage:
    """A background loop riding out a Redis outage, said once.

    A loop that ticks every 50 ms meets a refused call on every tick while
    Redis is away or a center's slot is held marked in a resharding: a
    warning per tick is twenty lines a second per loop, and buries the one
    that matters. The first failure of a run is a warning, the next ones
    debug, and the first success after them says how many there were.
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        level = logging.WARNING if self.failures == 0 else logging.DEBUG
        self.log.log(level, "%s, Redis unavailable: %s", self.what, exc)
        self.failures += 1

    def ok(self) -> None:
        if self.failures:
            self.log.info("%s: Redis answers again (%d tries refused)", self.what, self.failures)
            self.failures = 0


class Pace:
    """How often one center's loops tick: at their own interval while the
    center is busy, and not at all once it has been quiet for `quiet_after`
    seconds (`idle` None: a process-wide task then does their work for all
    quiet centers at once, ``presence/workspaces.py``), or every `idle`
    seconds.

    A deployment of many centers runs these loops for each of them; an idle
    center must cost next to nothing, yet a change must be handled as
    promptly as ever. Every change a script makes publishes an event, and
    the hub calls `touch` for each: a sleeping loop wakes at once and ticks
    at its own interval again. A timer (an offer's timeout, a grace period)
    is only ever created by a change, so the loop that expires it is busy
    whenever it is near.
    """

    def __init__(
        self,
        *,
        idle: float | None = 2.0,
        quiet_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle = idle
        self.quiet_after = quiet_after
        self.clock = clock
        self.last = clock()
        self._sleepers: set[asyncio.Event] = set()

    def touch(self) -> None:
        """The center changed: wake every loop that sleeps its idle sleep."""
        self.last = self.clock()
        for e in self._sleepers:
            e.set()

    def busy(self) -> bool:
        return self.clock() - self.last < self.quiet_after

    async def sleep(self, busy_interval: float, idle: float | None = None) -> None:
        """Sleep one interval: `busy_interval` while busy; while quiet, until
        the center changes or `idle` (default: the pace's) seconds pass."""
        if self.busy():
            await asyncio.sleep(busy_interval)
            return
        limit = self.idle if idle is None else idle
        await self.wait(None if limit is None else max(busy_interval, limit))

    def sleeper(self) -> asyncio.Event:
        """An event the next `touch` sets, counted from now: a caller that
        awaits it in a task of its own takes it before making the task (the
        task first runs a turn later, and a touch in between would be lost).
        `forget` it once done."""
        woken = asyncio.Event()
        self._sleepers.add(woken)
        return woken

    def forget(self, woken: asyncio.Event) -> None:
        self._sleepers.discard(woken)

    async def wait(self, timeout: float | None) -> None:
        """Until the center changes (or `timeout` seconds pass)."""
        woken = self.sleeper()
        try:
            async with asyncio.timeout(timeout):
                await woken.wait()
        except TimeoutError:
            pass
        finally:
            self.forget(woken)


async def pace_sleep(pace: Pace | None, interval: float, idle: float | None = None) -> None:
    """`Pace.sleep` of `pace` (`idle`: its idle sleep, default the pace's), or
    a plain `interval` for a loop that has none."""
    if pace is None:
        await asyncio.sleep(interval)
    else:
        await pace.sleep(interval, idle)


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
    # None: every `interval`, always; else slower while its center is idle
    pace: Pace | None = None

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._outage = Outage(log, f"{self.name} postponed")

    async def tick(self) -> None:
        raise NotImplementedError

    def next_delay(self) -> float:
        """Seconds from the end of one tick to the next (a loop may align its ticks on a clock)."""
        return self.interval

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
                self._outage.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if redis_unavailable(exc):
                    self._outage.failed(exc)
                else:
                    log.exception("%s failed; retrying", self.name)
            await pace_sleep(self.pace, self.next_delay())
