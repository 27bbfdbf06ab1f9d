"""The stall watchdog (presence/stalls.py) reports a blocked event loop
with the stack of the code that blocked it, once per stall."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from presence.stalls import StallWatch


def _blocking_handler(seconds: float) -> None:
    time.sleep(seconds)  # the kind of mistake the watchdog is for


async def test_a_blocked_loop_is_reported_once_with_the_blocking_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = StallWatch(threshold_ms=20)
    caplog.set_level(logging.WARNING, logger="presence.stalls")
    watch.start()
    try:
        await asyncio.sleep(0.1)  # a quiet loop: nothing to report
        assert not [r for r in caplog.records if "stalled" in r.getMessage()]
        _blocking_handler(0.15)
        await asyncio.sleep(0.05)
        reports = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
        assert len(reports) == 1, reports
        assert "_blocking_handler" in reports[0]
    finally:
        watch.stop()
