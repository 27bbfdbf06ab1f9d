"""A background loop riding out a Redis outage says so once, not per tick."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ClusterError

from presence.router.dispatcher import Dispatcher
from presence.store import Store
from presence.tasks import Pace, Periodic, stop_task


class Refused(Periodic):
    """Refused `refusals` times (a slot held marked: TTL exhausted), then fine."""

    name = "refused"
    tick_first = True

    def __init__(self, refusals: int) -> None:
        super().__init__(0.001)
        self.refusals = refusals
        self.ticks = 0
        self.done = asyncio.Event()

    async def tick(self) -> None:
        self.ticks += 1
        if self.ticks <= self.refusals:
            raise ClusterError("TTL exhausted.")
        if self.ticks == self.refusals + 3:
            self.done.set()


async def test_a_loop_refused_tick_after_tick_warns_once_and_says_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = await _run(Refused(refusals=20), caplog)
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert warnings == ["refused postponed, Redis unavailable: TTL exhausted."]
    assert sum(r.levelno == logging.DEBUG for r in records) == 19
    back = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert back == ["refused postponed: Redis answers again (20 tries refused)"]


class Cut(Periodic):
    """Its connection closed under it, by uvloop or by redis-py's cluster
    client (neither raised as a RedisError), then fine."""

    name = "cut"
    tick_first = True

    def __init__(self) -> None:
        super().__init__(0.001)
        self.ticks = 0
        self.done = asyncio.Event()

    async def tick(self) -> None:
        self.ticks += 1
        if self.ticks == 1:
            raise RuntimeError(
                "unable to perform operation on <TCPTransport closed=True>; the handler is closed"
            )
        if self.ticks == 2:
            await Connection()._send_packed_command([b"*1\r\n$4\r\nPING\r\n"])  # never connected
        self.done.set()


async def test_a_connection_closed_under_a_tick_is_redis_unavailable_not_a_bug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = await _run(Cut(), caplog)
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.getMessage() for r in records]
    assert [r.levelno for r in records] == [logging.WARNING, logging.DEBUG, logging.INFO]


async def _run(loop: Refused | Cut, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Run `loop` until it says it is done; what it logged."""
    with caplog.at_level(logging.DEBUG, logger="presence.tasks"):
        loop.start()
        try:
            await asyncio.wait_for(loop.done.wait(), 5)
        finally:
            await loop.stop()
    return [r for r in caplog.records if r.name == "presence.tasks"]


async def test_stopping_a_loop_that_had_died_says_why(caplog: pytest.LogCaptureFixture) -> None:
    # a loop ended by an exception nobody retrieved: its stop is the last
    # chance to say why the product's loop was gone
    async def dies() -> None:
        raise KeyError("the bug")

    task = asyncio.create_task(dies(), name="doomed")
    await asyncio.wait({task})
    with caplog.at_level(logging.ERROR, logger="presence.tasks"):
        await stop_task(task)
    assert [r.getMessage() for r in caplog.records] == [
        "background task doomed had failed: KeyError('the bug')"
    ]


async def test_a_quiet_dispatcher_wakes_on_a_change_made_before_its_wait_first_ran() -> None:
    # the dispatcher of a quiet center waits in tasks of its own; a change
    # (`Pace.touch`) in the turn before they first run still wakes it
    now = [0.0]
    pace = Pace(quiet_after=10.0, clock=lambda: now[0])
    now[0] = 100.0  # quiet for long
    dispatcher = Dispatcher(cast(Store, None))
    dispatcher.pace = pace
    waiting = asyncio.create_task(dispatcher._wait())
    asyncio.get_running_loop().call_soon(pace.touch)
    await asyncio.wait_for(waiting, 1.0)
    assert not pace._sleepers  # none left behind
