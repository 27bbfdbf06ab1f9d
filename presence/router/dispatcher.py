"""The dispatcher: one per process, it wakes the router.

Intake and freed capacity (complete, decline, timeout, an agent becoming
available) name the queues that may now route; wake-ups that arrive while a
routing call is in flight are coalesced into the next call, and each call
assigns a batch of items in one Lua script (``route.lua``). Several
processes may route the same queue at once: each decision and its commit is
atomic in Redis, so no item is ever offered twice.

A safety pass every ``idle_interval`` seconds routes every queue, so work
left waiting by a process that died between intake and routing is picked up
without a new event. With many centers only the center's owner process
makes it (`safety`), and less often while the center is idle (`pace`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from presence.store import Store
from presence.tasks import Outage, Pace, Periodic, redis_unavailable, stop_task

log = logging.getLogger("presence.router")


class Dispatcher:
    def __init__(
        self,
        store: Store,
        *,
        batch: int = 256,
        scan: int = 512,
        idle_interval: float = 1.0,
        inline: bool = True,
    ) -> None:
        self.store = store
        self.inline = inline
        self.batch = batch
        self.scan = scan
        self.idle_interval = idle_interval
        # whether this process makes the safety pass (the center's owner)
        self.safety = True
        self.pace: Pace | None = None
        self.assigned = 0
        self.calls = 0
        self._dirty: set[str] = set()
        self._event = asyncio.Event()
        self._outage = Outage(log, "routing paused")
        self._task: asyncio.Task[None] | None = None

    def wake(self, queues: Iterable[str]) -> None:
        before = len(self._dirty)
        self._dirty.update(queues)
        if len(self._dirty) != before:
            self._event.set()

    def start(self) -> None:
        # intake, completions and declines route in their own batched calls,
        # with this dispatcher's budget; the dispatcher routes what they
        # leave (the queues that may have more) and everything else
        if self.inline:
            self.store.scripts.route_inline(self.batch, self.scan, self.wake)
        self._task = asyncio.create_task(self._run(), name="dispatcher")

    async def stop(self) -> None:
        if self.inline:
            self.store.scripts.route_inline(0, 0, self.wake)
        await stop_task(self._task)

    async def _wait(self) -> None:
        """Until woken, or until the next safety pass (raises TimeoutError).

        A quiet center (`pace`) has no safety pass: nothing can wait there
        unrouted, since every intake and every freed agent is an event, and
        an event makes the center busy, and its passes resume, at once."""
        if not self.safety or (self.pace is not None and not self.pace.busy()):
            if self.pace is None:
                await self._event.wait()
                return
            # the center's change counts from here, not from when the task
            # that waits for it first runs (a touch in between: no wake-up,
            # and no safety pass until the next wake)
            touched = self.pace.sleeper()
            waits = {asyncio.ensure_future(self._event.wait()), asyncio.ensure_future(touched.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
                self.pace.forget(touched)
            return
        # not asyncio.wait_for: on Python 3.11 it swallows a cancel that
        # arrives as the wait completes (a wake-up during shutdown), and
        # stop() then waits forever
        async with asyncio.timeout(self.idle_interval):
            await self._event.wait()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._wait()
            except TimeoutError:
                try:
                    self._dirty.update(await self.store.queue_names())
                except Exception as exc:
                    # a lost connection ended this loop, and routing in this
                    # process with it, when it was not raised as a RedisError
                    if not redis_unavailable(exc):
                        log.exception("routing's safety pass failed")
                    continue
            self._event.clear()
            if not self._dirty:
                continue
            queues, self._dirty = self._dirty, set()
            try:
                n, more = await self.store.route(queues, self.batch, self.scan)
            except Exception as exc:
                # keep the queues and retry after the backoff (the event, or
                # the retry would wait for the next wake-up or safety pass);
                # never let one failure end routing in this process
                self._dirty.update(queues)
                self._event.set()
                if redis_unavailable(exc):
                    self._outage.failed(exc)
                else:
                    log.exception("routing call failed")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            self._outage.ok()
            self.calls += 1
            self.assigned += n
            if more:
                self.wake(more)


class Sweeper(Periodic):
    """Runs ``sweep.lua`` on a short interval: timeouts, wrap-up limits,
    dead processes' socket leases and grace periods. Any number of
    processes may sweep at once; each expiry happens once."""

    name = "sweeper"

    def __init__(self, store: Store, dispatcher: Dispatcher, *, interval: float, grace: float) -> None:
        super().__init__(interval)
        self.store = store
        self.dispatcher = dispatcher
        self.grace = grace

    async def tick(self) -> None:
        woke = await self.store.sweep(self.grace)
        if woke:
            self.dispatcher.wake(woke)
